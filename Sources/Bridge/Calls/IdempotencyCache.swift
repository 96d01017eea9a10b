/// Idempotency keys of originates → their call ids, so a retried command places no second call. Keeps the
/// most recent `capacity` keys: far longer than any client retries.
struct IdempotencyCache {
    private var calls: [String: String] = [:]
    private var order: [String] = []
    let capacity: Int

    init(capacity: Int = 100_000) {
        self.capacity = capacity
    }

    /// The call an earlier originate with this (account-scoped) key placed.
    func call(for key: String) -> String? {
        calls[key]
    }

    mutating func remember(_ key: String, call callId: String) {
        calls[key] = callId
        order.append(key)
        if order.count > capacity { calls[order.removeFirst()] = nil }
    }
}
