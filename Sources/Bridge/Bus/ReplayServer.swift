import BusSchema
import Logging
import ZeroMQ

/// The replay ROUTER socket, on the bus loop: answers `replay.request` from the journal's reader
/// connection, in batches under the bus' frame limit.
final class ReplayServer {
    let bound: String
    private let socket: ZMQSocket
    private let bridgeId: String
    private let journal: EventJournal
    private let sockets: BusSocketFactory
    private var logger: Logger { sockets.logger }

    init(endpoint: String, bridgeId: String, journal: EventJournal, sockets: BusSocketFactory) throws {
        (socket, bound) = try sockets.bind(.router, at: endpoint, for: .subscribers) { socket in
            try socket.setRouterMandatory(true)
            try socket.setMaxMessageSize(Int64(BusSchema.maxFrameSize))
        }
        self.bridgeId = bridgeId
        self.journal = journal
        self.sockets = sockets
    }

    func start(on loop: ZMQServiceLoop) {
        loop.watch(socket) { [self] in
            sockets.drain(socket, for: .subscribers, name: "replay", refusal: "refused replay message") { envelope, payload, _ in
                // Replies go back with the same envelope.
                answer(payload, envelope: envelope)
            }
        }
    }

    /// Answers one replay request; `max` bounds the time it takes.
    private func answer(_ payload: [UInt8], envelope: [[UInt8]]) {
        let request: ReplayRequest
        do {
            request = try ReplayRequest.decode(payload)
        } catch {
            sockets.refusedFrames.increment()
            logger.warning("refused replay message", metadata: ["bus.error": "\(error.error.code)", "bus.reason": "\(error.error.message)"])
            send(ReplayReply.error(error.reply).encoded(), to: envelope)
            return
        }
        let range: EventJournal.Range
        do {
            range = try journal.read(from: request.fromSeq, max: request.max)
        } catch {
            logger.error("journal read failed", metadata: ["journal.error": "\(error)", "bus.request_id": "\(request.requestId)"])
            send(ReplayReply.error(ErrorReply(code: .journalUnavailable, message: "the journal could not be read: \(error)",
                                              requestId: request.requestId)).encoded(), to: envelope)
            return
        }
        var batch: [[UInt8]] = []
        var batchBytes = 0
        // Room for the frame's own fields, so a full batch stays under the bus' frame limit.
        let budget = BusSchema.maxFrameSize - 1024
        for (_, json) in range.events {
            if batch.count == ReplayReply.batchSize || (!batch.isEmpty && batchBytes + json.count + 1 > budget) {
                send(ReplayReply.eventsFrame(requestId: request.requestId, journaled: batch), to: envelope)
                batch.removeAll(keepingCapacity: true)
                batchBytes = 0
            }
            batch.append(json)
            batchBytes += json.count + 1
        }
        if !batch.isEmpty { send(ReplayReply.eventsFrame(requestId: request.requestId, journaled: batch), to: envelope) }
        let next = range.events.last.map { $0.seq + 1 } ?? max(request.fromSeq, range.lastSeq + 1)
        send(ReplayReply.end(ReplayEnd(requestId: request.requestId, bridgeId: bridgeId,
                                       firstSeq: range.firstSeq, lastSeq: range.lastSeq, nextSeq: next)).encoded(),
             to: envelope)
    }

    private func send(_ frame: [UInt8], to envelope: [[UInt8]]) {
        do {
            try socket.send(envelope + [frame], dontWait: true)
        } catch {
            // The client went away (or stopped reading); it asks again from the last seq it got.
            logger.warning("could not reach replay client", metadata: ["bus.error": "\(error)"])
        }
    }
}
