import Foundation
import Synchronization
import Testing
@testable import ZeroMQ

/// CURVE over real sockets: a ROUTER server with a ZAP allow-list and DEALER clients, as bridge and workers.
@Suite(.serialized) struct CurveTests {
    /// Denials reported on the authenticator thread, read by the test.
    final class Denials: Sendable {
        private let items = Mutex<[ZAPDenial]>([])
        func record(_ denial: ZAPDenial) { items.withLock { $0.append(denial) } }
        var all: [ZAPDenial] { items.withLock { $0 } }

        /// Waits up to `timeout` for at least one denial.
        func waitForFirst(timeout: Duration = .seconds(5)) -> ZAPDenial? {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if let first = all.first { return first }
                Thread.sleep(forTimeInterval: 0.01)
            }
            return nil
        }
    }

    /// A CURVE server: context, ZAP handler and ROUTER, closed in the order a bridge must follow.
    final class Server {
        let context: ZMQContext
        let keys: CurveKeyPair
        let zap: ZAPAuthenticator
        let router: ZMQSocket
        let endpoint: String
        let denials = Denials()

        init(allowed: Set<CurvePublicKey>) throws {
            context = try ZMQContext()
            keys = try CurveKeyPair.generate()
            let denials = self.denials
            zap = try ZAPAuthenticator(context: context, allowedKeys: allowed) { denials.record($0) }
            router = try ZMQSocket(context: context, type: .router)
            try router.setCurveServer(secretKey: keys.secretKey)
            try router.setZAPDomain("decisions")
            endpoint = try router.bind("tcp://127.0.0.1:*")
        }

        func client(_ keys: CurveKeyPair?, serverKey: CurvePublicKey? = nil, identity: String? = nil) throws -> ZMQSocket {
            let dealer = try ZMQSocket(context: context, type: .dealer)
            if let identity { try dealer.setIdentity(Array(identity.utf8)) }
            if let keys { try dealer.setCurveClient(keyPair: keys, serverKey: serverKey ?? self.keys.publicKey) }
            try dealer.connect(endpoint)
            return dealer
        }

        func close() {
            router.close()
            zap.stop()
            context.close()
        }
    }

    static func receive(_ socket: ZMQSocket, within timeout: Duration) throws -> [[UInt8]]? {
        var poller = ZMQPoller()
        let index = poller.add(socket)
        guard try poller.poll(timeout: timeout).contains(index) else { return nil }
        return try socket.receive(dontWait: true)
    }

    @Test func curveIsBuiltIn() {
        #expect(zmqHasCurve)
    }

    @Test func allowedClientExchangesMessages() throws {
        let worker = try CurveKeyPair.generate()
        let server = try Server(allowed: [worker.publicKey])
        defer { server.close() }
        let dealer = try server.client(worker, identity: "w1")
        defer { dealer.close() }

        try dealer.send([Array("hello".utf8)])
        let frames = try #require(try Self.receive(server.router, within: .seconds(5)))
        #expect(frames == [Array("w1".utf8), Array("hello".utf8)])
        try server.router.send([frames[0], Array("back".utf8)])
        #expect(try Self.receive(dealer, within: .seconds(5)) == [Array("back".utf8)])
        #expect(server.denials.all.isEmpty)
    }

    @Test func unlistedKeyGetsNothingThroughAndIsReported() throws {
        let worker = try CurveKeyPair.generate()
        let intruder = try CurveKeyPair.generate()
        let server = try Server(allowed: [worker.publicKey])
        defer { server.close() }
        let dealer = try server.client(intruder)
        defer { dealer.close() }

        try dealer.send([Array("let me in".utf8)], dontWait: true)
        let denial = try #require(server.denials.waitForFirst())
        #expect(denial.statusCode == 400)
        #expect(denial.mechanism == "CURVE")
        #expect(denial.publicKey == intruder.publicKey)
        #expect(denial.address == "127.0.0.1")
        #expect(denial.domain == "decisions")
        #expect(try Self.receive(server.router, within: .milliseconds(500)) == nil)
    }

    @Test func allowListChangesApplyToNewHandshakes() throws {
        let worker = try CurveKeyPair.generate()
        let server = try Server(allowed: [])
        defer { server.close() }
        server.zap.setAllowedKeys([], domainKeys: ["decisions": [worker.publicKey]])
        #expect(server.zap.allowedKeys.isEmpty && server.zap.domainKeys == ["decisions": [worker.publicKey]])
        let dealer = try server.client(worker)
        defer { dealer.close() }
        try dealer.send([Array("hello".utf8)])
        #expect(try Self.receive(server.router, within: .seconds(5))?.last == Array("hello".utf8))
    }

    @Test func clientWithoutCurveCannotTalkToACurveServer() throws {
        let server = try Server(allowed: [])
        defer { server.close() }
        let dealer = try server.client(nil)
        defer { dealer.close() }
        try dealer.send([Array("plain".utf8)], dontWait: true)
        #expect(try Self.receive(server.router, within: .seconds(1)) == nil)
    }

    @Test func clientExpectingAnotherServerKeyGetsNothingThrough() throws {
        let worker = try CurveKeyPair.generate()
        let server = try Server(allowed: [worker.publicKey])
        defer { server.close() }
        let impostorServer = try CurveKeyPair.generate()
        let dealer = try server.client(worker, serverKey: impostorServer.publicKey)
        defer { dealer.close() }
        try dealer.send([Array("hello".utf8)], dontWait: true)
        #expect(try Self.receive(server.router, within: .seconds(1)) == nil)
    }

    @Test func plainSocketsWithoutADomainAreNotAskedAbout() throws {
        let server = try Server(allowed: [])
        defer { server.close() }
        // A NULL-mechanism pair in the same context: libzmq consults ZAP only when a ZAP domain is set.
        let pull = try ZMQSocket(context: server.context, type: .pull)
        let push = try ZMQSocket(context: server.context, type: .push)
        defer { pull.close(); push.close() }
        try push.connect(try pull.bind("tcp://127.0.0.1:*"))
        try push.send([Array("plain".utf8)])
        #expect(try Self.receive(pull, within: .seconds(5)) == [Array("plain".utf8)])
        #expect(server.denials.all.isEmpty)
    }

    @Test func plainSocketsWithADomainAreRefused() throws {
        let server = try Server(allowed: [])
        defer { server.close() }
        let pull = try ZMQSocket(context: server.context, type: .pull)
        let push = try ZMQSocket(context: server.context, type: .push)
        defer { pull.close(); push.close() }
        try pull.setZAPDomain("events")
        try push.connect(try pull.bind("tcp://127.0.0.1:*"))
        try push.send([Array("plain".utf8)], dontWait: true)
        let denial = try #require(server.denials.waitForFirst())
        #expect(denial.mechanism == "NULL" && denial.statusText == "CURVE required" && denial.domain == "events")
        #expect(try Self.receive(pull, within: .milliseconds(300)) == nil)
    }

    @Test func secondHandlerInTheSameContextIsRefused() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let first = try ZAPAuthenticator(context: context, allowedKeys: [])
        defer { first.stop() }
        #expect { try ZAPAuthenticator(context: context, allowedKeys: []) } throws: { error in
            (error as? ZMQError)?.call == "zmq_bind" && (error as? ZMQError)?.errno == EADDRINUSE
        }
    }

    @Test func stopsTwice() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let zap = try ZAPAuthenticator(context: context, allowedKeys: [])
        zap.stop()
        zap.stop()
    }

    @Test func stopsWithItsContext() throws {
        let context = try ZMQContext()
        let zap = try ZAPAuthenticator(context: context, allowedKeys: [])
        // Terminating the context ends the handler's thread by itself (ETERM), so close() does not hang...
        context.close()
        // ...and a later stop() returns at once.
        zap.stop()
    }

    // MARK: - ZAP replies (RFC 27), without sockets

    static func request(mechanism: String, credentials: [[UInt8]], version: String = "1.0") -> [[UInt8]] {
        [Array(version.utf8), Array("7".utf8), Array("decisions".utf8), Array("10.0.0.9".utf8), Array("w1".utf8),
         Array(mechanism.utf8)] + credentials
    }

    @Test func allowedKeyIsAnswered200WithTheKeyAsUserId() throws {
        let key = try CurveKeyPair.generate().publicKey
        let answer = ZAPAuthenticator.answer(Self.request(mechanism: "CURVE", credentials: [key.bytes]), allowedKeys: [key])
        #expect(answer.reply == [Array("1.0".utf8), Array("7".utf8), Array("200".utf8), Array("OK".utf8), Array(key.z85.utf8), []])
        #expect(answer.denial == nil)
    }

    @Test func aDomainKeyIsAdmittedOnItsDomainOnly() throws {
        let key = try CurveKeyPair.generate().publicKey
        let request = Self.request(mechanism: "CURVE", credentials: [key.bytes])   // domain "decisions"
        #expect(ZAPAuthenticator.answer(request, allowedKeys: [], domainKeys: ["decisions": [key]]).denial == nil)
        let elsewhere = ZAPAuthenticator.answer(request, allowedKeys: [], domainKeys: ["commands": [key], "decisions": []])
        #expect(elsewhere.denial?.statusText == "public key not allowed on decisions sockets")
    }

    @Test func refusalsCarryTheirStatus() throws {
        let key = try CurveKeyPair.generate().publicKey
        let unknown = ZAPAuthenticator.answer(Self.request(mechanism: "CURVE", credentials: [key.bytes]), allowedKeys: [])
        #expect(unknown.reply[2] == Array("400".utf8))
        #expect(unknown.denial == ZAPDenial(statusCode: 400, statusText: "public key not allowed", mechanism: "CURVE",
                                            publicKey: key, address: "10.0.0.9", domain: "decisions"))

        let null = ZAPAuthenticator.answer(Self.request(mechanism: "NULL", credentials: []), allowedKeys: [key])
        #expect(null.reply[2] == Array("400".utf8))
        #expect(null.denial?.statusText == "CURVE required")

        let shortKey = ZAPAuthenticator.answer(Self.request(mechanism: "CURVE", credentials: [[1, 2, 3]]), allowedKeys: [key])
        #expect(shortKey.reply[2] == Array("500".utf8))

        let version = ZAPAuthenticator.answer(Self.request(mechanism: "CURVE", credentials: [key.bytes], version: "2.0"),
                                              allowedKeys: [key])
        #expect(version.reply[2] == Array("500".utf8))

        let truncated = ZAPAuthenticator.answer([Array("1.0".utf8), Array("9".utf8)], allowedKeys: [key])
        #expect(truncated.reply.count == 6)
        #expect(truncated.reply[1] == Array("9".utf8))
        #expect(truncated.reply[2] == Array("500".utf8))
    }
}

