import Testing
@testable import ZeroMQ

@Suite struct SocketTests {
    @Test func dealerRouterRoundTripKeepsFramesAndIdentity() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let router = try ZMQSocket(context: context, type: .router)
        let dealer = try ZMQSocket(context: context, type: .dealer)
        defer { router.close(); dealer.close() }
        let endpoint = try router.bind("tcp://127.0.0.1:*")
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        try dealer.setIdentity(Array("worker-1".utf8))
        try dealer.connect(endpoint)
        try dealer.send([Array("hello".utf8), []])

        var poller = ZMQPoller()
        let index = poller.add(router)
        #expect(try poller.poll(timeout: .seconds(5)).contains(index))
        let frames = try #require(try router.receive(dontWait: true))
        #expect(frames == [Array("worker-1".utf8), Array("hello".utf8), []])

        try router.send([frames[0], Array("back".utf8)])
        #expect(try dealer.receive() == [Array("back".utf8)])
    }

    @Test func receiveWithoutMessageReturnsNil() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let socket = try ZMQSocket(context: context, type: .pull)
        defer { socket.close() }
        _ = try socket.bind("tcp://127.0.0.1:*")
        #expect(try socket.receive(dontWait: true) == nil)
    }

    @Test func badEndpointThrowsWithCallNameAndErrno() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let socket = try ZMQSocket(context: context, type: .pub)
        defer { socket.close() }
        #expect {
            try socket.bind("nonsense://nowhere")
        } throws: { error in
            guard let error = error as? ZMQError else { return false }
            return error.call == "zmq_bind" && error.errno != 0 && error.description.contains("zmq_bind failed")
        }
    }

    @Test func routerMandatoryReportsUnknownPeer() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let router = try ZMQSocket(context: context, type: .router)
        defer { router.close() }
        try router.setRouterMandatory(true)
        _ = try router.bind("tcp://127.0.0.1:*")
        #expect(throws: ZMQError.self) { try router.send([Array("nobody".utf8), Array("x".utf8)], dontWait: true) }
    }

    @Test func wakeupMakesPollReturn() throws {
        let wakeup = try Wakeup()
        var poller = ZMQPoller()
        let index = poller.add(fileDescriptor: wakeup.fileDescriptor)
        #expect(try poller.poll(timeout: .zero).isEmpty)
        wakeup.signal()
        wakeup.signal()
        #expect(try poller.poll(timeout: .seconds(5)) == [index])
        wakeup.drain()
        #expect(try poller.poll(timeout: .zero).isEmpty)
    }

    @Test func pubSubFiltersByTopicPrefix() throws {
        let context = try ZMQContext()
        defer { context.close() }
        let pub = try ZMQSocket(context: context, type: .pub)
        let sub = try ZMQSocket(context: context, type: .sub)
        defer { pub.close(); sub.close() }
        let endpoint = try pub.bind("tcp://127.0.0.1:*")
        try sub.subscribe("call.")
        try sub.connect(endpoint)
        // PUB drops messages until the subscription arrives (slow joiner): publish until one gets through.
        var poller = ZMQPoller()
        let index = poller.add(sub)
        var received: [[UInt8]]?
        for _ in 0..<50 where received == nil {
            try pub.send([Array("worker.joined".utf8), Array("{}".utf8)])
            try pub.send([Array("call.offered".utf8), Array("{}".utf8)])
            if try poller.poll(timeout: .milliseconds(100)).contains(index) { received = try sub.receive() }
        }
        #expect(received?.first == Array("call.offered".utf8))
    }
}
