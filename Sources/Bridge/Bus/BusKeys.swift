import Foundation
import ZeroMQ

/// The client keys the bus admits: on every socket (`curve_clients`), on one role's sockets
/// (`curve_workers`, `curve_subscribers`, `curve_commanders`), and the accounts a command key is bound to
/// (`NAME.accounts` beside `NAME.pub`).
///
/// ```swift
/// let keys = try BusKeys.Directories(everySocket: nil, byRole: [.workers: "keys/workers"]).read()
/// keys.admits(routerKey, on: .workers)      // true
/// keys.admits(routerKey, on: .commanders)   // false
/// ```
struct BusKeys: Equatable, Sendable {
    var everySocket: Set<CurvePublicKey>
    var byRole: [BusEndpoints.Role: Set<CurvePublicKey>] = [:]
    /// Command clients limited to some accounts; other keys act for every account.
    var commandAccounts: [CurvePublicKey: Set<String>] = [:]

    /// Where the keys are read from, at start and again while the bridge runs.
    struct Directories: Equatable, Sendable, CustomStringConvertible {
        var everySocket: String?
        var byRole: [BusEndpoints.Role: String] = [:]

        /// Reads every directory; a file that cannot be read fails the whole read.
        func read() throws -> BusKeys {
            var accounts: [CurvePublicKey: Set<String>] = [:]
            for directory in [everySocket, byRole[.commanders]].compactMap({ $0 }) {
                accounts.merge(try BusKeys.commandAccounts(in: directory)) { $0.union($1) }
            }
            return BusKeys(everySocket: try everySocket.map { try CurveKeyFile.loadPublicKeys(directory: $0) } ?? [],
                           byRole: try byRole.mapValues { try CurveKeyFile.loadPublicKeys(directory: $0) },
                           commandAccounts: accounts)
        }

        var description: String { ([everySocket].compactMap { $0 } + byRole.values.sorted()).joined(separator: ", ") }
    }

    /// True when no client could connect at all.
    var isEmpty: Bool { everySocket.isEmpty && byRole.values.allSatisfy(\.isEmpty) }

    /// The keys per ZAP domain (each socket's domain is its role's name), for the ``ZAPAuthenticator``.
    var domainKeys: [String: Set<CurvePublicKey>] {
        Dictionary(uniqueKeysWithValues: byRole.map { ($0.key.rawValue, $0.value) })
    }

    func admits(_ key: CurvePublicKey, on role: BusEndpoints.Role) -> Bool {
        everySocket.contains(key) || byRole[role]?.contains(key) == true
    }

    /// The accounts `key` may act for on the commands socket.
    func scope(of key: CurvePublicKey) -> CommandScope {
        commandAccounts[key].map(CommandScope.accounts) ?? .everyAccount
    }

    /// `NAME.accounts` beside `NAME.pub`: the accounts that key may act for on the commands socket, one per
    /// line (`#` comments); a key without such a file acts for every account.
    static func commandAccounts(in directory: String) throws -> [CurvePublicKey: Set<String>] {
        var scopes: [CurvePublicKey: Set<String>] = [:]
        let base = URL(fileURLWithPath: directory)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".accounts") && !name.hasPrefix(".") {
            let keyFile = base.appendingPathComponent(String(name.dropLast(".accounts".count)) + ".pub").path
            guard FileManager.default.fileExists(atPath: keyFile) else {
                throw BridgeSettingsError("\(base.appendingPathComponent(name).path): no \(keyFile) beside it, so no key to limit")
            }
            let text = try String(contentsOfFile: base.appendingPathComponent(name).path, encoding: .utf8)
            let accounts = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
            scopes[try CurveKeyFile.loadPublicKey(from: keyFile)] = Set(accounts)
        }
        return scopes
    }
}