@Suite struct CurveKeyTests {
    @Test func z85MatchesTheRFCVectorAndRoundTrips() throws {
        let bytes: [UInt8] = [0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B]
        #expect(try Z85.encode(bytes) == "HelloWorld")
        #expect(try Z85.decode("HelloWorld") == bytes)
        let random = (0..<32).map { _ in UInt8.random(in: 0...255) }
        #expect(try Z85.decode(Z85.encode(random)) == random)
        #expect(try Z85.encode([]) == "")
    }

    @Test func z85RefusesBadInput() {
        #expect(throws: CurveKeyError.z85InputNotMultipleOfFour(bytes: 3)) { try Z85.encode([1, 2, 3]) }
        #expect(throws: CurveKeyError.z85TextNotMultipleOfFive(characters: 4)) { try Z85.decode("Hell") }
        #expect(throws: CurveKeyError.invalidZ85Character("~", offset: 5)) { try Z85.decode("Hello~orld") }
        #expect(throws: CurveKeyError.invalidZ85Character(" ", offset: 0)) { try Z85.decode(" ello") }
        #expect(throws: CurveKeyError.invalidZ85Character("é", offset: 1)) { try Z85.decode("Héllo") }
        #expect(throws: CurveKeyError.z85GroupOverflow(offset: 5)) { try Z85.decode("Hello#####") }
    }

