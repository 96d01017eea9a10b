import Foundation
import NIOConcurrencyHelpers

/// A token bucket: `capacity` requests at once, refilled at `ratePerSecond`. Pure; time is passed in.
///
/// ```swift
/// var bucket = TokenBucket(capacity: 2, ratePerSecond: 1, now: .now)
/// bucket.take(now: .now)   // .allowed
/// ```
struct TokenBucket: Sendable {
    enum Outcome: Equatable {
        case allowed
        /// Refused; a token will be there after this long.
        case limited(retryAfter: Duration)
    }

    let capacity: Double
    let ratePerSecond: Double
    private(set) var tokens: Double
    private var last: ContinuousClock.Instant

    init(capacity: Double, ratePerSecond: Double, now: ContinuousClock.Instant) {
        precondition(capacity >= 1 && ratePerSecond > 0)
        self.capacity = capacity
        self.ratePerSecond = ratePerSecond
        self.tokens = capacity
        self.last = now
    }

    mutating func take(now: ContinuousClock.Instant) -> Outcome {
        refill(now: now)
        if tokens >= 1 {
            tokens -= 1
            return .allowed
        }
        return .limited(retryAfter: .seconds((1 - tokens) / ratePerSecond))
    }

    /// True when the bucket has refilled completely and can be forgotten.
    mutating func isFull(now: ContinuousClock.Instant) -> Bool {
        refill(now: now)
        return tokens >= capacity
    }

    private mutating func refill(now: ContinuousClock.Instant) {
        let elapsed = now - last
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(capacity, tokens + max(0, seconds) * ratePerSecond)
        last = now
    }
}

/// One token bucket per name (an API key id, a source address), created on first use; full buckets
/// are forgotten when the table grows, so a flood of new sources cannot grow it without bound.
///
/// ```swift
/// let limiter = RateLimiter()
/// if case .limited(let wait) = limiter.take("203.0.113.7", capacity: 20, ratePerSecond: 10) { ... }
/// ```
final class RateLimiter: Sendable {
    private let buckets = NIOLockedValueBox<[String: TokenBucket]>([:])
    private let sweepThreshold: Int

    init(sweepThreshold: Int = 10_000) {
        self.sweepThreshold = sweepThreshold
    }

    func take(_ name: String, capacity: Double, ratePerSecond: Double, now: ContinuousClock.Instant = .now) -> TokenBucket.Outcome {
        buckets.withLockedValue { buckets in
            if buckets.count >= sweepThreshold {
                buckets = buckets.filter { _, bucket in var copy = bucket; return !copy.isFull(now: now) }
            }
            var bucket = buckets[name] ?? TokenBucket(capacity: capacity, ratePerSecond: ratePerSecond, now: now)
            let outcome = bucket.take(now: now)
            buckets[name] = bucket
            return outcome
        }
    }
}
