import BusSchema
import Testing
@testable import Exec

/// What exec_dset gets from `switchboard-exec`: the request it reads from flags and the exec module's
/// environment, and the lines it prints for each decision.
@Suite struct ExecTests {
    static let environment = ["SIP_HF_FROM": #""Alice" <sip:alice@s>;tag=1"#, "SIP_HF_TO": "<sip:1202@s>", "SIP_HF_CALLID": "c-1"]

    func parse(_ arguments: [String], environment: [String: String] = environment) throws(ExecRequest.UsageError) -> ExecRequest {
        try ExecRequest.parse(arguments, environment: { environment[$0] })
    }

    @Test func readsFlagsAndTheExecModulesEnvironment() throws {
        let request = try parse(["--bridge", "tcp://127.0.0.1:5573", "--timeout-ms", "800", "--fallback", "reject:486:Busy Here",
                                 "--auth-user", "alice", "--source", "10.0.0.5:5060;transport=udp", "sip:1202@s"])
        #expect(request.bridges == ["tcp://127.0.0.1:5573"])
        #expect(request.timeoutMs == 800)
        #expect(request.fallback == .reject(status: 486, reason: "Busy Here"))
        #expect(request.offer == HandoffOffer(requestUri: "sip:1202@s", from: #""Alice" <sip:alice@s>;tag=1"#, to: "<sip:1202@s>",
                                              sipCallId: "c-1", source: "10.0.0.5:5060;transport=udp", authUser: "alice"))
    }

    @Test func anEmptyAuthUserIsNone() throws {
        #expect(try parse(["--bridge", "tcp://b:1", "--auth-user", "", "sip:1@s"]).offer.authUser == nil)
    }

    @Test func theRequestURIFallsBackToSIP_RURI() throws {
        #expect(try parse(["--bridge", "tcp://b:1"], environment: Self.environment.merging(["SIP_RURI": "sip:9@s"]) { $1 }).offer.requestUri == "sip:9@s")
    }

    @Test(arguments: [
        (["sip:1@s"], "--bridge is required"),
        (["--bridge", "tcp://b:1", "--timeout-ms", "0", "sip:1@s"], "--timeout-ms"),
        (["--bridge", "tcp://b:1", "--fallback", "reject:200", "sip:1@s"], "not a 4xx–6xx"),
        (["--bridge", "tcp://b:1", "--fallback", "voicemail", "sip:1@s"], "is not reject:STATUS"),
        (["--bridge", "tcp://b:1", "--curve-key", "k", "sip:1@s"], "go together"),
        (["--bridge", "tcp://b:1", "--frobnicate", "sip:1@s"], "unknown flag --frobnicate"),
        (["--bridge", "tcp://b:1"], "no Request-URI"),
    ])
    func usageErrorsNameTheProblem(arguments: [String], message: String) {
        #expect(throws: ExecRequest.UsageError.self) { try parse(arguments) }
        do {
            _ = try parse(arguments)
        } catch {
            #expect(error.message.contains(message), "\(error.message)")
        }
    }

    @Test func aMissingHeaderVariableIsNamed() {
        do {
            _ = try parse(["--bridge", "tcp://b:1", "sip:1@s"], environment: ["SIP_HF_FROM": "<sip:a@s>", "SIP_HF_TO": "<sip:1@s>"])
            Issue.record("parsed without SIP_HF_CALLID")
        } catch {
            #expect(error.message.contains("SIP_HF_CALLID"))
        }
    }

    @Test func aRedirectPrintsTargetsHighestQFirst() {
        let lines = ExecOutput.lines(for: .redirect([Target(uri: "sip:b@gw", q: 0.5), Target(uri: "sip:a@gw", q: 1), Target(uri: "sip:c@gw", q: 0.5)]))
        #expect(lines == ["sip:a@gw", "sip:b@gw", "sip:c@gw"])
    }

    @Test func aRejectPrintsTheLineTheCfgAnswers() {
        #expect(ExecOutput.lines(for: .reject(status: 486, reason: "Busy Here")) == ["sip:486@reject.invalid;reason=Busy%20Here"])
        #expect(ExecOutput.lines(for: .reject(status: 503, reason: "Service Unavailable", headers: ["Retry-After": "30"]))
            == ["sip:503@reject.invalid;reason=Service%20Unavailable;retry-after=30"])
        #expect(ExecOutput.lines(for: .reject(status: 404)) == ["sip:404@reject.invalid"])
        #expect(ExecOutput.escaped("a;b=c%\"é") == "a%3Bb%3Dc%25%22%C3%A9")
    }

    /// The proxy holds the INVITE and cannot answer it with the bridge's media: the caller gets 503, as from the bridge.
    @Test func anAnswerDecisionPrintsA503() {
        #expect(ExecOutput.lines(for: .answer) == ["sip:503@reject.invalid;reason=Service%20Unavailable"])
    }
}
