import Crypto
import Foundation
import _CryptoExtras

/// Random tokens, digests and password hashes: the only place the gateway touches cryptography.
enum Secrets {
    /// `count` bytes from the system's secure generator, as unpadded base64url text.
    ///
    /// ```swift
    /// let sessionId = Secrets.randomToken()   // 43 characters, 256 bits
    /// ```
    static func randomToken(bytes count: Int = 32) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return base64URL(bytes)
    }

    /// Lower-case hex of the SHA-256 of `text`: how API keys and session ids are stored.
    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Compares two strings in time that depends only on their lengths.
    static func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8), b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// A password hash in the form `pbkdf2-sha256$ITERATIONS$SALT$HASH` (base64), PBKDF2-HMAC-SHA256 from
/// swift-crypto. The iteration count travels with the hash, so it can be raised without a migration.
///
/// ```swift
/// let stored = try PasswordHash.make("correct horse")
/// PasswordHash.verify("correct horse", against: stored)   // true
/// ```
enum PasswordHash {
    /// OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
    static let defaultIterations = 600_000
    private static let scheme = "pbkdf2-sha256"

    static func make(_ password: String, iterations: Int = defaultIterations) throws -> String {
        let salt = (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let hash = try derive(password, salt: salt, iterations: iterations)
        return [scheme, String(iterations), Data(salt).base64EncodedString(), Data(hash).base64EncodedString()].joined(separator: "$")
    }

    static func verify(_ password: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4, parts[0] == scheme, let iterations = Int(parts[1]), iterations > 0,
              let salt = Data(base64Encoded: parts[2]), let expected = Data(base64Encoded: parts[3]),
              let actual = try? derive(password, salt: Array(salt), iterations: iterations) else { return false }
        return Secrets.constantTimeEqual(Data(actual).base64EncodedString(), expected.base64EncodedString())
    }

    private static func derive(_ password: String, salt: [UInt8], iterations: Int) throws -> [UInt8] {
        // The unchecked variant lets tests use a small count; production hashes use `defaultIterations`.
        let key = try KDF.Insecure.PBKDF2.deriveKey(from: Array(password.utf8), salt: salt, using: .sha256,
                                                    outputByteCount: 32, unsafeUncheckedRounds: iterations)
        return key.withUnsafeBytes { Array($0) }
    }
}
