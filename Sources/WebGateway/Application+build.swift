import CallPolicy
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import Prometheus
import ServiceLifecycle
import WorkerSDK

/// What ``buildApplication(configuration:dependencies:)`` would otherwise make itself; tests replace
/// the bridge clients and leave the bus alone.
struct GatewayDependencies: Sendable {
    /// Nil: one ``BusBridgeClient`` per configured bridge.
    var bridges: [any BridgeClient]?
    /// Follow the bridges' events (``EventFeed``) and check them (``BridgeMonitor``).
    var followBus = true
    var table = CallTable()
    var registry = PrometheusCollectorRegistry()
    var logger: Logger?
    /// Nil: ``PasswordHash/verify(_:against:)``; tests count the calls.
    var verifyPassword: PasswordChecker.Verify?
}

/// Builds the gateway: the REST API under `/api/v1`, the events WebSocket, the page's static files,
/// `/health` and `/metrics`, with the bus services attached. `main` and the tests both call it.
///
/// ```swift
/// var configuration = GatewayConfiguration()
/// configuration.port = 0
/// let app = try buildApplication(configuration: configuration)
/// try await app.runService()   // a ServiceGroup: SIGTERM/SIGINT shut it down gracefully
/// ```
func buildApplication(configuration: GatewayConfiguration, dependencies: GatewayDependencies = .init()) throws
    -> some ApplicationProtocol {
    try configuration.validate()
    var logger = dependencies.logger ?? Logger(label: "switchboard.gateway") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = configuration.logLevel
    let store = try GatewayStore(path: configuration.database)
    let metrics = GatewayMetrics(registry: dependencies.registry)
    let table = dependencies.table
    table.onRinging = { metrics.originateToRinging.record($0) }
    let clients = try dependencies.bridges ?? configuration.bridges.map {
        try BusBridgeClient(bridge: $0, timeout: configuration.commandTimeout, curve: configuration.curve, logger: logger)
    }
    let bridges = BridgeDirectory(clients: clients)
    let limiter = RateLimiter()
    let authenticator = AuthenticationMiddleware(store: store, limiter: limiter, metrics: metrics)

    let router = Router(context: GatewayContext.self)
    router.add(middleware: AccessLogMiddleware(metrics: metrics))
    router.add(middleware: ProblemMiddleware())
    if let publicFolder = configuration.staticDirectory ?? Bundle.module.resourceURL?.appendingPathComponent("Public").path {
        router.add(middleware: FileMiddleware(publicFolder, searchForIndexHtml: true, logger: logger))
    }
    let proxies = TrustedProxies(networks: configuration.trustedProxies.compactMap(IPNetwork.init))
    let api = router.group("api/v1")
        .add(middleware: SourceRateLimitMiddleware(limiter: limiter, ratePerSecond: configuration.sourceRatePerSecond,
                                                   burst: configuration.sourceBurst, proxies: proxies, metrics: metrics))
    let authenticated = api.group().add(middleware: authenticator)
    let openAPI = Bundle.module.url(forResource: "openapi", withExtension: "yaml").flatMap { try? Data(contentsOf: $0) }
    SystemRoutes(bridges: bridges, table: table, metrics: metrics, authenticator: authenticator,
                 openAPI: openAPI.map { ByteBuffer(bytes: $0) })
        .register(root: router, api: api)
    let backoff = LoginBackoff(freeFailures: configuration.loginFreeFailures, base: configuration.loginLockout,
                               maximum: configuration.loginLockoutMaximum)
    let checker = dependencies.verifyPassword.map { PasswordChecker(limit: configuration.loginConcurrentHashes, backoff: backoff, verify: $0) }
        ?? PasswordChecker(limit: configuration.loginConcurrentHashes, backoff: backoff)
    SessionRoutes(store: store, lifetime: configuration.sessionLifetime, secureCookies: configuration.cookiesAreSecure, checker: checker,
                  metrics: metrics)
        .register(public: api, authenticated: authenticated)
    // The gateway's own SIP domain is the one host a destination may name besides the trunks.
    var rules = configuration.destinationRules
    rules.sipDomains = [configuration.sipDomain]
    CallRoutes(table: table, bridges: bridges, metrics: metrics, rules: rules,
               sipDomain: configuration.sipDomain, callerIdName: configuration.callerIdName)
        .register(on: authenticated)
    CDRRoutes(reader: configuration.cdrDatabase.map(CDRReader.init(path:))).register(on: authenticated)
    StatsRoutes(reader: configuration.cdrDatabase.map(CDRReader.init(path:))).register(on: authenticated)
    RecordingRoutes(reader: configuration.cdrDatabase.map(CDRReader.init(path:)), directory: configuration.recordingsDirectory)
        .register(on: authenticated)
    try PBXRoutes(path: configuration.pbxDatabase).register(on: authenticated)
    try SIPAccountRoutes(configuration: configuration, checker: checker).register(on: authenticated)
    // Who is online: the bridges' registration.* events, replayed from their journals at start.
    let online = RegistrationTable(bridges: configuration.bridges.map { RegistrationTable.Bridge(events: $0.events, replay: $0.replay) },
                                   curve: configuration.curve, logger: logger)
    RegistrationRoutes(table: online, sipDomain: configuration.sipDomain, rules: rules).register(on: authenticated)
    EventsSocket.registerUpgradeRequired(on: api)
    // Last: it wraps only the not-found responder (router middleware applies to the routes added after it).
    router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes))

    let webSocket = EventsSocket(table: table, authenticator: authenticator, limit: configuration.webSocketsPerPrincipal,
                                 recheck: configuration.webSocketRecheckInterval).router().buildResponder()
    let origins = OriginPolicy(allowed: configuration.webSocketAllowedOrigins)
    let idleTimeout = TimeAmount(configuration.httpIdleTimeout)
    var server = HTTPServerBuilder { responder in
        OriginCheckedChannel(base: HTTP1WebSocketUpgradeChannel(responder: responder, webSocketResponder: webSocket,
                                                                configuration: .init(http1: .init(idleTimeout: idleTimeout))),
                             policy: origins, headTimeout: idleTimeout)
    }
    if let tls = configuration.tls {
        let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateChain).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: tls.privateKey, format: .pem)
        server = try .tls(server, tlsConfiguration: TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
    }

    var services: [any Service] = []
    if dependencies.followBus {
        services.append(try EventFeed(bridges: configuration.bridges, curve: configuration.curve, table: table, store: store, metrics: metrics, logger: logger))
        services.append(BridgeMonitor(bridges: bridges, table: table, interval: configuration.healthInterval, logger: logger))
        services.append(online)
    }
    logger.info("gateway configured", metadata: [
        "http.listen": "\(configuration.host):\(configuration.port)", "http.tls": "\(configuration.tls != nil)",
        "gateway.bridges": "\(configuration.bridges.map(\.id).joined(separator: ","))", "gateway.database": "\(configuration.database)",
    ])
    return Application(
        router: router,
        server: server,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "switchboard-gateway"),
        services: services,
        logger: logger
    )
}