    @Test func keysAre32BytesOr40Characters() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey.z85.count == 40)
        #expect(try CurvePublicKey(z85: pair.publicKey.z85) == pair.publicKey)
        #expect(try CurveSecretKey(bytes: pair.secretKey.bytes) == pair.secretKey)
        #expect(throws: CurveKeyError.wrongKeyLength(bytes: 31)) { try CurvePublicKey(bytes: Array(repeating: 0, count: 31)) }
        #expect(throws: CurveKeyError.wrongZ85KeyLength(characters: 39)) { try CurvePublicKey(z85: String(pair.publicKey.z85.dropLast())) }
        #expect(throws: CurveKeyError.wrongZ85KeyLength(characters: 41)) { try CurveSecretKey(z85: pair.secretKey.z85 + "0") }
        #expect(throws: CurveKeyError.self) { try CurvePublicKey(z85: String(repeating: "~", count: 40)) }
    }

    @Test func publicKeyIsDerivedFromTheSecret() throws {
        let pair = try CurveKeyPair.generate()
        #expect(try CurveKeyPair.derivePublic(fromSecret: pair.secretKey) == pair.publicKey)
        #expect(try CurveKeyPair(secretKey: pair.secretKey) == pair)
        #expect(try CurveKeyPair.generate() != pair)
        // The RFC 26 / zmq_curve(7) test vector.
        let secret = try CurveSecretKey(z85: "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6")
        #expect(try CurveKeyPair.derivePublic(fromSecret: secret).z85 == "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
    }

    @Test func secretsAreNeverPrinted() throws {
        let pair = try CurveKeyPair.generate()
        #expect(!"\(pair.secretKey)".contains(pair.secretKey.z85))
        #expect(!"\(pair)".contains(pair.secretKey.z85))
        #expect("\(pair)".contains(pair.publicKey.z85))
        #expect("\(pair.publicKey)" == pair.publicKey.z85)
    }
}

