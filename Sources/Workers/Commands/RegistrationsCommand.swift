import ArgumentParser
import BusSchema
import Foundation
import Logging
import ServiceLifecycle
import WorkerSDK

/// `switchboard-worker registrations`: who is online, from the bridges' `registration.*` events, their
/// journals replayed from the start by a ``RegistrationTable`` (as the gateway's `GET /api/v1/registrations`).
///
/// ```sh
/// switchboard-worker registrations --events tcp://127.0.0.1:5570 --replay tcp://127.0.0.1:5572
/// switchboard-worker registrations --events tcp://127.0.0.1:5570 --replay tcp://127.0.0.1:5572 --user alice --json
/// switchboard-worker registrations --events tcp://127.0.0.1:5570 --replay tcp://127.0.0.1:5572 --follow
/// ```
struct RegistrationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "registrations",
        abstract: "Show who is online: the bindings Kamailio's registrar holds, from the bridges' registration events.",
        discussion: """
        Reads each bridge's journal to its end, prints the live bindings and exits; with --follow it then prints \
        each registration event as it arrives, until interrupted. Fails when a bridge's journal cannot be read \
        within --timeout-ms.
        """
    )

    @Option(help: "A bridge's events endpoint (PUB); repeat for several bridges.")
    var events: [String] = []
    @Option(help: "The replay endpoint (ROUTER) of each --events bridge, in the same order.")
    var replay: [String] = []
    @OptionGroup var curve: CurveClientOptions
    @Option(help: "Only this user's bindings (the AOR's user part, e.g. alice).")
    var user: String?
    @Flag(help: "Print JSON: {\"registrations\": [...]} as the gateway lists them; with --follow, then one bus event per line.")
    var json = false
    @Flag(help: "After the list, print each registration event as it arrives, until interrupted.")
    var follow = false
    @Option(help: "Milliseconds to wait for every bridge's journal before giving up.")
    var timeoutMs = 3000
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .warning

    func validate() throws {
        if events.isEmpty { throw ValidationError("give a bridge's --events endpoint and its --replay endpoint") }
        if events.count != replay.count { throw ValidationError("give one --replay for each --events") }
        if timeoutMs < 1 { throw ValidationError("--timeout-ms must be at least 1, got \(timeoutMs)") }
    }

    func run() async throws {
        try await execute { text in FileHandle.standardOutput.write(Data((text + "\n").utf8)) }
    }

    /// Catches up, hands `output` the listing, and with `--follow` each later event (a line apiece, written
    /// as it comes so a pipe sees it at once); returns after the listing, or at SIGINT / SIGTERM when following.
    func execute(output: @escaping @Sendable (String) -> Void) async throws {
        var logger = Logger(label: "switchboard.registrations") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = logLevel
        let table = RegistrationTable(bridges: zip(events, replay).map { RegistrationTable.Bridge(events: $0, replay: $1) },
                                      curve: try curve.load(), logger: logger)
        let report = Report(table: table, user: user, json: json, follow: follow, timeoutMs: timeoutMs, output: output)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: table), .init(service: report, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: follow ? [.sigint, .sigterm] : [], logger: logger
        ))
        try await group.run()
    }

    /// `--json`: the shape of the gateway's `GET /api/v1/registrations`.
    private struct Listing: Encodable {
        var registrations: [RegistrationState.Binding]
    }

    /// The live bindings (already filtered) as a table or as JSON.
    static func listing(_ bindings: [RegistrationState.Binding], user: String?, json: Bool) throws -> String {
        if json { return String(decoding: try BusSchema.makeEncoder().encode(Listing(registrations: bindings)), as: UTF8.self) }
        if bindings.isEmpty { return user.map { "\($0) is not registered" } ?? "no one is registered" }
        return TextTable.render(
            header: ["USER", "AOR", "CONTACT", "TRANSPORT", "USER AGENT", "SECONDS LEFT"],
            rows: bindings.map { binding in
                let registration = binding.registration
                return [registration.user, registration.aor, registration.contact, registration.transport, registration.userAgent ?? "",
                        "\(registration.expires)"]
            }
        )
    }

    /// One followed event: the bus frame itself with `--json`, else a line of its time, type and binding.
    static func line(_ event: Event, json: Bool) -> String? {
        guard let (change, registration) = event.body.registrationChange else { return nil }
        if json { return String(decoding: event.jsonBytes(), as: UTF8.self) }
        let expires = change == .created || change == .refreshed ? " expires=\(registration.expires)" : ""
        return "\(CDRTimestamp.format(event.timestamp)) \(change.rawValue) \(registration.user) \(registration.contact) "
            + "\(registration.transport)\(expires)"
    }

    /// Waits for the table to catch up, prints, and follows: a service beside the table, so both stop together.
    private struct Report: Service {
        let table: RegistrationTable
        let user: String?
        let json: Bool
        let follow: Bool
        let timeoutMs: Int
        let output: @Sendable (String) -> Void

        func run() async throws {
            let (followed, sink) = AsyncStream.makeStream(of: Event.self)
            if follow {
                table.onChange { [weak table = self.table, user = self.user] event in
                    // Events replayed while catching up are in the listing already.
                    guard let table, table.isCaughtUp, let (_, registration) = event.body.registrationChange,
                          user == nil || registration.user == user else { return }
                    sink.yield(event)
                }
            }
            guard await table.waitUntilCaughtUp(timeout: .milliseconds(timeoutMs)) else {
                throw RegistrationsError.unreachable(replay: table.lagging.map(\.replay), timeoutMs: timeoutMs)
            }
            output(try RegistrationsCommand.listing(table.online().filter { user == nil || $0.registration.user == user }, user: user, json: json))
            guard follow else { return }
            for await event in followed.cancelOnGracefulShutdown() {
                if let line = RegistrationsCommand.line(event, json: json) { output(line) }
            }
        }
    }
}

enum RegistrationsError: Error, Equatable, CustomStringConvertible {
    /// These replay endpoints did not answer within the timeout.
    case unreachable(replay: [String], timeoutMs: Int)

    var description: String {
        switch self {
        case .unreachable(let replay, let timeoutMs):
            "no answer from the bridge's replay endpoint \(replay.joined(separator: ", ")) within \(timeoutMs) ms: "
                + "is the bridge running there (and with CURVE, are --curve-key and --bridge-key the right keys)?"
        }
    }
}
