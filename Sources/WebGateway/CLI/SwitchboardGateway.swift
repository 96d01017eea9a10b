import ArgumentParser
import CallPolicy
import Foundation
import Hummingbird
import Logging

/// `switchboard-gateway`: the web gateway (`serve`) and the tools that manage its keys and users.
///
/// ```sh
/// switchboard-gateway keys create --db gateway.sqlite --name crm --allow 1202 --max-concurrent 2
/// switchboard-gateway users add --db gateway.sqlite --name alice      # asks for the password
/// switchboard-gateway keys numbers --db gateway.sqlite --id sbk_1a2b3c4d --add +12025550100 --remove '*'
/// switchboard-gateway serve --config gateway.json
/// curl -H "Authorization: Bearer sbk_..." http://127.0.0.1:8080/api/v1/calls
/// ```
@main
struct SwitchboardGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard-gateway",
        abstract: "Switchboard web gateway: REST API, Click2Call page, live call events.",
        subcommands: [ServeCommand.self, KeysCommand.self, UsersCommand.self, SIPAccountsCommand.self],
        defaultSubcommand: ServeCommand.self
    )
}

/// `serve`: runs the gateway until SIGTERM/SIGINT.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the gateway.",
        discussion: """
        Settings come from --config (JSON) with SWITCHBOARD_GATEWAY_* environment variables on top; see docs/gateway.md. \
        --host and --port, when given, win over both.
        """
    )

    @Option(help: "A JSON configuration file.")
    var config: String?
    @Option(help: "Address to listen on (overrides listen.host).")
    var host: String?
    @Option(help: "Port to listen on; 0 picks a free one (overrides listen.port).")
    var port: Int?

    func run() async throws {
        var configuration = try await GatewayConfiguration.load(file: config)
        if let host { configuration.host = host }
        if let port { configuration.port = port }
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.description)
        }
        let app = try buildApplication(configuration: configuration)
        // runService wraps the application and its services in a ServiceGroup that shuts down
        // gracefully, in reverse order, on SIGTERM/SIGINT.
        try await app.runService()
    }
}

/// The `--db` option of the key and user commands.
struct StoreOptions: ParsableArguments {
    @Option(name: .customLong("db"), help: "The gateway database (SQLite); created on first use. Default: the configured one.")
    var path: String?

    func openStore() async throws -> GatewayStore {
        let configured = path == nil ? try await GatewayConfiguration.load(file: nil).database : nil
        return try GatewayStore(path: path ?? configured ?? "gateway.sqlite")
    }
}

/// The per-key and per-user policy options.
struct PolicyOptions: ParsableArguments {
    @Option(name: .customLong("allow"), help: "A destination pattern this principal may call (repeatable; digits, +, x, trailing *).")
    var allow: [String] = []
    @Option(name: .customLong("deny"), help: "A destination pattern this principal may not call (repeatable).")
    var deny: [String] = []
    @Option(help: "Live originated calls at once.")
    var maxConcurrent = 2
    @Option(help: "Sustained requests per second.")
    var rate = 5.0
    @Option(help: "Requests allowed in a burst above the rate.")
    var burst = 10
    @Flag(help: "An admin: may see every call and all CDRs, and provision SIP accounts and PBX rules.")
    var admin = false
    @Option(name: .customLong("number"),
            help: "A number or SIP account this principal owns, which `from` may be (repeatable; pattern syntax as --allow).")
    var numbers: [String] = []
    @Option(name: .customLong("caller-id"), help: "A caller id this principal may show (repeatable); default: its numbers.")
    var callerIds: [String] = []

    func validate() throws {
        if maxConcurrent < 1 { throw ValidationError("--max-concurrent must be at least 1") }
        if rate <= 0 || burst < 1 { throw ValidationError("--rate must be positive and --burst at least 1") }
        for pattern in allow + deny + numbers + callerIds where !DialPattern.validate(pattern) {
            throw ValidationError(GatewayStoreError.invalidPattern(pattern).description)
        }
    }

    var policy: AccessPolicy {
        AccessPolicy(allow: allow, deny: deny, maxConcurrent: maxConcurrent, ratePerSecond: rate, burst: burst, admin: admin,
                     numbers: numbers, callerIds: callerIds)
    }
}

/// `--add` and `--remove` of `keys numbers` and `users numbers`.
struct NumberChanges: ParsableArguments {
    @Option(name: .customLong("add"), help: "A number or SIP account to own, which `from` may then be (repeatable; pattern syntax as --allow).")
    var add: [String] = []
    @Option(name: .customLong("remove"), help: "A number to give up, as `keys list` shows it (repeatable).")
    var remove: [String] = []

