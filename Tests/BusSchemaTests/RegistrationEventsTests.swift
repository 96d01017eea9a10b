import Foundation
import Testing
@testable import BusSchema

/// The `registration.*` events and the notice Kamailio relays them in: they read back as written, their
/// JSON is pinned, and a notice that breaks a rule is refused naming the field.
@Suite struct RegistrationEventsTests {
    static let alice = Registration(aor: "sip:alice@switchboard.local", user: "alice", contact: "sip:alice@127.0.0.1:5070",
                                    transport: "udp", userAgent: JSONWriterTests.tricky, expires: 3600, received: "127.0.0.1:5070")

    @Test(arguments: RegistrationChange.allCases)
    func eventsDecodeBackWithoutCallId(change: RegistrationChange) throws {
        var binding = Self.alice
        if change == .removed || change == .expired { binding.expires = 0 }
        let event = Event(bridgeId: "b1", seq: 4, timestamp: Date(timeIntervalSince1970: 1_795_000_000.5), callId: nil,
                          body: change.body(binding))
        #expect(event.type == change.rawValue)
        #expect(event.body.registrationChange?.change == change)
        #expect(event.body.registrationChange?.registration == binding)
        #expect(try Event.decode(event.jsonBytes()) == event)
        #expect(!String(decoding: event.jsonBytes(), as: UTF8.self).contains("call_id"))
    }

    @Test func wireText() {
        let binding = Registration(aor: "sip:bob@b", user: "bob", contact: "sip:bob@10.0.0.7:5062;transport=tcp", transport: "tcp", expires: 0)
        let event = Event(bridgeId: "b1", seq: 9, timestamp: Date(timeIntervalSince1970: 0), callId: nil, body: .registrationExpired(binding))
        #expect(String(decoding: event.jsonBytes(), as: UTF8.self)
            == #"{"v":1,"type":"registration.expired","bridge_id":"b1","seq":9,"ts":"1970-01-01T00:00:00.000Z","registration":{"aor":"sip:bob@b","user":"bob","contact":"sip:bob@10.0.0.7:5062;transport=tcp","transport":"tcp","expires":0}}"#)
        #expect(EventBody.callConnected(Connected(a: "a", b: "b")).registrationChange == nil)
    }

    static func notice(_ type: String = "registration.created", _ fields: String = "") -> [UInt8] {
        let base = #""aor":"sip:alice@switchboard.local","user":"alice","contact":"sip:alice@127.0.0.1:5070","transport":"udp""#
        return Array(#"{"v":1,"type":"\#(type)","registration":{\#(base),\#(fields.isEmpty ? #""expires":60"# : fields)}}"#.utf8)
    }

    @Test func noticeReadsKamailiosBody() throws {
        let notice = try RegistrationNotice.decode(Self.notice("registration.refreshed", #""expires":120,"user_agent":"sipp","received":"127.0.0.1:5070""#))
        #expect(notice == RegistrationNotice(change: .refreshed, registration: Registration(
            aor: "sip:alice@switchboard.local", user: "alice", contact: "sip:alice@127.0.0.1:5070", transport: "udp", userAgent: "sipp",
            expires: 120, received: "127.0.0.1:5070")))
        #expect(try RegistrationNotice.decode(Self.notice("registration.expired", #""expires":0"#)).change == .expired)
    }

    @Test(arguments: [
        (notice("call.ended"), "type must be one of registration.created"),
        (notice("registration.created", #""expires":0"#), "registration.expires must be 1...604800"),
        (notice("registration.removed", #""expires":30"#), "registration.expires must be 0 for registration.removed"),
        (notice("registration.created", #""expires":"60""#), "registration.expires must be an integer"),
        (notice("registration.created", #""expires":60,"user_agent":"a\u0000b""#), "registration.user_agent contains a control character"),
        (Array(#"{"v":1,"type":"registration.created","registration":{"aor":"alice","user":"alice","contact":"c","transport":"udp","expires":5}}"#.utf8),
         "registration.aor must be a sip: or sips: URI"),
        (Array(#"{"v":1,"type":"registration.created","registration":{"aor":"sip:bob@x","user":"alice","contact":"c","transport":"udp","expires":5}}"#.utf8),
         "registration.user must be the user part of aor"),
        (Array(#"{"v":1,"type":"registration.created","registration":{"aor":"sip:alice@x","user":"alice","contact":"c","transport":"carrier-pigeon","expires":5}}"#.utf8),
         "registration.transport must be one of sctp, tcp, tls, udp, ws, wss"),
        (Array(#"{"v":1,"type":"registration.created","registration":{"aor":"sip:alice@x","user":"alice","transport":"udp","expires":5}}"#.utf8),
         "missing field registration.contact"),
        (Array(#"{"v":1,"type":"registration.created"}"#.utf8), "missing field registration"),
        (Array("alice is online".utf8), "not a bus message"),
        (Array(#"{"v":2,"type":"registration.created"}"#.utf8), "schema version 2 is not supported"),
        (Array(repeating: UInt8(ascii: " "), count: RegistrationNotice.maxBodySize + 1), "exceeds 8192"),
    ])
    func noticeRefusalsNameTheProblem(body: [UInt8], problem: String) {
        #expect {
            try RegistrationNotice.decode(body)
        } throws: { error in
            "\(error)".contains(problem)
        }
    }

    @Test func aFieldPastTheLimitIsRefused() {
        let long = String(repeating: "x", count: RegistrationNotice.maxFieldLength + 1)
        #expect(throws: BusDecodingError(code: .badMessage, message: "registration.contact is longer than 1024 bytes")) {
            try RegistrationNotice.decode(Array(#"{"v":1,"type":"registration.created","registration":{"aor":"sip:a@x","user":"a","contact":"\#(long)","transport":"udp","expires":5}}"#.utf8))
        }
    }
}
