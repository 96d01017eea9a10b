#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// The thread that owns a set of ZeroMQ sockets: it polls them, runs work other threads hand it, and
/// calls its owners back once per pass so they can keep their timers (heartbeats, deadlines).
///
/// ZeroMQ sockets are not thread-safe, so each socket lives on one loop: it is created, used and closed
/// in work the loop runs (``submit(_:)``, ``execute(_:)``, a ``watch(_:onReadable:)`` handler, a pass
/// hook or a stop handler). Other threads reach it with ``execute(_:)``; ``ZMQLoopBound`` carries the
/// owner's state to them and back.
///
/// A pass: wait in `zmq_poll` (on the watched sockets and the wake-up pipe, no longer than the earliest
/// deadline a pass hook asked for), run the work queued meanwhile in order, call the handler of each
/// readable socket, then every pass hook. Queued work wakes the loop at once: the first `execute` into
/// an empty inbox writes one byte to a pipe, and the loop empties the whole inbox each time it wakes, so
/// a burst costs one wake-up. A pipe rather than an inproc PAIR socket: any thread may write it without a
/// lock (a PAIR sender is a socket, owned by one thread), and `zmq_poll` watches it directly.
///
/// ```swift
/// let loop = try ZMQServiceLoop(name: "switchboard-bus")
/// let pub = try loop.submit {
///     let socket = try ZMQSocket(context: context, type: .pub)
///     try socket.bind("tcp://127.0.0.1:5570")
///     loop.onStop { _ in socket.close() }
///     return ZMQLoopBound(socket, loop: loop)
/// }
/// loop.execute { try? pub.value.send([Array("call.offered".utf8), json]) }
/// try loop.stop()
/// ```
public final class ZMQServiceLoop: Sendable {
    /// Thrown by ``submit(_:)`` when the loop has stopped, or stops before running the work.
    public struct Stopped: Error, Equatable {}

    private struct Job: Sendable {
        let run: @Sendable () -> Void
        /// Tells a waiting ``submit(_:)`` that `run` never will.
        let abandon: (@Sendable () -> Void)?
    }

    private struct Inbox {
        var jobs: [Job] = []
        var stopRequested = false
        var finished = false
        var failure: (any Error)?
        var waiters: [CheckedContinuation<Void, any Error>] = []
    }

    /// The owners' registrations, touched by the loop thread only.
    private final class Registrations {
        struct Watch {
            let id: Int
            let socket: ZMQSocket
            let onReadable: () throws -> Void
        }

        var watches: [Watch] = []
        var nextWatchId = 0
        var pollerIsStale = true
        var passHooks: [(ContinuousClock.Instant) throws -> ContinuousClock.Instant?] = []
        var stopHandlers: [((any Error)?) -> Void] = []
    }

    // Sendable because only the loop thread reads or writes it: every entry point checks `inLoop`.
    private struct Confined: @unchecked Sendable {
        let registrations = Registrations()
    }

    private let name: String
    private let wakeup: Wakeup
    private let inbox = Mutex(Inbox())
    private let thread = Mutex<pthread_t?>(nil)
    private let confined = Confined()
    private let finished = DispatchSemaphore(value: 0)

