import ArgumentParser

/// `switchboard-worker`: the shipped workers and the tools that manage their data.
///
/// ```sh
/// switchboard-worker routes add --db routes.sqlite --prefix 1202 --target sip:127.0.0.1:5090
/// switchboard-worker router --db routes.sqlite --bridge tcp://127.0.0.1:5571
/// ```
@main
struct SwitchboardWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-worker",
        abstract: "Switchboard workers: routing decisions for calls the bridge offers.",
        subcommands: [RouterCommand.self, RoutesCommand.self, BlockCommand.self, AccountingCommand.self, CDRCommand.self,
                      RatesCommand.self, PBXCommand.self, PBXRulesCommand.self, IVRCommand.self, RegistrationsCommand.self, KeygenCommand.self]
    )
}

/// The `--db` option every dial-plan command takes.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: "The route database (SQLite); created and migrated on first use.")
    var path: String

    func openStore() throws -> RouteStore {
        try RouteStore(path: path)
    }
}
