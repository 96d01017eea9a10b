private import CZeroMQ

/// Why a CURVE key or a Z85 string was refused.
public enum CurveKeyError: Error, Equatable, CustomStringConvertible {
    /// A raw key is not 32 bytes.
    case wrongKeyLength(bytes: Int)
    /// A Z85 key is not 40 characters.
    case wrongZ85KeyLength(characters: Int)
    /// Z85 encodes 4 bytes at a time: the input is not a multiple of 4 bytes.
    case z85InputNotMultipleOfFour(bytes: Int)
    /// Z85 decodes 5 characters at a time: the text is not a multiple of 5 characters.
    case z85TextNotMultipleOfFive(characters: Int)
    /// A character outside the Z85 alphabet, at `offset` (in characters).
    case invalidZ85Character(Character, offset: Int)
    /// A 5-character group at `offset` decodes to more than 32 bits.
    case z85GroupOverflow(offset: Int)
    /// libzmq itself failed (for instance it was built without CURVE: `ENOTSUP`).
    case library(ZMQError)

    public var description: String {
        switch self {
        case .wrongKeyLength(let bytes): "a CURVE key is 32 bytes, got \(bytes)"
        case .wrongZ85KeyLength(let characters): "a Z85 CURVE key is 40 characters, got \(characters)"
        case .z85InputNotMultipleOfFour(let bytes): "Z85 encodes multiples of 4 bytes, got \(bytes)"
        case .z85TextNotMultipleOfFive(let characters): "Z85 text is a multiple of 5 characters, got \(characters)"
        case .invalidZ85Character(let character, let offset): "invalid Z85 character \(character.debugDescription) at offset \(offset)"
        case .z85GroupOverflow(let offset): "Z85 group at offset \(offset) exceeds 32 bits"
        case .library(let error): error.description
        }
    }
}

