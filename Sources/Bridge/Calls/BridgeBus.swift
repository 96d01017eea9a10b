import BusSchema

/// What the bridge's SIP side needs from the bus: publish a call's events, ask the workers for a decision,
/// and answer a command. `BusEndpoints` (the ZeroMQ sockets, journal and worker pool) is the real one; tests
/// use a recorder, so the edge and the B2BUA run without sockets or a journal.
///
/// Called on the SIP event loop; decisions and commands come back through the callbacks given to the bus
/// when it starts, which hop onto that loop.
protocol BridgeBus: AnyObject {
    /// Queues an event of the call `callId` (nil for a system event) for the journal and the events socket.
    func publish(callId: String?, _ body: EventBody)
    /// Publishes `call.offered` for a new call (not for a REFER's target, `offer.transfer`, nor a failure step,
    /// `offer.failure`) and asks the worker pool to decide it by `deadline`.
    func requestDecision(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant)
    /// Answers the command that came in `envelope`.
    func reply(_ reply: CommandReply, to envelope: [[UInt8]])
}

extension BusEndpoints: BridgeBus {
    func requestDecision(requestId: String, callId: String, offer: CallOffer, deadline: ContinuousClock.Instant) {
        self.offer(requestId: requestId, callId: callId, offer: offer, deadline: deadline)
    }
}
