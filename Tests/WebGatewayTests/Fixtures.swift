import BusSchema
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOConcurrencyHelpers
import NIOCore
@testable import WebGateway

/// A bridge that records every command and answers from a script. Used only to prove that no command
/// was sent (a denied originate) and to check how bus errors map to HTTP; the real bridge is
/// exercised by the integration tests.
final class RecordingBridge: BridgeClient {
    enum Sent: Equatable, Sendable {
        case originate(Originate)
        case hangup(String)
        case media(Command)
    }

    private struct State {
        var sent: [Sent] = []
        var counter = 0
        var failure: BridgeError?
        /// Idempotency keys already seen → call id.
        var idempotent: [String: String] = [:]
    }

    let id: String
    private let state = NIOLockedValueBox(State())

    init(id: String = "bridge-1") {
        self.id = id
    }

    var sent: [Sent] { state.withLockedValue { $0.sent } }

    /// When set, every command fails with it.
    var failure: BridgeError? {
        get { state.withLockedValue { $0.failure } }
        set { state.withLockedValue { $0.failure = newValue } }
    }

    func originate(_ command: Originate) async throws -> (callId: String, existing: Bool) {
        try state.withLockedValue { state in
            state.sent.append(.originate(command))
            if let failure = state.failure { throw failure }
            if let key = command.idempotencyKey, let callId = state.idempotent[key] { return (callId, true) }
            state.counter += 1
            let callId = "\(id)-c\(state.counter)"
            if let key = command.idempotencyKey { state.idempotent[key] = callId }
            return (callId, false)
        }
    }

    func hangup(callId: String) async throws {
        try state.withLockedValue { state in
            state.sent.append(.hangup(callId))
            if let failure = state.failure { throw failure }
        }
    }

    func media(_ command: Command) async throws {
        try state.withLockedValue { state in
            state.sent.append(.media(command))
            if let failure = state.failure { throw failure }
        }
    }

    func liveCallIds() async throws -> Set<String> { [] }
}

/// A gateway on a fresh database with a recording bridge, for one test.
struct GatewayFixture {
    let directory: URL
    var configuration: GatewayConfiguration
    let bridge = RecordingBridge()
    let table = CallTable()
    let store: GatewayStore
    /// Replaces the password hash check (to count calls or hold it).
    var verifyPassword: PasswordChecker.Verify?

    init(_ adjust: (inout GatewayConfiguration) -> Void = { _ in }) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configuration = GatewayConfiguration()
        configuration.port = 0
        configuration.database = directory.appendingPathComponent("gateway.sqlite").path
        configuration.logLevel = .warning
        adjust(&configuration)
        store = try GatewayStore(path: configuration.database)
    }

    func key(_ policy: AccessPolicy = AccessPolicy(ratePerSecond: 100, burst: 100, numbers: ["+1"])) throws -> (id: String, secret: String) {
        let (record, secret) = try store.createKey(name: "test", policy: policy)
        return (record.id, secret)
    }

    func application() throws -> some ApplicationProtocol {
        try buildApplication(configuration: configuration,
                             dependencies: GatewayDependencies(bridges: [bridge], followBus: false, table: table,
                                                               verifyPassword: verifyPassword))
    }

    func test(_ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
        try await application().test(.router, body)
    }
}

extension TestClientProtocol {
    /// A JSON request with an optional API key.
    @discardableResult
    func send(_ method: HTTPRequest.Method, _ uri: String, key: String? = nil, json: String? = nil,
              headers extra: HTTPFields = [:]) async throws -> TestResponse {
        var headers = extra
        if let key { headers[.authorization] = "Bearer \(key)" }
        if json != nil { headers[.contentType] = "application/json" }
        return try await executeRequest(uri: uri, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) })
    }
}

extension TestResponse {
    var text: String { String(buffer: body) }

    /// The body as a JSON object.
    var object: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    /// The `invalid_params` names of a problem.
    var invalidParamNames: [String] {
        (object["invalid_params"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
    }
}

