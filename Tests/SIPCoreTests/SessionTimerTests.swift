import SIPCore
import Testing

/// RFC 4028 negotiation and timing, on both sides of a dialog.
@Suite struct SessionTimerTests {
    static func request(_ headers: [(String, String)]) -> SIPRequest {
        var invite = SIPRequest(method: .invite, uri: SIPAnyURI("sip:bob@example.com")!)
        for (name, value) in headers { invite.headers.add(name, value) }
        return invite
    }

    static func response(_ status: Int, _ headers: [(String, String)]) -> SIPResponse {
        var response = SIPResponse(replyingTo: request([("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("CSeq", "1 INVITE")]), status: status)
        for (name, value) in headers { response.headers.add(name, value) }
        return response
    }

    static func fields(_ headers: [SIPHeader]) -> [String] { headers.map { "\($0.name): \($0.value)" } }

    // MARK: - This side sends the INVITE

    @Test func anINVITEAsksForTheConfiguredInterval() {
        let timer = SessionTimer(role: .uac)
        #expect(Self.fields(timer.requestHeaders()) == ["Supported: timer", "Session-Expires: 1800", "Min-SE: 90"])
        #expect(timer.nextEvent == nil)
    }

    @Test(arguments: [
        ("90;refresher=uac", 90, SessionTimer.Refresher.uac, Duration.seconds(45), SessionTimer.Event.refresh),
        ("90;refresher=uas", 90, .uas, .seconds(60), .expire),
        // A third of the interval, at most 32 s, before it ends.
        ("1800;refresher=uas", 1800, .uas, .seconds(1768), .expire),
        ("120", 120, .uac, .seconds(60), .refresh),
    ])
    func the2xxSetsIntervalAndRefresher(_ value: String, _ interval: Int, _ refresher: SessionTimer.Refresher,
                                        _ after: Duration, _ event: SessionTimer.Event) {
        var timer = SessionTimer(role: .uac)
        timer.received2xx(Self.response(200, [("Session-Expires", value), ("Require", "timer")]))
        #expect(timer.interval == interval)
        #expect(timer.refresher == refresher)
        #expect(timer.nextEvent?.after == after)
        #expect(timer.nextEvent?.event == event)
    }

    @Test func aPeerWithoutTimersIsRefreshedByThisSide() {
        var timer = SessionTimer(role: .uac, configuration: .init(interval: 600))
        timer.received2xx(Self.response(200, []))
        #expect(timer.refreshesLocally)
        #expect(timer.nextEvent?.after == .seconds(300))
        // Refreshes name the agreed interval and refresher.
        #expect(Self.fields(timer.requestHeaders()) == ["Supported: timer", "Session-Expires: 600;refresher=uac", "Min-SE: 90"])
    }

    @Test func a422RaisesTheIntervalOnceAndNeverLoops() {
        var timer = SessionTimer(role: .uac, configuration: .init(interval: 90))
        #expect(timer.received422(Self.response(422, [("Min-SE", "300")])) == 300)
        #expect(Self.fields(timer.requestHeaders()) == ["Supported: timer", "Session-Expires: 300", "Min-SE: 300"])
        #expect(timer.received422(Self.response(422, [("Min-SE", "300")])) == nil)
        #expect(timer.received422(Self.response(422, [])) == nil)
    }

    // MARK: - This side answers the INVITE

    @Test func aTimerCapablePeerAskingNoRefresherRefreshesItself() throws {
        var timer = SessionTimer(role: .uas)
        let headers = try timer.received(Self.request([("Supported", "timer"), ("Session-Expires", "90")])).get()
        #expect(Self.fields(headers) == ["Session-Expires: 90;refresher=uac", "Require: timer"])
        #expect(timer.nextEvent?.event == .expire)
        #expect(timer.nextEvent?.after == .seconds(60))
    }

    @Test func theRefresherAskedForIsTheOne() throws {
        var timer = SessionTimer(role: .uas)
        let headers = try timer.received(Self.request([("k", "timer"), ("x", "1800;refresher=uas")])).get()
        #expect(Self.fields(headers) == ["Session-Expires: 1800;refresher=uas"])
        #expect(timer.refreshesLocally)
        #expect(timer.nextEvent?.after == .seconds(900))
    }

    @Test func tooSmallAnIntervalFromATimerCapablePeerIs422WithMinSE() {
        var timer = SessionTimer(role: .uas)
        let refusal = #expect(throws: SIPStatusError.self) {
            try timer.received(Self.request([("Supported", "100rel, timer"), ("Session-Expires", "60")])).get()
        }
        #expect(refusal?.status == 422)
        #expect(refusal?.headers == [SIPHeader(name: "Min-SE", value: "90")])
        #expect(timer.interval == nil)
    }

    @Test func tooSmallAnIntervalFromAPeerWithoutTimersIsRaisedAndThisSideRefreshes() throws {
        var timer = SessionTimer(role: .uas)
        let headers = try timer.received(Self.request([("Session-Expires", "60;refresher=uac")])).get()
        #expect(Self.fields(headers) == ["Session-Expires: 90;refresher=uas"])
        #expect(timer.nextEvent?.event == .refresh)
    }

    @Test func thePeersMinSEIsHonoured() throws {
        var timer = SessionTimer(role: .uas)
        let refusal = #expect(throws: SIPStatusError.self) {
            try timer.received(Self.request([("Supported", "timer"), ("Session-Expires", "200"), ("Min-SE", "300")])).get()
        }
        #expect(refusal?.headers == [SIPHeader(name: "Min-SE", value: "300")])
        #expect(Self.fields(timer.requestHeaders()).last == "Min-SE: 300")
    }

    @Test func noSessionExpiresGetsTheConfiguredInterval() throws {
        var timer = SessionTimer(role: .uas, configuration: .init(interval: 1200, minimum: 120))
        let headers = try timer.received(Self.request([])).get()
        #expect(Self.fields(headers) == ["Session-Expires: 1200;refresher=uas"])
    }

    @Test(arguments: ["abc", "-5", "99999999999999999999", "90;;", ""])
    func anUnreadableSessionExpiresCountsAsAbsent(_ value: String) throws {
        var timer = SessionTimer(role: .uas)
        _ = try timer.received(Self.request([("Session-Expires", value)])).get()
        #expect(timer.interval == 1800)
    }

    /// Each refresh agrees again: the interval a later refresh asks for holds from then on.
    @Test func aRefreshRenegotiates() throws {
        var timer = SessionTimer(role: .uas)
        _ = try timer.received(Self.request([("Supported", "timer"), ("Session-Expires", "1800")])).get()
        let headers = try timer.received(Self.request([("Supported", "timer"), ("Session-Expires", "600;refresher=uac")])).get()
        #expect(Self.fields(headers) == ["Session-Expires: 600;refresher=uac", "Require: timer"])
        #expect(timer.nextEvent?.after == .seconds(568))
    }

    // MARK: - Refreshes the other way round

    /// `refresher` names a side by its role in the refresh's transaction (§4): a refresh the dialog's UAS sends
    /// makes it the UAC.
    @Test func aRefreshTheDialogsUASSendsNamesItselfUAC() throws {
        var timer = SessionTimer(role: .uas)
        _ = try timer.received(Self.request([("Session-Expires", "600")]))  // no timer support: this side refreshes
        #expect(timer.refresher == .uas)
        #expect(Self.fields(timer.requestHeaders()) == ["Supported: timer", "Session-Expires: 600;refresher=uac", "Min-SE: 90"])
        timer.received2xx(Self.response(200, [("Session-Expires", "600;refresher=uac")]))
        #expect(timer.refreshesLocally)
        #expect(timer.nextEvent?.event == .refresh)
    }

    @Test func aRefreshTheDialogsUASSendsToTheDialogsUAC() throws {
        var timer = SessionTimer(role: .uac)
        timer.received2xx(Self.response(200, [("Session-Expires", "600;refresher=uac")]))
        // The peer re-INVITEs asking to refresh itself: as the request's UAC it names itself uac.
        let headers = try timer.received(Self.request([("Supported", "timer"), ("Session-Expires", "600;refresher=uac")])).get()
        #expect(Self.fields(headers) == ["Session-Expires: 600;refresher=uac", "Require: timer"])
        #expect(timer.refresher == .uas)
        #expect(timer.nextEvent?.event == .expire)
    }
}
