import Testing
@testable import WebGateway

@Suite struct TokenBucketTests {
    @Test func burstThenRefillAtTheRate() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(capacity: 2, ratePerSecond: 4, now: start)
        #expect(bucket.take(now: start) == .allowed)
        #expect(bucket.take(now: start) == .allowed)
        guard case .limited(let wait) = bucket.take(now: start) else {
            Issue.record("the third request in a burst of two must be limited")
            return
        }
        #expect(wait == .milliseconds(250))
        #expect(bucket.take(now: start + .milliseconds(250)) == .allowed)
        #expect(bucket.take(now: start + .milliseconds(260)) != .allowed)
    }

    @Test func limiterKeepsOneBucketPerName() {
        let limiter = RateLimiter()
        let now = ContinuousClock.now
        #expect(limiter.take("a", capacity: 1, ratePerSecond: 1, now: now) == .allowed)
        #expect(limiter.take("a", capacity: 1, ratePerSecond: 1, now: now) != .allowed)
        #expect(limiter.take("b", capacity: 1, ratePerSecond: 1, now: now) == .allowed)
    }

    @Test func fullBucketsAreForgottenWhenTheTableGrows() {
        let limiter = RateLimiter(sweepThreshold: 2)
        let now = ContinuousClock.now
        _ = limiter.take("a", capacity: 1, ratePerSecond: 1, now: now)
        _ = limiter.take("b", capacity: 1, ratePerSecond: 1, now: now)
        // Two seconds later both are full again and swept; "a" starts with a full bucket.
        #expect(limiter.take("c", capacity: 1, ratePerSecond: 1, now: now + .seconds(2)) == .allowed)
        #expect(limiter.take("a", capacity: 1, ratePerSecond: 1, now: now + .seconds(2)) == .allowed)
    }
}
