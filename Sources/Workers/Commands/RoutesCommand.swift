import ArgumentParser
import BusSchema
import Foundation

/// `switchboard-worker routes add|list|remove`: edit the dial plan, also while the router runs.
///
/// ```sh
/// switchboard-worker routes add --db routes.sqlite --prefix 1202 --target sip:gw1.example.com --cost 0.01
/// switchboard-worker routes list --db routes.sqlite
/// switchboard-worker routes remove --db routes.sqlite --id 3
/// ```
struct RoutesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "routes",
        abstract: "Add, list and remove routes.",
        subcommands: [Add.self, List.self, Remove.self]
    )

    /// Adds a route and prints it with its id.
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a route: numbers starting with PREFIX may go to TARGET.",
            discussion: """
            TARGET is a sip: or sips: URI. Without a user part (sip:gw1.example.com:5060) the dialled number \
            becomes the user; {number} in it is replaced by the number; a URI with a user part is used as is. \
            Routes of the longest matching prefix are offered cheapest first, then by lowest priority.
            """
        )

        @OptionGroup var database: DatabaseOptions
        @Option(help: "Digits the dialled number starts with (a leading + and separators are ignored; \"\" matches every number).")
        var prefix: String
        @Option(help: "Where to send the call: a sip: or sips: URI.")
        var target: String
        @Option(help: "Cost of the route; lower is tried first.")
        var cost: Double = 0
        @Option(help: "Tie-break among routes of equal cost; lower is tried first.")
        var priority: Int = 0
        @Option(help: "A note for the people who maintain the dial plan.")
        var description: String?

        func run() throws { print(try execute()) }

        /// Does the work and returns what `run` prints, so tests can check it.
        func execute() throws -> String {
            let route = try database.openStore().addRoute(
                Route(prefix: prefix, target: target, cost: cost, priority: priority, description: description)
            )
            return "added route \(route.id ?? 0): \(route.prefix.isEmpty ? "(any number)" : route.prefix) → \(route.target)"
        }
    }

    /// Prints every route as a table, or as JSON for scripts.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List routes by prefix, in the order they are tried.")

        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print a JSON array instead of a table.")
        var json = false

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let routes = try database.openStore().routes()
            if json {
                return String(decoding: try BusSchema.makeEncoder().encode(routes), as: UTF8.self)
            }
            if routes.isEmpty { return "no routes" }
            return TextTable.render(
                header: ["ID", "PREFIX", "TARGET", "COST", "PRIORITY", "DESCRIPTION"],
                rows: routes.map { route in
                    [route.id.map(String.init) ?? "", route.prefix.isEmpty ? "*" : route.prefix, route.target,
                     "\(route.cost)", "\(route.priority)", route.description ?? ""]
                }
            )
        }
    }

    /// Removes one route by id.
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a route by id (see `routes list`).")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "The route's id.")
        var id: Int64

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            try database.openStore().removeRoute(id: id)
            return "removed route \(id)"
        }
    }
}