    /// Starts the loop's thread, named `name` (it shows in debuggers and `top -H`).
    public init(name: String) throws(ZMQError) {
        self.name = name
        wakeup = try Wakeup()
        let started = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            self.thread.withLock { $0 = pthread_self() }
            started.signal()
            run()
        }
        thread.name = name
        thread.start()
        // Wait for the thread's id, so `inLoop` is right from the first job on.
        started.wait()
    }

    deinit {
        assert(inbox.withLock { $0.finished }, "ZMQServiceLoop \(name) deallocated without stop()")
    }

    /// True on the loop's own thread.
    public var inLoop: Bool {
        thread.withLock { id in id.map { pthread_equal($0, pthread_self()) != 0 } ?? false }
    }

    /// Runs `work` on the loop, after the work queued before it. Work queued after the loop stopped is dropped.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        enqueue(Job(run: work, abandon: nil))
    }

    /// Runs `work` on the loop and waits for its result: how sockets are made, so that their errors
    /// reach the caller. Call it from another thread.
    ///
    /// - Throws: what `work` throws, or ``Stopped`` when the loop stopped before running it.
    public func submit<Result: Sendable>(_ work: @escaping @Sendable () throws -> Result) throws -> Result {
        precondition(!inLoop, "submit on the loop's own thread would wait for itself")
        let outcome = Mutex<Swift.Result<Result, any Error>>(.failure(Stopped()))
        let done = DispatchSemaphore(value: 0)
        enqueue(Job(run: {
            let result = Swift.Result { try work() }
            outcome.withLock { $0 = result }
            done.signal()
        }, abandon: { done.signal() }))
        done.wait()
        return try outcome.withLock { $0 }.get()
    }

    /// Asks the loop to stop: it runs the work already queued (and what that work queues), then its stop
    /// handlers, and ends. Returns at once; any thread, the loop's own included.
    public func requestStop() {
        let signal = inbox.withLock { inbox -> Bool in
            defer { inbox.stopRequested = true }
            return !inbox.stopRequested && !inbox.finished
        }
        if signal { wakeup.signal() }
    }

    /// Stops the loop and waits for its thread to end. Idempotent.
    ///
    /// - Throws: the error that stopped the loop earlier (a failed poll, a handler that threw), if any.
    public func stop() throws {
        precondition(!inLoop, "stop on the loop's own thread would wait for itself; use requestStop()")
        requestStop()
        finished.wait()
        finished.signal()
        if let failure = inbox.withLock({ $0.failure }) { throw failure }
    }

    /// Waits until the loop has ended (after ``requestStop()``, or a failure).
    ///
    /// - Throws: the error that stopped the loop, if any.
    public func waitUntilStopped() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = inbox.withLock { inbox -> Swift.Result<Void, any Error>? in
                guard inbox.finished else {
                    inbox.waiters.append(continuation)
                    return nil
                }
                return inbox.failure.map { .failure($0) } ?? .success(())
            }
            if let outcome { continuation.resume(with: outcome) }
        }
    }

    // MARK: On the loop's thread

    /// Calls `onReadable` whenever `socket` has a message; it should receive until none is left
    /// (`receive(dontWait: true)` returns nil). An error it throws stops the loop.
    public func watch(_ socket: ZMQSocket, onReadable: @escaping () throws -> Void) {
        let registrations = confinedRegistrations()
        registrations.watches.append(.init(id: registrations.nextWatchId, socket: socket, onReadable: onReadable))
        registrations.nextWatchId += 1
        registrations.pollerIsStale = true
    }

    /// Stops watching `socket` (before closing it, or to stop reading it for a while).
    public func unwatch(_ socket: ZMQSocket) {
        let registrations = confinedRegistrations()
        registrations.watches.removeAll { $0.socket === socket }
        registrations.pollerIsStale = true
    }

    /// Calls `hook` at the end of every pass, in the order hooks were added, with the time the pass
    /// started; it returns when it wants to run again at the latest (nil: no deadline of its own).
    /// An error it throws stops the loop.
    public func afterEachPass(_ hook: @escaping (_ now: ContinuousClock.Instant) throws -> ContinuousClock.Instant?) {
        confinedRegistrations().passHooks.append(hook)
    }

    /// Calls `handler` when the loop ends, however it ends, with the error that stopped it (nil after
    /// ``requestStop()``): close the sockets here. Handlers run last added first, like `defer`.
    public func onStop(_ handler: @escaping (_ failure: (any Error)?) -> Void) {
        confinedRegistrations().stopHandlers.append(handler)
    }

    private func confinedRegistrations() -> Registrations {
        precondition(inLoop, "ZMQServiceLoop \(name): socket registrations belong to the loop's thread")
        return confined.registrations
    }

    private func enqueue(_ job: Job) {
        let outcome = inbox.withLock { inbox -> (accepted: Bool, signal: Bool) in
            guard !inbox.finished else { return (false, false) }
            inbox.jobs.append(job)
            return (true, inbox.jobs.count == 1)
        }
        if !outcome.accepted { job.abandon?() }
        if outcome.signal { wakeup.signal() }
    }

    /// Takes the queued work; drain the pipe before, so a wake-up for work queued later is never lost.
    private func takeJobs() -> (jobs: [Job], stop: Bool) {
        inbox.withLock { inbox in
            defer { inbox.jobs.removeAll(keepingCapacity: true) }
            return (inbox.jobs, inbox.stopRequested)
        }
    }

    private func run() {
        let registrations = confined.registrations
        var failure: (any Error)?
        do {
            try serve(registrations)
        } catch {
            failure = error
        }
        let (leftover, waiters) = inbox.withLock { inbox in
            inbox.finished = true
            inbox.failure = failure
            defer { inbox.jobs.removeAll(); inbox.waiters.removeAll() }
            return (inbox.jobs, inbox.waiters)
        }
        for job in leftover { job.abandon?() }
        for handler in registrations.stopHandlers.reversed() { handler(failure) }
        registrations.watches.removeAll()
        registrations.passHooks.removeAll()
        registrations.stopHandlers.removeAll()
        wakeup.drain()
        finished.signal()
        for waiter in waiters { waiter.resume(with: failure.map { .failure($0) } ?? .success(())) }
    }

    /// Rounded up to zmq_poll's milliseconds, so the loop wakes at or after a deadline, never spinning before it.
    private static func pollTimeout(until deadline: ContinuousClock.Instant) -> Duration {
        let wait = deadline - .now
        guard wait > .zero else { return .zero }
        let whole = Duration.milliseconds(wait.milliseconds)
        return whole == wait ? whole : whole + .milliseconds(1)
    }

    private func serve(_ registrations: Registrations) throws {
        var poller = ZMQPoller()
        var wakeIndex = 0
        var polled: [Int] = []
        var deadline: ContinuousClock.Instant?
        while true {
            if registrations.pollerIsStale {
                poller = ZMQPoller()
                wakeIndex = poller.add(fileDescriptor: wakeup.fileDescriptor)
                polled = registrations.watches.map { watch in
                    _ = poller.add(watch.socket)
                    return watch.id
                }
                registrations.pollerIsStale = false
            }
            let ready = try poller.poll(timeout: deadline.map { Self.pollTimeout(until: $0) })
            let now = ContinuousClock.now
            if ready.contains(wakeIndex) { wakeup.drain() }
            var (jobs, stop) = takeJobs()
            for job in jobs { job.run() }
            if stop {
                // What the last work queued (a batch the journal handed back, say) still runs.
                while true {
                    (jobs, stop) = takeJobs()
                    if jobs.isEmpty { return }
                    for job in jobs { job.run() }
                }
            }
            // Indices 1... are the watches in `polled` order; one a handler removed meanwhile is skipped.
            for (offset, id) in polled.enumerated() where ready.contains(offset + 1) {
                guard let watch = registrations.watches.first(where: { $0.id == id }) else { continue }
                try watch.onReadable()
            }
            deadline = nil
            for hook in registrations.passHooks {
                if let next = try hook(now) { deadline = min(deadline ?? next, next) }
            }
        }
    }
}

/// A value that only its loop's thread may use, carried through other threads: the state an owner
/// keeps on its ``ZMQServiceLoop``, captured by the work it hands that loop.
///
/// Like swift-nio's `NIOLoopBound`: make it on the loop, read it on the loop; both trap elsewhere.
///
/// ```swift
/// let state = try loop.submit { ZMQLoopBound(Publisher(socket: try makeSocket()), loop: loop) }
/// loop.execute { state.value.publish(event) }
/// ```
public struct ZMQLoopBound<Value>: @unchecked Sendable {
    // Sendable because `value` is only reachable on `loop`'s thread, which every access checks.
    private let storage: Value
    /// The loop whose thread may use the value.
    public let loop: ZMQServiceLoop

    /// Wraps `value`; call it on `loop`'s thread.
    public init(_ value: Value, loop: ZMQServiceLoop) {
        precondition(loop.inLoop, "ZMQLoopBound made off its loop's thread")
        storage = value
        self.loop = loop
    }

    /// The value; read it on the loop's thread only.
    public var value: Value {
        precondition(loop.inLoop, "ZMQLoopBound used off its loop's thread")
        return storage
    }
}
