// swift-tools-version:6.0
import PackageDescription

// Dependencies point down: executables → WorkerSDK/Bridge internals → BusSchema, ZeroMQ, CallPolicy → SIPCore; ZeroMQ → CZeroMQ.
// SIPCore and BusSchema never import each other (bus messages carry strings, not SIP types).
let package = Package(
    name: "Switchboard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "switchboard-bridge", targets: ["Bridge"]),
        .executable(name: "switchboard-worker", targets: ["Workers"]),
        .executable(name: "switchboard-gateway", targets: ["WebGateway"]),
        .executable(name: "switchboard-exec", targets: ["Exec"]),
        .library(name: "WorkerSDK", targets: ["WorkerSDK"]),
        .library(name: "SIPCore", targets: ["SIPCore"]),
        .library(name: "BusSchema", targets: ["BusSchema"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZeroMQ",
            pkgConfig: "libzmq",
            providers: [.apt(["libzmq3-dev"])]
        ),
        .target(
            name: "ZeroMQ",
            dependencies: ["CZeroMQ"]
        ),
        .target(name: "SIPCore"),
        .target(name: "BusSchema"),
        // Where calls may go: the gateway's early 403 and the bridge's last word share it; so do their IP networks (IPNetwork).
        .target(name: "CallPolicy", dependencies: ["SIPCore"]),
        .target(
            name: "WorkerSDK",
            dependencies: [
                "ZeroMQ", "BusSchema",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "Bridge",
            dependencies: [
                "SIPCore", "BusSchema", "ZeroMQ", "CallPolicy", "MetricsEndpoint",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        .target(name: "SQLiteStore", dependencies: ["Billing", .product(name: "GRDB", package: "GRDB.swift")]),
        // SIP accounts in Kamailio's own database (ha1/ha1b, aliases, disabled) and the password policy; the gateway serves them.
        .target(
            name: "Provisioning",
            dependencies: ["SQLiteStore", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        // PBX rules (forwards, hunt groups, schedules, DND), their SQLite store and their pure evaluation: the pbx worker
        // decides with them, the worker's CLI and the gateway edit them.
        .target(name: "PBX", dependencies: ["BusSchema", "SQLiteStore", .product(name: "GRDB", package: "GRDB.swift")]),
        // Rating, totals, statistics and CSV of CDRs: the accounting worker writes them, the gateway serves them.
        .target(name: "Billing"),
        // `GET /metrics` for the bridge and the accounting worker.
        .target(
            name: "MetricsEndpoint",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "Workers",
            dependencies: [
                "WorkerSDK", "BusSchema", "ZeroMQ", "SQLiteStore", "Billing", "MetricsEndpoint", "PBX",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "WebGateway",
            dependencies: [
                "WorkerSDK", "BusSchema", "CallPolicy", "ZeroMQ", "SQLiteStore", "Billing", "Provisioning", "PBX",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            resources: [.copy("Public"), .copy("Resources/openapi.yaml")]
        ),
        // The README's custom worker, built with the package so it cannot rot.
        .executableTarget(
            name: "VIPWorker",
            dependencies: [
                "WorkerSDK", "BusSchema",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "examples/swift/VIPWorker"
        ),
        // The OpenSER 1.x hand-off, run by exec_dset once per call: ZeroMQ and BusSchema only, so it starts fast.
        .executableTarget(name: "Exec", dependencies: ["ZeroMQ", "BusSchema"]),
        // Micro-benchmarks, run by hand: swift run -c release switchboard-bench
        .executableTarget(
            name: "switchboard-bench",
            dependencies: ["SIPCore", "BusSchema"],
            path: "bench/swift/SwitchboardBench"
        ),
        // libFuzzer targets, built and run by scripts/fuzz (--sanitize=fuzzer -DFUZZING). In a normal build each
        // replays the files named on its command line, so a finding reproduces without the fuzzer runtime.
        .target(name: "FuzzReplay", path: "Fuzz/FuzzReplay"),
        .executableTarget(name: "fuzz-sip-parser", dependencies: ["SIPCore", "FuzzReplay"], path: "Fuzz/SIPParser"),
        .executableTarget(name: "fuzz-sip-framer", dependencies: ["SIPCore", "FuzzReplay"], path: "Fuzz/SIPStreamFramer"),
        .executableTarget(name: "fuzz-bus-json", dependencies: ["BusSchema", "FuzzReplay"], path: "Fuzz/BusJSON"),
        .testTarget(name: "SIPCoreTests", dependencies: ["SIPCore"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "BusSchemaTests", dependencies: ["BusSchema"]),
        .testTarget(name: "ExecTests", dependencies: ["Exec", "BusSchema"]),
        .testTarget(name: "BillingTests", dependencies: ["Billing"]),
        .testTarget(name: "PBXTests", dependencies: ["PBX", "BusSchema"]),
        .testTarget(name: "CallPolicyTests", dependencies: ["CallPolicy"]),
        .testTarget(name: "ProvisioningTests", dependencies: ["Provisioning", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "WorkerSDKTests", dependencies: ["WorkerSDK", "BusSchema", "ZeroMQ",
                                                     .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")]),
        .testTarget(name: "BridgeTests", dependencies: ["Bridge", "SIPCore", "BusSchema", "CallPolicy", "ZeroMQ", "WorkerSDK",
                                                  .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                                                  .product(name: "NIOEmbedded", package: "swift-nio")]),
        .testTarget(name: "WorkersTests", dependencies: ["Workers", "WorkerSDK", "BusSchema", "Billing"]),
        .testTarget(name: "WebGatewayTests", dependencies: ["WebGateway", "BusSchema", "CallPolicy", "PBX",
                                                      .product(name: "GRDB", package: "GRDB.swift"),
                                                      .product(name: "HummingbirdTesting", package: "hummingbird"),
                                                      .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                                                      .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]),
    ]
)
