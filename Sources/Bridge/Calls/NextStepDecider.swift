import BusSchema

/// The workers' answer to a failure step, as the B2BUA carries it out.
enum NextStep: Equatable {
    /// Dial these targets for the caller (a `bridge` decision, screened by the destination policy).
    case route(BridgeRoute)
    /// Answer the caller with this final response: a worker's `reject`, or its `redirect` as a 302 with Contacts.
    case end(status: Int, reason: String, headers: [String: String])
    /// No usable answer (no worker, the deadline, a route the bridge cannot dial): the caller gets the failure.
    case fallback
}

/// Asks the workers what a bridged call does after its route failed (the decision gate, once built), under the
/// deadline and fallback of every decision.
protocol NextStepDecider: AnyObject {
    /// Sends `offer` (carrying `failure`) as a `decision.request` for the call; `decided` runs once, on the SIP loop.
    /// Returns the request id, for `withdrawStep`.
    func decideNextStep(callId: String, offer: CallOffer, decided: @escaping (NextStep) -> Void) -> String
    /// The call ended while its step was out (the caller cancelled): `decided` will not run, a late answer is ignored.
    func withdrawStep(_ requestId: String)
}
