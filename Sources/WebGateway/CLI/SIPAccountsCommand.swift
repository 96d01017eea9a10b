import ArgumentParser
import Foundation
import Provisioning

/// `sip-accounts add|set|disable|enable|delete|list`: the SIP accounts Kamailio authenticates, written straight
/// into its database (the same store and password policy as `/api/v1/sip-accounts`).
///
/// ```sh
/// switchboard-gateway sip-accounts add --kamailio-db /var/lib/kamailio/switchboard.db --user carol --alias 12025550123
/// switchboard-gateway sip-accounts disable --user carol       # kamailio_database from the environment
/// ```
struct SIPAccountsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sip-accounts", abstract: "Provision the SIP accounts Kamailio authenticates (openser-cfg's database).",
        subcommands: [Add.self, Change.self, Disable.self, Enable.self, Delete.self, List.self])

    /// `--kamailio-db`, else `kamailio_database` and the policy's settings from SWITCHBOARD_GATEWAY_* variables.
    struct StoreOptions: ParsableArguments {
        @Option(name: .customLong("kamailio-db"), help: "Kamailio's SQLite file (openser-cfg/make-db.sh). Default: the configured kamailio_database.")
        var path: String?

        func open() async throws -> (SIPAccountStore, GatewayConfiguration) {
            let configuration = try await GatewayConfiguration.load(file: nil)
            guard let path = path ?? configuration.kamailioDatabase else {
                throw ValidationError("give --kamailio-db or set SWITCHBOARD_GATEWAY_KAMAILIO_DATABASE")
            }
            return (try SIPAccountStore.open(path: path, minimumPasswordLength: configuration.sipPasswordMinimumLength), configuration)
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an account; it may register and call at once.")
        @OptionGroup var store: StoreOptions
        @Option(help: "The SIP user name (what the phone authenticates as).")
        var user: String
        @Option(help: "Its domain, also the digest realm. Default: the configured sip.domain.")
        var domain: String?
        @Option(help: "The name shown for it.")
        var displayName: String?
        @Option(name: .customLong("alias"), help: "Another user part that reaches it, such as a DID (repeatable).")
        var aliases: [String] = []
        @Option(help: "Who pays for its calls (passed to the bridge as X-Switchboard-Billing-Account).")
        var billingAccount: String?
        @Flag(help: "Create it disabled.")
        var disabled = false
        @OptionGroup var password: PasswordInput

        func run() async throws {
            let (store, configuration) = try await store.open()
            let account = SIPAccount(user: user, domain: domain ?? configuration.sipDomain, displayName: displayName, aliases: aliases,
                                     billingAccount: billingAccount, enabled: !disabled)
            print(SIPAccountsCommand.describe(try store.create(account, password: try password.read(prompt: "SIP password: "))))
        }
    }

    struct Change: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "set", abstract: "Change an account's password, display name, aliases or billing account.")
        @OptionGroup var account: AccountOptions
        @Flag(help: "Set a new password (asked for, or read with --password-stdin).")
        var newPassword = false
        @OptionGroup var password: PasswordInput
        @Option(help: "The name shown for it; \"\" clears it.")
        var displayName: String?
        @Option(name: .customLong("alias"), help: "The aliases it then has (repeatable; replaces the list).")
        var aliases: [String] = []
        @Flag(help: "Remove every alias.")
        var noAliases = false
        @Option(help: "Who pays for its calls; \"\" clears it.")
        var billingAccount: String?

        func validate() throws {
            if noAliases && !aliases.isEmpty { throw ValidationError("--alias and --no-aliases exclude each other") }
            if !newPassword && displayName == nil && aliases.isEmpty && !noAliases && billingAccount == nil {
                throw ValidationError("nothing to change: give --new-password, --display-name, --alias, --no-aliases or --billing-account")
            }
        }

        func run() async throws {
            let (store, _) = try await account.store.open()
            let change = SIPAccountChange(password: newPassword ? try password.read(prompt: "SIP password: ") : nil, displayName: displayName,
                                          aliases: noAliases ? [] : aliases.isEmpty ? nil : aliases, billingAccount: billingAccount)
            print(SIPAccountsCommand.describe(try store.update(user: account.user, change)))
        }
    }

    /// The store and the account a command acts on.
    struct AccountOptions: ParsableArguments {
        @OptionGroup var store: StoreOptions
        @Option(help: "The SIP user name.")
        var user: String

        func setEnabled(_ enabled: Bool) async throws {
            print(SIPAccountsCommand.describe(try await store.open().0.update(user: user, SIPAccountChange(enabled: enabled))))
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an account: its next REGISTER or call gets 403 Account Disabled.")
        @OptionGroup var account: AccountOptions

        func run() async throws { try await account.setEnabled(false) }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled account again.")
        @OptionGroup var account: AccountOptions

        func run() async throws { try await account.setEnabled(true) }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an account, its aliases and its password history.")
        @OptionGroup var account: AccountOptions

        func run() async throws {
            try await account.store.open().0.delete(user: account.user)
            print("deleted SIP account \(account.user)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts (never passwords or hashes).")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let accounts = try await store.open().0.accounts()
            print(accounts.isEmpty ? "no SIP accounts" : accounts.map(SIPAccountsCommand.describe).joined(separator: "\n"))
        }
    }

    static func describe(_ account: SIPAccount) -> String {
        [account.uri, account.enabled ? "enabled" : "DISABLED", account.displayName.map { "name=\($0)" } ?? "",
         account.aliases.isEmpty ? "" : "aliases=\(account.aliases.joined(separator: ","))",
         account.billingAccount.map { "billing=\($0)" } ?? ""].filter { !$0.isEmpty }.joined(separator: "  ")
    }
}
