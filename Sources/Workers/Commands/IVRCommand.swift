import ArgumentParser
import BusSchema
import Logging
import WorkerSDK

/// `switchboard-worker ivr`: answers calls to its numbers itself (media through the bridge's rtpengine), plays a
/// menu and hands the caller to the target of the key pressed.
///
/// ```sh
/// switchboard-worker ivr --bridge tcp://127.0.0.1:5571 --events tcp://127.0.0.1:5570 --replay tcp://127.0.0.1:5572 \
///     --commands tcp://127.0.0.1:5573 --number 800 --menu 1=sip:alice@switchboard.local --menu 2=sip:bob@switchboard.local
/// ```
struct IVRCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ivr",
        abstract: "Run an IVR worker: answer calls to --number, play a menu, transfer the caller to the key's target.",
        discussion: """
        The bridge needs media_rtpengine (and media_dtmf_listen for the keys, media_prompts for --prompt). A bridge \
        gives any worker of its pool any offer, so the IVR decides the other numbers as the workers beside it do: \
        with --pbx as the pbx worker (its rules, then --routes' dial plan), with --routes alone as the router, \
        else 404.
        """
    )

    @Option(name: .customLong("bridge"), help: "The bridge's decisions endpoint.")
    var decisions: String
    @Option(help: "The same bridge's events endpoint.")
    var events: String
    @Option(help: "The same bridge's replay endpoint.")
    var replay: String
    @Option(help: "The same bridge's commands endpoint.")
    var commands: String
    @Option(name: .customLong("number"), help: "A dialled number (Request-URI user) the IVR answers; repeat for several.")
    var numbers: [String]
    @Option(name: .customLong("menu"), help: "KEY=SIP-URI: where the key sends the caller; repeat per key.")
    var menu: [String]
    @Option(help: "The menu prompt's name in the bridge's prompts folder (default: a beep).")
    var prompt: String?
    @Option(help: "The prompt after a key outside the menu (default: the busy tone).")
    var invalidPrompt: String?
    @Option(help: "Seconds the caller has to press a key once the menu has played.")
    var timeout = 5.0
    @Option(help: "Menu plays before the IVR hangs up on a caller who chose nothing.")
    var attempts = 3
    @Option(help: "A PBX database: calls to other numbers are decided by its rules, as the pbx worker decides them.")
    var pbx: String?
    @Option(help: "The host for bare names in PBX rules (bob → sip:bob@DOMAIN); default: the called party's host.")
    var domain: String?
    @Option(help: "A route database: calls to other numbers (with --pbx: those no rule names) are routed by its dial plan.")
    var routes: String?
    @Option(help: "The name this worker gives the bridge (default ivr-<host>-<pid>).")
    var workerId: String?
    @OptionGroup var curve: CurveClientOptions
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if numbers.isEmpty { throw ValidationError("--number is required") }
        if !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
        if attempts < 1 { throw ValidationError("--attempts must be at least 1") }
        _ = try parsedMenu()
        for name in [prompt, invalidPrompt].compactMap({ $0 }) where !Playback.isPromptName(name) {
            throw ValidationError("\(name.debugDescription) is not a prompt name (letters, digits, '-', '_', '.')")
        }
    }

    private func parsedMenu() throws -> [String: String] {
        if menu.isEmpty { throw ValidationError("--menu is required, e.g. --menu 1=sip:sales@switchboard.local") }
        var entries: [String: String] = [:]
        for entry in menu {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, parts[0].count == 1, DTMFDigits.alphabet.contains(parts[0].first!) else {
                throw ValidationError("--menu \(entry.debugDescription): expected KEY=SIP-URI with one key of 0-9, *, #, A-D")
            }
            guard parts[1].hasPrefix("sip:") || parts[1].hasPrefix("sips:") || parts[1].hasPrefix("tel:") else {
                throw ValidationError("--menu \(entry.debugDescription): the target must be a sip:, sips: or tel: URI")
            }
            if entries[parts[0]] != nil { throw ValidationError("--menu: key \(parts[0]) is given twice") }
            entries[parts[0]] = parts[1]
        }
        return entries
    }

    func run() async throws {
        var logger = Logger(label: "switchboard.ivr") { label in StreamLogHandler.standardError(label: label) }
        logger.logLevel = logLevel
        var configuration = IVRWorkerConfiguration(decisions: [decisions], events: events, replay: replay, commands: commands,
                                                   numbers: Set(numbers), menu: try parsedMenu())
        configuration.workerId = workerId ?? configuration.workerId
        configuration.prompt = prompt
        configuration.invalidPrompt = invalidPrompt
        configuration.timeout = .milliseconds(Int((timeout * 1000).rounded()))
        configuration.attempts = attempts
        configuration.routesPath = routes
        configuration.curve = try curve.load()
        if let pbx {
            var others = PBXWorkerConfiguration(databasePath: pbx, bridges: [decisions])
            others.domain = domain
            others.routesPath = routes
            others.curve = configuration.curve
            // Who is registered comes from the same bridge's journal (an unreachable forward needs it).
            others.registrations = [RegistrationTable.Bridge(events: events, replay: replay)]
            configuration.pbx = others
        }
        try await buildIVRWorker(configuration: configuration, logger: logger).run()
    }
}
