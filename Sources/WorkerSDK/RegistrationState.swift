import BusSchema
import Foundation

/// Who is reachable, as the `registration.*` events describe it: the bindings Kamailio's registrar holds,
/// each with the time it lapses. A pure value (time comes in as an argument), fed one event at a time by
/// ``RegistrationTable`` in a worker and by the web gateway.
///
/// A binding counts until its last event's `ts` plus its `expires`, so one whose `registration.expired`
/// never came (Kamailio restarted, its usrloc is in memory) still drops out on time. Events are ordered
/// per binding by `ts`: with several bridges (Kamailio fails over between them) a late replay of an older
/// event changes nothing.
///
/// ```swift
/// var state = RegistrationState()
/// state.apply(event)
/// if !state.isRegistered(user: "bob", now: Date()) { forward() }
/// ```
public struct RegistrationState: Sendable {
    /// One binding: the registration as last announced, and what the table derived from it.
    public struct Binding: Equatable, Sendable {
        public var registration: Registration
        /// The bridge that published the last event about it.
        public var bridgeId: String
        /// When that event happened (its `ts`).
        public var updatedAt: Date
        /// When the binding lapses: `updatedAt + expires`.
        public var expiresAt: Date
    }

    private struct Key: Hashable {
        var aor: String
        var contact: String
    }

    private struct Entry {
        var binding: Binding
        /// False after `removed` / `expired`: kept so an older event cannot bring the binding back.
        var active: Bool
    }

    private var entries: [Key: Entry] = [:]

    /// How long a removed or lapsed binding is remembered, to order late events against it; longer than
    /// any `expires` Kamailio grants (`max_expires`, 3600 s in the shipped cfg).
    public static let memory: TimeInterval = 2 * 3600

    public init() {}

    /// Applies a `registration.*` event; other events change nothing. Returns whether the table changed.
    @discardableResult
    public mutating func apply(_ event: Event) -> Bool {
        guard let (change, registration) = event.body.registrationChange else { return false }
        return apply(change, registration, bridgeId: event.bridgeId, at: event.timestamp)
    }

    /// Applies one change that happened at `at`.
    @discardableResult
    public mutating func apply(_ change: RegistrationChange, _ registration: Registration, bridgeId: String, at: Date) -> Bool {
        let key = Key(aor: registration.aor, contact: registration.contact)
        if let known = entries[key], known.binding.updatedAt > at { return false }
        let binding = Binding(registration: registration, bridgeId: bridgeId, updatedAt: at,
                              expiresAt: at.addingTimeInterval(TimeInterval(registration.expires)))
        entries[key] = Entry(binding: binding, active: change == .created || change == .refreshed)
        forget(before: at.addingTimeInterval(-Self.memory))
        return true
    }

    /// Whether `user` (the AOR's user part, e.g. `alice`) has at least one binding that has not lapsed.
    public func isRegistered(user: String, now: Date) -> Bool {
        entries.values.contains { $0.active && $0.binding.registration.user == user && $0.binding.expiresAt > now }
    }

    /// The live contacts of an address of record (`sip:alice@switchboard.local`), most recently updated first.
    public func contacts(aor: String, now: Date) -> [Registration] {
        online(now: now).filter { $0.registration.aor == aor }.map(\.registration)
    }

    /// Every live binding, most recently updated first, each with `expires` counted down to `now`.
    public func online(now: Date) -> [Binding] {
        entries.values.filter { $0.active && $0.binding.expiresAt > now }
            .map { entry in
                var binding = entry.binding
                binding.registration.expires = max(1, Int(binding.expiresAt.timeIntervalSince(now).rounded(.down)))
                return binding
            }
            .sorted { ($0.updatedAt, $0.registration.aor, $0.registration.contact) > ($1.updatedAt, $1.registration.aor, $1.registration.contact) }
    }

    private mutating func forget(before horizon: Date) {
        entries = entries.filter { $0.value.binding.expiresAt >= horizon || $0.value.binding.updatedAt >= horizon }
    }
}

/// A binding's JSON form, one object per binding with the registration's fields flat (`expires` as counted
/// down by ``RegistrationState/online(now:)``), `bridge_id` and `updated_at`: what `switchboard-worker
/// registrations --json` prints, as the gateway's `GET /api/v1/registrations` lists them.
///
/// ```swift
/// let json = try JSONEncoder().encode(online.online())
/// ```
extension RegistrationState.Binding: Encodable {
    private enum CodingKeys: String, CodingKey {
        case aor, user, contact, transport, userAgent = "user_agent", expires, received, bridgeId = "bridge_id",
             updatedAt = "updated_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(registration.aor, forKey: .aor)
        try container.encode(registration.user, forKey: .user)
        try container.encode(registration.contact, forKey: .contact)
        try container.encode(registration.transport, forKey: .transport)
        try container.encodeIfPresent(registration.userAgent, forKey: .userAgent)
        try container.encode(registration.expires, forKey: .expires)
        try container.encodeIfPresent(registration.received, forKey: .received)
        try container.encode(bridgeId, forKey: .bridgeId)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        try container.encode(formatter.string(from: updatedAt), forKey: .updatedAt)
    }
}
