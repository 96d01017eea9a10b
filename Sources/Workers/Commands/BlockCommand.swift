import ArgumentParser
import BusSchema
import Foundation

/// `switchboard-worker block add|list|remove`: the access list, refused with 403.
///
/// ```sh
/// switchboard-worker block add --db routes.sqlite --destination 1900 --reason "premium rate"
/// switchboard-worker block add --db routes.sqlite --caller mallory
/// switchboard-worker block list --db routes.sqlite
/// switchboard-worker block remove --db routes.sqlite --id 2
/// ```
struct BlockCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "block",
        abstract: "Add, list and remove blocked callers and destinations.",
        subcommands: [Add.self, List.self, Remove.self]
    )

    /// Blocks a caller or destination prefix.
    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Block calls from a caller or to a destination (prefix match).",
            discussion: """
            The caller is the authenticated user, or else the From user. Number patterns ignore a leading + \
            and separators; a caller pattern may also be the start of a user name.
            """
        )

        @OptionGroup var database: DatabaseOptions
        @Option(help: "Block callers starting with this pattern.")
        var caller: String?
        @Option(help: "Block dialled numbers starting with this pattern.")
        var destination: String?
        @Option(help: "Why, for the people who maintain the list.")
        var reason: String?

        func validate() throws {
            if (caller == nil) == (destination == nil) {
                throw ValidationError("give exactly one of --caller PATTERN or --destination PATTERN")
            }
        }

        func run() throws { print(try execute()) }

        /// Does the work and returns what `run` prints, so tests can check it.
        func execute() throws -> String {
            let block: Block
            if let caller {
                block = try Block(kind: .caller, pattern: caller, reason: reason)
            } else {
                block = try Block(kind: .destination, pattern: destination ?? "", reason: reason)
            }
            let saved = try database.openStore().addBlock(block)
            return "added block \(saved.id ?? 0): \(saved.kind.rawValue) \(saved.pattern)"
        }
    }

    /// Prints every block as a table, or as JSON for scripts.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List blocked callers and destinations.")

        @OptionGroup var database: DatabaseOptions
        @Flag(help: "Print a JSON array instead of a table.")
        var json = false

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let blocks = try database.openStore().blocks()
            if json {
                return String(decoding: try BusSchema.makeEncoder().encode(blocks), as: UTF8.self)
            }
            if blocks.isEmpty { return "no blocks" }
            return TextTable.render(
                header: ["ID", "KIND", "PATTERN", "REASON"],
                rows: blocks.map { [$0.id.map(String.init) ?? "", $0.kind.rawValue, $0.pattern, $0.reason ?? ""] }
            )
        }
    }

    /// Removes one block by id.
    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a block by id (see `block list`).")

        @OptionGroup var database: DatabaseOptions
        @Option(help: "The block's id.")
        var id: Int64

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            try database.openStore().removeBlock(id: id)
            return "removed block \(id)"
        }
    }
}