/// Z85 (ZeroMQ RFC 32), the printable encoding of CURVE keys, through libzmq's encoder.
///
/// ```swift
/// let text = try Z85.encode([0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B])   // "HelloWorld"
/// let bytes = try Z85.decode(text)
/// ```
public enum Z85 {
    static let alphabet = Array("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
    private static let decoder: [UInt8: UInt64] = {
        var table: [UInt8: UInt64] = [:]
        for (value, character) in alphabet.enumerated() { table[character] = UInt64(value) }
        return table
    }()

    /// Encodes `bytes` (a multiple of 4 long) as Z85 text, 5 characters per 4 bytes.
    public static func encode(_ bytes: [UInt8]) throws(CurveKeyError) -> String {
        guard bytes.count % 4 == 0 else { throw .z85InputNotMultipleOfFour(bytes: bytes.count) }
        var buffer = [CChar](repeating: 0, count: bytes.count / 4 * 5 + 1)
        do throws(ZMQError) {
            try retryingEINTR("zmq_z85_encode") {
                bytes.withUnsafeBufferPointer { zmq_z85_encode(&buffer, $0.baseAddress, $0.count) == nil ? -1 : 0 }
            }
        } catch {
            throw .library(error)
        }
        return String(decoding: buffer.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Decodes Z85 text (a multiple of 5 characters, Z85 alphabet only) into bytes.
    public static func decode(_ text: String) throws(CurveKeyError) -> [UInt8] {
        let characters = Array(text.utf8)
        // Characters, not bytes, so a multi-byte character is reported where a reader sees it.
        guard characters.count == text.count else {
            let offset = text.firstIndex { $0.utf8.count != 1 }.map { text.distance(from: text.startIndex, to: $0) } ?? 0
            throw .invalidZ85Character(text[text.index(text.startIndex, offsetBy: offset)], offset: offset)
        }
        guard characters.count % 5 == 0 else { throw .z85TextNotMultipleOfFive(characters: characters.count) }
        for group in stride(from: 0, to: characters.count, by: 5) {
            var value: UInt64 = 0
            for offset in group..<group + 5 {
                guard let digit = decoder[characters[offset]] else {
                    throw .invalidZ85Character(Character(Unicode.Scalar(characters[offset])), offset: offset)
                }
                value = value * 85 + digit
            }
            guard value <= UInt64(UInt32.max) else { throw .z85GroupOverflow(offset: group) }
        }
        var bytes = [UInt8](repeating: 0, count: characters.count / 5 * 4)
        do throws(ZMQError) {
            try retryingEINTR("zmq_z85_decode") { zmq_z85_decode(&bytes, text) == nil ? -1 : 0 }
        } catch {
            throw .library(error)
        }
        return bytes
    }
}

/// A CURVE public key (32 bytes): safe to print, log and share.
///
/// ```swift
/// let bridgeKey = try CurvePublicKey(z85: "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
/// ```
public struct CurvePublicKey: Hashable, Sendable, CustomStringConvertible {
    /// The 32 raw bytes.
    public let bytes: [UInt8]

    /// Wraps 32 raw bytes.
    public init(bytes: [UInt8]) throws(CurveKeyError) {
        guard bytes.count == 32 else { throw .wrongKeyLength(bytes: bytes.count) }
        self.bytes = bytes
    }

    /// Decodes the 40-character Z85 form.
    public init(z85: String) throws(CurveKeyError) {
        try self.init(bytes: try decodeKey(z85))
    }

    /// The 40-character Z85 form.
    public var z85: String { try! Z85.encode(bytes) }  // 32 bytes always encode

    /// The Z85 form: a public key is meant to be shown.
    public var description: String { z85 }
}

/// A CURVE secret key (32 bytes). Its description is redacted so it never lands in a log by accident.
///
/// ```swift
/// let secret = try CurveSecretKey(z85: "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6")
/// ```
public struct CurveSecretKey: Hashable, Sendable, CustomStringConvertible {
    /// The 32 raw bytes.
    public let bytes: [UInt8]

    /// Wraps 32 raw bytes.
    public init(bytes: [UInt8]) throws(CurveKeyError) {
        guard bytes.count == 32 else { throw .wrongKeyLength(bytes: bytes.count) }
        self.bytes = bytes
    }

    /// Decodes the 40-character Z85 form.
    public init(z85: String) throws(CurveKeyError) {
        try self.init(bytes: try decodeKey(z85))
    }

    /// The 40-character Z85 form, for writing a key file.
    public var z85: String { try! Z85.encode(bytes) }  // 32 bytes always encode

    public var description: String { "CurveSecretKey(redacted)" }
}

/// A CURVE long-term key pair: a worker's or a bridge's identity on the bus.
///
/// ```swift
/// let pair = try CurveKeyPair.generate()
/// try CurveKeyFile.save(pair, to: "/etc/switchboard/worker.key")
/// print(pair.publicKey)   // give this to the bridge's allow-list
/// ```
public struct CurveKeyPair: Equatable, Sendable, CustomStringConvertible {
    public let publicKey: CurvePublicKey
    public let secretKey: CurveSecretKey

    /// Pairs two keys as given; use ``init(secretKey:)`` to derive the public half instead.
    public init(publicKey: CurvePublicKey, secretKey: CurveSecretKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// The pair whose secret half is `secretKey` (the public half is derived).
    public init(secretKey: CurveSecretKey) throws(CurveKeyError) {
        self.init(publicKey: try CurveKeyPair.derivePublic(fromSecret: secretKey), secretKey: secretKey)
    }

    /// A fresh random key pair (`zmq_curve_keypair`). Throws ``CurveKeyError/library(_:)`` with `ENOTSUP`
    /// when libzmq was built without CURVE.
    public static func generate() throws(CurveKeyError) -> CurveKeyPair {
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        do throws(ZMQError) {
            try retryingEINTR("zmq_curve_keypair") { zmq_curve_keypair(&publicText, &secretText) }
        } catch {
            throw .library(error)
        }
        return CurveKeyPair(publicKey: try CurvePublicKey(z85: string(publicText)),
                            secretKey: try CurveSecretKey(z85: string(secretText)))
    }

    /// The public key that belongs to `secret` (`zmq_curve_public`).
    public static func derivePublic(fromSecret secret: CurveSecretKey) throws(CurveKeyError) -> CurvePublicKey {
        var publicText = [CChar](repeating: 0, count: 41)
        let secretText = secret.z85
        do throws(ZMQError) {
            try retryingEINTR("zmq_curve_public") { zmq_curve_public(&publicText, secretText) }
        } catch {
            throw .library(error)
        }
        return try CurvePublicKey(z85: string(publicText))
    }

    /// Only the public half is shown.
    public var description: String { "CurveKeyPair(public: \(publicKey.z85))" }
}

/// True when this libzmq supports CURVE (`zmq_has("curve")`).
public var zmqHasCurve: Bool { zmq_has("curve") == 1 }

private func decodeKey(_ z85: String) throws(CurveKeyError) -> [UInt8] {
    guard z85.count == 40 else { throw .wrongZ85KeyLength(characters: z85.count) }
    return try Z85.decode(z85)
}

private func string(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