    func validate() throws {
        if add.isEmpty && remove.isEmpty { throw ValidationError("give --add, --remove or both") }
        for pattern in add where !DialPattern.validate(pattern) {
            throw ValidationError(GatewayStoreError.invalidPattern(pattern).description)
        }
    }
}

/// `keys create|revoke|list|numbers`.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, revoke and list API keys; change the numbers a key owns.",
        subcommands: [Create.self, Revoke.self, List.self, Numbers.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API key; the key is printed once and stored hashed.")
        @OptionGroup var store: StoreOptions
        @Option(help: "What the key is for.")
        var name: String
        @OptionGroup var policy: PolicyOptions

        func run() async throws { print(try await execute()) }

        func execute() async throws -> String {
            let (record, secret) = try await store.openStore().createKey(name: name, policy: policy.policy)
            return "created key \(record.id) (\(record.name)); it is shown only now:\n\(secret)"
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id (sbk_...); it stops working at once.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The key's id, as `keys list` shows it.")
        var id: String

        func run() async throws { print(try await execute()) }

        func execute() async throws -> String {
            try await store.openStore().revokeKey(id: id)
            return "revoked key \(id)"
        }
    }

    struct Numbers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove numbers a key owns (what `from` may be); its next request sees them.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The key's id, as `keys list` shows it.")
        var id: String
        @OptionGroup var changes: NumberChanges

        func run() async throws { print(try await execute()) }

        func execute() async throws -> String {
            let numbers = try await store.openStore().changeNumbers(keyId: id, adding: changes.add, removing: changes.remove)
            return "key \(id) owns " + (numbers.isEmpty ? "no number: it can place no call" : numbers.joined(separator: ", "))
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (ids and policies, never secrets).")
        @OptionGroup var store: StoreOptions

        func run() async throws { print(try await execute()) }

        func execute() async throws -> String {
            let keys = try await store.openStore().keys()
            if keys.isEmpty { return "no keys" }
            return keys.map { key in
                let p = key.policy
                return [key.id, key.name, key.revokedAt.map { "revoked \($0)" } ?? "active", "max_concurrent=\(p.maxConcurrent)",
                        "rate=\(p.ratePerSecond)/s burst=\(p.burst)", "allow=\(p.allow.joined(separator: ","))",
                        "deny=\(p.deny.joined(separator: ","))", "numbers=\(p.numbers.joined(separator: ","))",
                        "caller_ids=\(p.callerIds.joined(separator: ","))", p.admin ? "admin" : ""].joined(separator: "  ")
            }.joined(separator: "\n")
        }
    }
}

/// `users add|passwd|numbers`: people who log in to the page.
struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Add users of the page, set their passwords, change the numbers they own.",
        subcommands: [Add.self, Passwd.self, Numbers.self])

    /// A login's password (`PasswordInput`), at least 8 characters.
    struct PasswordOptions: ParsableArguments {
        @OptionGroup var input: PasswordInput

        func read() throws -> String {
            let password = try input.read(prompt: "password: ")
            guard password.count >= 8 else { throw ValidationError("the password must have at least 8 characters") }
            return password
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a user: with --admin an operator (every call and CDR, SIP accounts, PBX rules), else its own calls only.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The login name.")
        var name: String
        @OptionGroup var password: PasswordOptions
        @OptionGroup var policy: PolicyOptions

        func run() async throws {
            try await store.openStore().addUser(name: name, password: try password.read(), policy: policy.policy)
            print("added user \(name)")
        }
    }

    struct Numbers: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add or remove numbers a user owns besides its own SIP account; its sessions' next requests see them.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The login name.")
        var name: String
        @OptionGroup var changes: NumberChanges

        func run() async throws { print(try await execute()) }

        func execute() async throws -> String {
            let numbers = try await store.openStore().changeNumbers(user: name, adding: changes.add, removing: changes.remove)
            return "user \(name) owns its own SIP account" + (numbers.isEmpty ? " only" : " and " + numbers.joined(separator: ", "))
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a user's password; their sessions end.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The login name.")
        var name: String
        @OptionGroup var password: PasswordOptions

        func run() async throws {
            try await store.openStore().setPassword(name: name, password: try password.read())
            print("password of \(name) changed")
        }
    }
}

/// A password from --password-stdin or, on a terminal, a prompt without echo; the caller judges it.
struct PasswordInput: ParsableArguments {
    @Flag(help: "Read the password from standard input (one line).")
    var passwordStdin = false

    func read(prompt: String) throws -> String {
        let password = passwordStdin ? readLine(strippingNewline: true) : getpass(prompt).map { String(cString: $0) }
        guard let password else { throw ValidationError("no password given") }
        return password
    }
}
