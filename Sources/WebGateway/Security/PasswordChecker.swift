import Foundation
import NIOConcurrencyHelpers
import NIOPosix

/// Failed logins per user name and the lock-out they earn. Pure; time is passed in. The first
/// `freeFailures` failures in a row cost nothing; each one after locks the name for `base`, doubling
/// per failure up to `maximum`. A success forgets the name. Names are counted whether or not the
/// user exists, so a lock-out says nothing about who exists.
///
/// ```swift
/// var backoff = LoginBackoff(freeFailures: 3, base: .seconds(1), maximum: .seconds(900))
/// backoff.failed("alice", now: now)   // nil, nil, nil, then .seconds(1), .seconds(2), ...
/// backoff.wait("alice", now: now)     // how long alice is still locked out, or nil
/// ```
struct LoginBackoff: Sendable {
    private struct Entry {
        var failures: Int
        var lockedUntil: ContinuousClock.Instant
    }

    let freeFailures: Int
    let base: Duration
    let maximum: Duration
    private var entries: [String: Entry] = [:]
    private let sweepThreshold: Int

    init(freeFailures: Int, base: Duration, maximum: Duration, sweepThreshold: Int = 10_000) {
        self.freeFailures = freeFailures
        self.base = base
        self.maximum = maximum
        self.sweepThreshold = sweepThreshold
    }

    /// How long `name` is still locked out; nil: it may try now.
    func wait(_ name: String, now: ContinuousClock.Instant) -> Duration? {
        guard let entry = entries[Self.key(name)], entry.lockedUntil > now else { return nil }
        return entry.lockedUntil - now
    }

    /// Counts a failure; returns the lock-out it earned, if any.
    @discardableResult
    mutating func failed(_ name: String, now: ContinuousClock.Instant) -> Duration? {
        if entries.count >= sweepThreshold {
            // A name whose lock ended `maximum` ago has stopped guessing; forget it so the table stays bounded.
            entries = entries.filter { $0.value.lockedUntil + maximum > now }
        }
        let key = Self.key(name)
        var entry = entries[key] ?? Entry(failures: 0, lockedUntil: now)
        entry.failures += 1
        defer { entries[key] = entry }
        let over = entry.failures - freeFailures
        guard over > 0 else { return nil }
        let lock = min(maximum, base * (1 << min(over - 1, 30)))
        entry.lockedUntil = now + lock
        return lock
    }

    mutating func succeeded(_ name: String) {
        entries[Self.key(name)] = nil
    }

    /// A digest, so a flood of long made-up names costs 64 bytes each.
    private static func key(_ name: String) -> String { Secrets.sha256Hex(name) }
}

/// Checks login passwords: off the request path on NIO's thread pool, at most `limit` hashes at
/// once (each PBKDF2 costs ~600,000 rounds), at the same cost for an unknown user as for a known one
/// (it is hashed against ``dummyHash``, so timing does not tell which names exist), and behind the
/// per-name ``LoginBackoff``.
///
/// ```swift
/// let checker = PasswordChecker(limit: 2, backoff: LoginBackoff(freeFailures: 3, base: .seconds(1), maximum: .seconds(900)))
/// switch try await checker.check(name: "alice", password: "...", storedHash: { try store.user(name: "alice")?.passwordHash }) {
/// case .accepted: ...   // open a session
/// case .refused, .locked, .busy: ...
/// }
/// ```
final class PasswordChecker: Sendable {
    /// `(password, stored hash) -> matches`; tests inject one that counts its calls.
    typealias Verify = @Sendable (_ password: String, _ stored: String) -> Bool

    enum Outcome: Equatable, Sendable {
        case accepted
        case refused
        /// The name failed too often; no hash was computed.
        case locked(retryAfter: Duration)
        /// `limit` hashes are running already; no hash was computed.
        case busy
    }

    /// A well-formed hash at the default cost that no password matches, for unknown users.
    static let dummyHash = ["pbkdf2-sha256", String(PasswordHash.defaultIterations), Data(count: 16).base64EncodedString(),
                            Data(count: 32).base64EncodedString()].joined(separator: "$")

    private struct State {
        var running = 0
        var backoff: LoginBackoff
    }

    private let limit: Int
    private let verify: Verify
    private let state: NIOLockedValueBox<State>

    init(limit: Int, backoff: LoginBackoff, verify: @escaping Verify = { PasswordHash.verify($0, against: $1) }) {
        precondition(limit >= 1)
        self.limit = limit
        self.verify = verify
        state = NIOLockedValueBox(State(backoff: backoff))
    }

    /// Runs other password hashing (SIP account provisioning: a new password's hash, the reuse check) on the
    /// pool under the same `limit` as logins, so neither starves the event loop; nil: `limit` hashes are running.
    func hashing<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) async throws -> Result? {
        let admitted = state.withLockedValue { state in
            guard state.running < limit else { return false }
            state.running += 1
            return true
        }
        guard admitted else { return nil }
        defer { state.withLockedValue { $0.running -= 1 } }
        return try await NIOThreadPool.singleton.runIfActive(work)
    }

    /// `storedHash` reads the user's hash (nil: no such user); it runs on the pool with the hash.
    func check(name: String, password: String, storedHash: @escaping @Sendable () throws -> String?) async throws -> Outcome {
        let admitted: Outcome? = state.withLockedValue { state in
            if let wait = state.backoff.wait(name, now: .now) { return .locked(retryAfter: wait) }
            guard state.running < limit else { return .busy }
            state.running += 1
            return nil
        }
        if let admitted { return admitted }
        defer { state.withLockedValue { $0.running -= 1 } }
        let verify = verify
        let matched = try await NIOThreadPool.singleton.runIfActive {
            let stored = try storedHash()
            return verify(password, stored ?? Self.dummyHash) && stored != nil
        }
        return state.withLockedValue { state in
            if matched {
                state.backoff.succeeded(name)
                return .accepted
            }
            state.backoff.failed(name, now: .now)
            return .refused
        }
    }
}
