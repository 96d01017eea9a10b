// switchboard-exec: the OpenSER 1.x hand-off. The exec module's exec_dset runs it once per call; it asks a
// bridge (the `decide` command on its commands socket) and prints what exec_dset makes of the call (see
// ExecOutput). Whatever happens (bridge down, slow, refusing) it prints its own fallback within
// --timeout-ms, so the proxy's process never waits longer. Linked with ZeroMQ and BusSchema only (no NIO, no
// logging or argument parsing library): it starts once per call, so start-up is its cost (bench/exec-handoff).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BusSchema

/// A line on stderr, which the proxy logs; stdout is exec_dset's.
func warn(_ message: String) {
    var line = "switchboard-exec: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func run() -> Int32 {
    let started = ContinuousClock.now
    let request: ExecRequest
    do {
        request = try ExecRequest.parse(Array(CommandLine.arguments.dropFirst())) { name in getenv(name).map { String(cString: $0) } }
    } catch {
        warn(error.message)
        return 64
    }
    let decision: Decision
    switch BridgeAsker.ask(request, until: started + .milliseconds(request.timeoutMs)) {
    case .success(let decided):
        decision = decided.decision
    case .failure(let why):
        warn("fallback for \(request.offer.sipCallId): \(why.message)")
        decision = request.fallback
    }
    print(ExecOutput.lines(for: decision).joined(separator: "\n"))
    return 0
}

exit(run())
