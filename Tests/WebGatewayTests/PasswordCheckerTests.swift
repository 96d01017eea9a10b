import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOConcurrencyHelpers
import Testing
@testable import WebGateway

@Suite struct LoginBackoffTests {
    @Test func locksOutAfterTheFreeFailuresDoublingUpToTheMaximum() {
        var backoff = LoginBackoff(freeFailures: 2, base: .seconds(1), maximum: .seconds(5))
        let now = ContinuousClock.now
        #expect(backoff.failed("alice", now: now) == nil)
        #expect(backoff.failed("alice", now: now) == nil)
        #expect(backoff.wait("alice", now: now) == nil)
        #expect(backoff.failed("alice", now: now) == .seconds(1))
        #expect(backoff.wait("alice", now: now) == .seconds(1))
        #expect(backoff.wait("alice", now: now + .seconds(1)) == nil)
        #expect(backoff.failed("alice", now: now) == .seconds(2))
        #expect(backoff.failed("alice", now: now) == .seconds(4))
        #expect(backoff.failed("alice", now: now) == .seconds(5))
        // Counted per name: bob is not locked out by alice's failures.
        #expect(backoff.wait("bob", now: now) == nil)
        backoff.succeeded("alice")
        #expect(backoff.wait("alice", now: now) == nil)
        #expect(backoff.failed("alice", now: now) == nil)
    }

    @Test func theTableStaysBounded() {
        var backoff = LoginBackoff(freeFailures: 0, base: .seconds(1), maximum: .seconds(4), sweepThreshold: 3)
        let start = ContinuousClock.now
        for index in 0..<3 { backoff.failed("user\(index)", now: start) }
        // Long after those locks ended, the next failure sweeps them.
        backoff.failed("late", now: start + .seconds(10))
        #expect(backoff.wait("late", now: start + .seconds(10)) == .seconds(1))
        // Counted from zero again: its second failure would have cost 2 s.
        #expect(backoff.failed("user0", now: start + .seconds(10)) == .seconds(1))
    }
}

/// Counts the password checks and can hold them, to see what login hashes and when.
final class CountingVerifier: Sendable {
    private let state = NIOLockedValueBox<(calls: [String], held: Bool)>(([], false))
    let correct: String

    init(correct: String) {
        self.correct = correct
    }

    var calls: [String] { state.withLockedValue { $0.calls } }
    var held: Bool {
        get { state.withLockedValue { $0.held } }
        set { state.withLockedValue { $0.held = newValue } }
    }

    var verify: PasswordChecker.Verify {
        { password, stored in
            self.state.withLockedValue { $0.calls.append(stored) }
            while self.held { usleep(1000) }
            return password == self.correct
        }
    }
}

@Suite struct PasswordCheckerTests {
    func fixture(_ verifier: CountingVerifier, adjust: (inout GatewayConfiguration) -> Void = { _ in }) throws -> GatewayFixture {
        var fixture = try GatewayFixture(adjust)
        fixture.verifyPassword = verifier.verify
        try fixture.store.addUser(name: "alice", password: "correct horse", policy: AccessPolicy(admin: true), iterations: 1000)
        return fixture
    }

    func login(_ client: any TestClientProtocol, _ name: String, _ password: String) async throws -> TestResponse {
        try await client.send(.post, "/api/v1/session", json: #"{"username":"\#(name)","password":"\#(password)"}"#)
    }

    @Test func anUnknownUserCostsAHashAgainstTheDummyLikeAKnownOne() async throws {
        let verifier = CountingVerifier(correct: "correct horse")
        let fixture = try fixture(verifier)
        try await fixture.test { client async throws in
            #expect(try await login(client, "mallory", "guess").status == .unauthorized)
            #expect(try await login(client, "alice", "guess").status == .unauthorized)
            // The right password of a user that does not exist does not let anyone in.
            #expect(try await login(client, "nobody", "correct horse").status == .unauthorized)
            #expect(try await login(client, "alice", "correct horse").status == .ok)
        }
        let calls = verifier.calls
        #expect(calls.count == 4)
        #expect(calls[0] == PasswordChecker.dummyHash && calls[2] == PasswordChecker.dummyHash)
        #expect(calls[1] != PasswordChecker.dummyHash && calls[1].hasPrefix("pbkdf2-sha256$1000$"))
        #expect(PasswordChecker.dummyHash.hasPrefix("pbkdf2-sha256$\(PasswordHash.defaultIterations)$"))
    }

    @Test func aUserNameIsLockedOutAfterFailuresWithoutHashing() async throws {
        let verifier = CountingVerifier(correct: "correct horse")
        let fixture = try fixture(verifier) {
            $0.loginFreeFailures = 2
            $0.loginLockout = .seconds(60)
        }
        try await fixture.test { client async throws in
            for _ in 0..<3 { #expect(try await login(client, "alice", "guess").status == .unauthorized) }
            // Locked: even the right password is refused, with Retry-After, and nothing is hashed.
            let locked = try await login(client, "alice", "correct horse")
            #expect(locked.status == .tooManyRequests)
            #expect(locked.object["type"] as? String == "https://switchboard.dev/problems/login-locked")
            #expect(Int(locked.headers[.retryAfter] ?? "") ?? 0 >= 59)
            #expect(verifier.calls.count == 3)
            // An unknown name is counted the same way, so a lock-out does not tell who exists.
            for _ in 0..<3 { #expect(try await login(client, "mallory", "guess").status == .unauthorized) }
            #expect(try await login(client, "mallory", "guess").status == .tooManyRequests)
        }
    }

    @Test func hashesBeyondThePoolAreRefusedWith503() async throws {
        let verifier = CountingVerifier(correct: "correct horse")
        verifier.held = true
        let fixture = try fixture(verifier) { $0.loginConcurrentHashes = 1 }
        try await fixture.test { client async throws in
            async let first = login(client, "alice", "correct horse")
            while verifier.calls.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
            let busy = try await login(client, "bob", "whatever")
            #expect(busy.status == .serviceUnavailable)
            #expect(busy.headers[.retryAfter] == "1")
            #expect(busy.object["type"] as? String == "https://switchboard.dev/problems/login-busy")
            verifier.held = false
            #expect(try await first.status == .ok)
            #expect(try await login(client, "bob", "whatever").status == .unauthorized)
        }
        #expect(verifier.calls.count == 2)
    }
}
