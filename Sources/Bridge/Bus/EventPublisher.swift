import BusSchema
import Foundation
import Logging
import Metrics
import Synchronization
import ZeroMQ

/// The events PUB socket, on the bus loop: numbers each event, hands it to the journal, and publishes it
/// once the journal has committed it, so an event on the wire is always replayable.
///
/// Events numbered during one pass of the loop go to the journal's writer thread as one batch at the end
/// of the pass (`journalPending`); the writer hands each batch back committed (`Committed`), and the loop
/// sends them in seq order.
final class EventPublisher {
    /// Batches the journal has committed, waiting to be published (in seq order). The journal's writer
    /// thread adds to it; the loop takes from it.
    final class Committed: Sendable {
        private let batches = Mutex<[[EventJournal.Entry]]>([])

        func append(_ batch: [EventJournal.Entry]) {
            batches.withLock { $0.append(batch) }
        }

        func takeAll() -> [[EventJournal.Entry]] {
            batches.withLock { batches in
                defer { batches.removeAll(keepingCapacity: true) }
                return batches
            }
        }
    }

    let bound: String
    private let socket: ZMQSocket
    private let bridgeId: String
    private let journal: EventJournal
    private let committed: Committed
    private let logger: Logger
    private let admission: BusAdmission?
    private var sequence: UInt64
    /// Events numbered in this pass of the loop, handed to the journal at its end.
    private var unjournaled: [EventJournal.Entry] = []
    private let publishedEvents = Counter(label: "switchboard_bus_events_published_total")

    init(endpoint: String, bridgeId: String, journal: EventJournal, committed: Committed, sockets: BusSocketFactory) throws {
        // With CURVE an XPUB, so that each subscriber's connection shows in its subscriptions (see `start`).
        (socket, bound) = try sockets.bind(sockets.admission == nil ? .pub : .xpub, at: endpoint, for: .subscribers) { socket in
            if sockets.admission != nil { try socket.setXPubVerbose(true) }
            // Let the last events (bridge.stopping, the shutdown fallbacks) leave before the socket closes.
            try socket.setLinger(.seconds(1))
            // A PUB drops silently past its high-water mark (libzmq's default is 1,000 per subscriber),
            // and events are published in bursts after each journal commit: queue far more, bounded.
            // A subscriber that still falls behind finds the gap by seq and replays it from the journal.
            try socket.setHighWaterMarks(send: 50_000, receive: 1_000)
        }
        self.bridgeId = bridgeId
        self.journal = journal
        self.committed = committed
        logger = sockets.logger
        admission = sockets.admission
        sequence = journal.lastSeqAtOpen
    }

    /// Hands what this pass numbered to the journal at the end of every pass; `start` after the
    /// decision broker's, so the worker events it numbers in its pass hook go too.
    func start(on loop: ZMQServiceLoop) {
        if let admission {
            // A subscriber's SUB sends its subscriptions (first byte 1) when it connects: the one message that
            // tells whose connection it is. One from a key no longer admitted gets the connection shut down.
            // The unsubscriptions the XPUB makes itself when a connection ends come from nobody: skipped.
            loop.watch(socket) { [self] in
                do {
                    while let (frames, userId, connection) = try socket.receiveWithPeer(dontWait: true) {
                        guard frames.first?.first == 1 else { continue }
                        _ = admission.admits(userId: userId, on: .subscribers, connection: connection, identity: nil)
                    }
                } catch {
                    logger.error("events receive failed", metadata: ["bus.error": "\(error)"])
                }
            }
        }
        loop.afterEachPass { [self] _ in
            journalPending()
            return nil
        }
    }

    /// Numbers one event and queues it for the journal; it is sent once committed.
    func publish(callId: String?, _ body: EventBody) {
        sequence += 1
        let event = Event(bridgeId: bridgeId, seq: sequence, timestamp: Date(), callId: callId, body: body)
        unjournaled.append(EventJournal.Entry(seq: sequence, type: event.type, callId: callId,
                                              ts: Event.wireTimestamp(event.timestamp), json: event.jsonBytes()))
    }

    /// Sends the batches the journal has committed, in seq order.
    func publishCommitted() {
        for entry in committed.takeAll().joined() {
            do {
                try socket.send([Array(entry.type.utf8), entry.json], dontWait: true)
                publishedEvents.increment()
            } catch {
                logger.error("event not published", metadata: ["bus.topic": "\(entry.type)", "bus.seq": "\(entry.seq)", "bus.error": "\(error)"])
            }
        }
    }

    /// Journals and publishes everything already numbered; shutdown may wait for the disk.
    func finish() {
        journalPending()
        journal.flush()
        publishCommitted()
    }

    /// Hands the events numbered in this pass to the journal's writer: one batch, one transaction at most.
    private func journalPending() {
        guard !unjournaled.isEmpty else { return }
        journal.append(unjournaled)
        unjournaled.removeAll(keepingCapacity: true)
    }
}
