import BusSchema
import Foundation
import Testing
@testable import Bridge

/// The bridge over real UDP and TCP sockets, with a real SDK worker where a decision is needed.
@Suite(.serialized) struct BridgeEdgeTests {
    static let redirect: Decision = .redirect([Target(uri: "sip:12025550100@gw1.example.com", q: 1), Target(uri: "sip:12025550100@gw2.example.com", q: 0.5)])

    @Test func optionsGets200WithAllowSoDispatcherCanProbe() async throws {
        try await BridgeFixture.with { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("OPTIONS", branch: "opt1"))
            let answer = try #require(await phone.receive())
            #expect(answer.status == 200)
            #expect(answer.header("Allow") == "INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE, INFO, PRACK, REFER")
            #expect(answer.header("Via")?.contains("rport=\(phone.port)") == true)
            #expect(answer.header("To")?.contains(";tag=") == true)
        }
    }

    @Test func inviteWithNoWorkerGetsTheFallbackAtOnce() async throws {
        try await BridgeFixture.with { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            let started = Date()
            phone.send(phone.request("INVITE", branch: "nw1"))
            let answer = try #require(await phone.receive())
            #expect(answer.status == 503)
            #expect(answer.header("Retry-After") == "30")
            // No 100 Trying: the answer was ready well before the 100 ms trying delay.
            #expect(Date().timeIntervalSince(started) < 0.1)
        }
    }

    @Test func workerRedirectBecomes302WithQValuesAndAckStopsRetransmission() async throws {
        try await BridgeFixture.with(handler: { _ in Self.redirect }) { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            let invite = phone.request("INVITE", branch: "rd1", body: "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 4000 RTP/AVP 0 8\r\n")
            phone.send(invite)
            let answer = try #require(await phone.receiveFinal())
            #expect(answer.status == 302)
            #expect(answer.header("Contact") == "<sip:12025550100@gw1.example.com>;q=1.0, <sip:12025550100@gw2.example.com>;q=0.5")
            let toTag = try #require(answer.header("To")?.components(separatedBy: ";tag=").last)

            // A retransmitted INVITE is absorbed by the transaction: same answer, no second decision.
            phone.send(invite)
            #expect(try #require(await phone.receive()).header("To") == answer.header("To"))

            phone.send(phone.request("ACK", branch: "rd1", callID: "call-rd1", toTag: toTag))
            // Timer G would retransmit at T1 (500 ms) without the ACK.
            #expect(await phone.receiveAll(window: 0.8).isEmpty)
        }
    }

    @Test func finalResponseIsRetransmittedUntilAcked() async throws {
        try await BridgeFixture.with(handler: { _ in .reject(status: 486, reason: "Busy Here") }) { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "rt1"))
            let first = try #require(await phone.receiveFinal())
            // Timer G: again after T1 (500 ms), then 2·T1 later (1500 ms after the first).
            let again = await phone.receiveAll(window: 1.7)
            #expect(again.count == 2)
            #expect(([first] + again).allSatisfy { $0.hasPrefix("SIP/2.0 486 Busy Here") && $0.header("To") == first.header("To") })
        }
    }

    @Test func slowWorkerGets100TryingThenTheFallbackAtTheDeadline() async throws {
        try await BridgeFixture.with(BridgeFixture.configuration(decisionTimeout: .milliseconds(400)), handler: { _ in
            try? await Task.sleep(for: .seconds(2))
            return Self.redirect
        }) { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            let started = Date()
            phone.send(phone.request("INVITE", branch: "slow1"))
            let trying = try #require(await phone.receive())
            #expect(trying.status == 100)
            let final = try #require(await phone.receive())
            let elapsed = Date().timeIntervalSince(started)
            #expect(final.status == 503)
            #expect(elapsed >= 0.39 && elapsed < 0.9, "fallback after \(elapsed) s; deadline is 0.4 s")
        }
    }

    @Test func cancelEndsAPendingInviteWith487() async throws {
        try await BridgeFixture.with(handler: { _ in
            try? await Task.sleep(for: .seconds(5))
            return Self.redirect
        }) { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "cx1"))
            #expect(await phone.receive()?.status == 100)
            phone.send(phone.request("CANCEL", branch: "cx1", callID: "call-cx1"))
            let answers = [await phone.receive(), await phone.receive()].compactMap { $0 }
            #expect(answers.compactMap(\.status) == [200, 487])
            #expect(answers.first { $0.status == 200 }?.header("CSeq") == "1 CANCEL")
            #expect(answers.first { $0.status == 487 }?.header("CSeq") == "1 INVITE")
            // RFC 3261 §9.2: both answers carry the same To tag.
            #expect(answers.first { $0.status == 200 }?.header("To") == answers.first { $0.status == 487 }?.header("To"))
        }
    }

    @Test(arguments: [
        ("BYE", 481), ("CANCEL", 481), ("PRACK", 481), ("REGISTER", 405), ("SUBSCRIBE", 405), ("REFER", 403), ("FROBNICATE", 501),
    ])
    func requestsOutsideWhatTheBridgeServes(method: String, status: Int) async throws {
        try await BridgeFixture.with { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request(method, branch: "m\(method)"))
            let answer = try #require(await phone.receive())
            #expect(answer.status == status)
            if status == 405 { #expect(answer.header("Allow") == "INVITE, ACK, CANCEL, OPTIONS, BYE, UPDATE, INFO, PRACK, REFER") }
        }
    }

    @Test func reInviteForAnUnknownDialogGets481() async throws {
        try await BridgeFixture.with(handler: { _ in Self.redirect }) { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "re1", toTag: "existing"))
            #expect(await phone.receiveFinal()?.status == 481)
        }
    }

    @Test func inviteOverTCPIsAnsweredOnTheConnection() async throws {
        try await BridgeFixture.with(handler: { _ in .reject(status: 404, reason: "Not Found") }) { _, bound in
            let phone = try SIPTestClient(.tcp, bridgePort: bound.sipPort)
            // Two requests in one segment: the framer splits them by Content-Length.
            phone.send(phone.request("OPTIONS", branch: "tcp0") + phone.request("INVITE", branch: "tcp1"))
            let answers = [await phone.receiveFinal(), await phone.receiveFinal()].compactMap { $0 }
            #expect(answers.compactMap(\.status).sorted() == [200, 404])
        }
    }

    @Test func malformedInputIsAnsweredOrDroppedAndTheBridgeKeepsServing() async throws {
        try await BridgeFixture.with { _, bound in
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send("garbage\r\n\r\n")
            phone.send([UInt8](repeating: 0xFF, count: 2000))
            phone.send(phone.request("OPTIONS", branch: "bad1").replacingOccurrences(of: "CSeq: 1 OPTIONS", with: "CSeq: one OPTIONS"))
            phone.send(phone.request("OPTIONS", branch: "bad2").replacingOccurrences(of: "SIP/2.0\r\n", with: "SIP/7.0\r\n"))
            let answers = await phone.receiveAll(window: 0.5).compactMap(\.status)
            #expect(answers.contains(400))
            #expect(answers.contains(505))
            phone.send(phone.request("OPTIONS", branch: "ok1"))
            #expect(await phone.receive()?.status == 200)
        }
    }

    @Test func eventsCarryTheOfferAndTheOutcomeInOrder() async throws {
        try await BridgeFixture.with(handler: { offer in
            offer.authUser == "alice" ? Self.redirect : .reject(status: 403)
        }) { _, bound in
            let subscriber = try EventTap(endpoint: bound.events)
            defer { subscriber.close() }
            let phone = try SIPTestClient(bridgePort: bound.sipPort)
            phone.send(phone.request("INVITE", branch: "ev1",
                                     extraHeaders: "X-Switchboard-Auth-User: alice\r\nX-Switchboard-Source: 203.0.113.9:5062;transport=tcp\r\n",
                                     body: "v=0\r\nc=IN IP4 203.0.113.9\r\nm=audio 4000 RTP/AVP 0 8 101\r\n"))
            #expect(await phone.receiveFinal()?.status == 302)
            let events = await subscriber.take(2)
            try #require(events.count == 2)
            guard case .callOffered(let offer) = events[0].body, case .callRouted(let routed) = events[1].body else {
                Issue.record("expected call.offered then call.routed, got \(events.map(\.type))")
                return
            }
            #expect(events[0].callId == events[1].callId)
            #expect(events[1].seq == events[0].seq + 1)
            #expect(offer.authUser == "alice")
            #expect(offer.requestUri.user == "12025550100")
            #expect(offer.from.displayName == "Alice")
            #expect(offer.source == Source(address: "203.0.113.9", port: 5062, transport: "tcp", peer: "127.0.0.1"))
            #expect(offer.sdp?.media.first?.formats == ["0", "8", "101"])
            #expect(routed.targets == [Target(uri: "sip:12025550100@gw1.example.com", q: 1), Target(uri: "sip:12025550100@gw2.example.com", q: 0.5)])
            #expect(routed.workerId == "test-worker")
            #expect(!routed.fallback)
        }
    }
}