@Suite struct CurveKeyFileTests {
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "curve-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func mode(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func keyPairRoundTripsWithPrivatePermissions() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pair = try CurveKeyPair.generate()
        try CurveKeyFile.save(pair, to: dir + "/worker.key")
        try CurveKeyFile.savePublic(pair.publicKey, to: dir + "/worker.key.pub")

        #expect(try Self.mode(dir + "/worker.key") == 0o600)
        #expect(try Self.mode(dir + "/worker.key.pub") == 0o644)
        #expect(try CurveKeyFile.loadKeyPair(from: dir + "/worker.key") == pair)
        #expect(try CurveKeyFile.loadPublicKey(from: dir + "/worker.key.pub") == pair.publicKey)
        let publicText = try String(contentsOfFile: dir + "/worker.key.pub", encoding: .utf8)
        #expect(!publicText.contains(pair.secretKey.z85))
        #expect(publicText.contains("public-key = \(pair.publicKey.z85)"))
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["worker.key", "worker.key.pub"])
    }

    @Test func refusesToOverwriteUnlessAsked() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try CurveKeyPair.generate(), second = try CurveKeyPair.generate()
        try CurveKeyFile.save(first, to: dir + "/k")
        #expect(throws: CurveKeyFileError.alreadyExists(path: dir + "/k")) { try CurveKeyFile.save(second, to: dir + "/k") }
        #expect(try CurveKeyFile.loadKeyPair(from: dir + "/k") == first)
        try CurveKeyFile.save(second, to: dir + "/k", overwrite: true)
        #expect(try CurveKeyFile.loadKeyPair(from: dir + "/k") == second)
        #expect(try Self.mode(dir + "/k") == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["k"])
    }

    @Test func refusesASecretFileOthersCanRead() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pair = try CurveKeyPair.generate()
        try CurveKeyFile.save(pair, to: dir + "/k")
        chmod(dir + "/k", 0o644)
        #expect(throws: CurveKeyFileError.insecurePermissions(path: dir + "/k", mode: 0o644)) {
            try CurveKeyFile.loadKeyPair(from: dir + "/k")
        }
        #expect(try CurveKeyFile.loadKeyPair(from: dir + "/k", requirePrivate: false) == pair)
    }

    @Test func readsHandWrittenFilesAndRefusesMistakes() throws {
        let pair = try CurveKeyPair.generate()
        let parsed = try CurveKeyFile.parse("# mine\n\n  secret-key=\(pair.secretKey.z85)  \n", path: "k")
        #expect(parsed.secretKey == pair.secretKey && parsed.publicKey == nil)

        #expect(throws: CurveKeyFileError.malformed(path: "k", line: 2, reason: "unknown field \"secret_key\"")) {
            try CurveKeyFile.parse("# x\nsecret_key = \(pair.secretKey.z85)", path: "k")
        }
        #expect(throws: CurveKeyFileError.malformed(path: "k", line: 1, reason: "expected `field = value`")) {
            // Not a key: Z85 itself may contain '=', so a bare key could parse as a field.
            try CurveKeyFile.parse("no assignment on this line", path: "k")
        }
        #expect(throws: CurveKeyFileError.invalidKey(path: "k", line: 1, .wrongZ85KeyLength(characters: 3))) {
            try CurveKeyFile.parse("public-key = abc", path: "k")
        }
        #expect(throws: CurveKeyFileError.malformed(path: "k", line: 2, reason: "public-key given twice")) {
            try CurveKeyFile.parse("public-key = \(pair.publicKey.z85)\npublic-key = \(pair.publicKey.z85)", path: "k")
        }

        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let other = try CurveKeyPair.generate()
        let mixed = "public-key = \(other.publicKey.z85)\nsecret-key = \(pair.secretKey.z85)\n"
        _ = FileManager.default.createFile(atPath: dir + "/mixed", contents: Data(mixed.utf8), attributes: [.posixPermissions: 0o600])
        #expect(throws: CurveKeyFileError.mismatchedKeys(path: dir + "/mixed")) { try CurveKeyFile.loadKeyPair(from: dir + "/mixed") }
        #expect(throws: CurveKeyFileError.missingKey(path: dir + "/mixed", field: "secret-key")) {
            _ = FileManager.default.createFile(atPath: dir + "/mixed", contents: Data("public-key = \(other.publicKey.z85)\n".utf8),
                                           attributes: [.posixPermissions: 0o600])
            return try CurveKeyFile.loadKeyPair(from: dir + "/mixed")
        }
        #expect(throws: CurveKeyFileError.io(path: dir + "/none", call: "open", errno: ENOENT)) {
            try CurveKeyFile.loadPublicKey(from: dir + "/none")
        }
    }

    @Test func loadsAnAllowListDirectory() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let a = try CurveKeyPair.generate(), b = try CurveKeyPair.generate()
        try CurveKeyFile.savePublic(a.publicKey, to: dir + "/a.pub")
        try CurveKeyFile.savePublic(b.publicKey, to: dir + "/b.pub")
        try CurveKeyFile.save(b, to: dir + "/b")  // secret files are not part of the allow-list
        #expect(try CurveKeyFile.loadPublicKeys(directory: dir) == [a.publicKey, b.publicKey])
    }
}
