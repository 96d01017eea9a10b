import Testing
@testable import ZeroMQ

/// One peer's connection, from the message it sent, shut down while the socket serves the others.
@Suite struct PeerConnectionTests {
    static func waitReadable(_ socket: ZMQSocket) throws -> Bool {
        var poller = ZMQPoller()
        let index = poller.add(socket)
        return try poller.poll(timeout: .seconds(5)).contains(index)
    }

    @Test func aRouterEndsOnePeersConnection() async throws {
        let context = try ZMQContext()
        defer { context.close() }
        let router = try ZMQSocket(context: context, type: .router)
        let revoked = try ZMQSocket(context: context, type: .dealer)
        let kept = try ZMQSocket(context: context, type: .dealer)
        defer { router.close(); revoked.close(); kept.close() }
        try router.setRouterMandatory(true)
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        try revoked.setIdentity(Array("revoked".utf8))
        try kept.setIdentity(Array("kept".utf8))
        // Without reconnecting, so that the shut-down peer stays away for the test to see it gone.
        try revoked.setReconnectInterval(initial: .seconds(60), maximum: .seconds(60))
        try revoked.connect(endpoint)
        try kept.connect(endpoint)
        try revoked.send([Array("hello".utf8)])
        try kept.send([Array("hello".utf8)])

        var connections: [String: ZMQPeerConnection] = [:]
        while connections.count < 2, try Self.waitReadable(router) {
            while let (frames, userId, connection) = try router.receiveWithPeer(dontWait: true) {
                #expect(userId == nil)   // a plain socket: no ZAP, no User-Id
                connections[String(decoding: frames[0], as: UTF8.self)] = try #require(connection)
            }
        }
        let gone = try #require(connections["revoked"])
        #expect(gone.isCurrent && gone != connections["kept"])
        #expect(gone.shutDown())

        // libzmq notices the end of the stream and drops the peer: a send to it is refused (EHOSTUNREACH).
        let deadline = ContinuousClock.now + .seconds(5)
        var unreachable = false
        while !unreachable, ContinuousClock.now < deadline {
            do {
                try router.send([Array("revoked".utf8), Array("ping".utf8)], dontWait: true)
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                unreachable = (error as? ZMQError)?.hostUnreachable == true
            }
        }
        #expect(unreachable)
        #expect(!gone.isCurrent)
        #expect(!gone.shutDown())   // its descriptor is not touched again
        try router.send([Array("kept".utf8), Array("still here".utf8)], dontWait: true)
        #expect(try Self.waitReadable(kept))
        #expect(try kept.receive(dontWait: true) == [Array("still here".utf8)])
    }

    @Test func anXPubSeesEachSubscribersConnection() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let xpub = try ZMQSocket(context: context, type: .xpub)
        let first = try ZMQSocket(context: context, type: .sub)
        let second = try ZMQSocket(context: context, type: .sub)
        defer { xpub.close(); first.close(); second.close() }
        try xpub.setXPubVerbose(true)
        let endpoint = try xpub.bind("tcp://127.0.0.1:*")
        for subscriber in [first, second] {
            try subscriber.subscribe("")
            try subscriber.connect(endpoint)
        }
        // Verbose: the same subscription from two subscribers arrives twice, each with its connection.
        var connections = Set<ZMQPeerConnection>()
        while connections.count < 2, try Self.waitReadable(xpub) {
            while let (frames, _, connection) = try xpub.receiveWithPeer(dontWait: true) {
                #expect(frames == [[1]])
                connections.insert(try #require(connection))
            }
        }
        #expect(connections.count == 2)
    }
}
