import BusSchema
import Foundation
import Logging
import Metrics
import NIOCore
import SIPCore

/// The bridge's media: calls anchored in one rtpengine over the ng protocol, and the media commands on them.
///
/// The bridge owns each anchored call's rtpengine session (rather than Kamailio's rtpengine module): only the B2BUA
/// sees both legs' offers and answers, the ends of every call (a restart's leftovers too), and the bus' call ids the
/// commands name. The session is the call's bus id; each leg is the monologue `leg<N>` (its `LegID`), and the
/// bridge's own end of a call it answered itself (an IVR) is `bridge`, whose media goes nowhere (port 9 on loopback).
///
/// Loop-bound: runs on the SIP event loop.
final class MediaService {
    struct Settings: Sendable {
        /// rtpengine's ng address.
        var rtpengine: SocketAddress
        /// How long an ng request may take, retransmissions included.
        var timeout: TimeAmount = .milliseconds(1_000)
        /// The prompts `play` may name (`NAME.wav`); rtpengine reads them, so it must see the same path.
        var prompts: String?
        /// The tones the bridge writes at start; rtpengine reads them too.
        var tones: String
        /// rtpengine's `--recording-dir`, as this host sees it.
        var recordings: String?
        /// Recordings at once, across calls.
        var maxRecordings = 100
        /// A recording starts only with this much free space in `recordings`.
        var minFreeBytes: Int64 = 500 * 1024 * 1024
    }


    /// A `play` in progress on one leg.
    struct Playing {
        let playback: Playback
        let started: ContinuousClock.Instant
        /// Every repeat's length: rtpengine tells a file's duration, not when it is done playing.
        let plannedMs: Int
        var timer: Scheduled<Void>?
    }

    /// A recording in progress.
    struct Recording {
        let path: String
        let started: ContinuousClock.Instant
    }

    let settings: Settings
    private let loop: EventLoop
    private let client: NGClient
    private let bus: BridgeBus
    private let logger: Logger
    private var recordings = 0
    /// Anchored calls by id, for rtpengine's DTMF reports.
    private var anchored: [String: Call] = [:]
    private let anchoringFailed = Counter(label: "switchboard_media_anchor_failed_total")
    private let dtmfDropped = Counter(label: "switchboard_media_dtmf_dropped_total")

    init(settings: Settings, loop: EventLoop, transport: NGTransport, bus: BridgeBus, logger: Logger) {
        self.settings = settings
        self.loop = loop
        self.bus = bus
        self.logger = logger
        client = NGClient(loop: loop, transport: transport, timeout: settings.timeout, logger: logger)
    }

    /// An ng reply datagram.
    func received(_ datagram: [UInt8]) {
        client.received(datagram)
    }

    static func tag(_ leg: LegID) -> Bencode { .string("leg\(leg.number)") }
    private static let bridgeTag: Bencode = "bridge"
    /// RFC 4733 injection needs rtpengine's DTMF path on the call from its offer on; the "dtmf" command uses it.
    private static let flags: Bencode = .list(["inject DTMF"])

    // MARK: - Anchoring

    /// The call's media goes through rtpengine from now on: the DTMF it detects is the call's.
    func anchor(_ call: Call) {
        call.media = CallMedia()
        anchored[call.id] = call
    }

    /// `sdp` from leg `sender` to leg `receiver`, rewritten to rtpengine's ports: an offer opens (or updates) the
    /// sender's side, an answer completes the receiver's offer. Nil when rtpengine failed: the caller of this
    /// relays the SDP as it is and the call goes on with its media unanchored.
    func rewrite(_ call: Call, _ exchange: CallFlow.SDPExchange, sdp: [UInt8], completion: @escaping ([UInt8]?) -> Void) {
        var members: [String: Bencode] = ["call-id": .string(call.id), "sdp": .bytes(sdp), "flags": Self.flags]
        if exchange.offer {
            members["from-tag"] = Self.tag(exchange.sender)
            if let receiver = exchange.receiver { members["to-tag"] = Self.tag(receiver) }
        } else {
            members["from-tag"] = exchange.receiver.map(Self.tag) ?? Self.bridgeTag
            members["to-tag"] = Self.tag(exchange.sender)
        }
        client.request(exchange.offer ? "offer" : "answer", members) { [self] result in
            switch Self.sdp(of: result) {
            case .success(let rewritten):
                completion(rewritten)
            case .failure(let error):
                failed(call, error)
                completion(nil)
            }
        }
    }

    private func failed(_ call: Call, _ error: MediaError) {
        anchoringFailed.increment()
        call.mediaFailure = error.description
        logger.warning("media anchoring failed: the call goes on with its SDP relayed", metadata: ["call.id": "\(call.id)", "media.error": "\(error)"])
    }

    /// The bridge answers the caller itself (an IVR): the caller's offer (already rewritten by `rewrite`, so the
    /// caller's side exists) is answered by the bridge's own side, whose media goes to a discard port.
    func answerItself(_ call: Call, offered: [UInt8], completion: @escaping (Result<[UInt8], MediaError>) -> Void) {
        let members: [String: Bencode] = ["call-id": .string(call.id), "from-tag": Self.tag(.first), "to-tag": Self.bridgeTag,
                                          "sdp": .bytes(Self.discardAnswer(to: offered)), "flags": Self.flags]
        client.request("answer", members) { result in completion(Self.sdp(of: result)) }
    }

    /// The SDP of an offer's or answer's reply.
    private static func sdp(of result: Result<Bencode, MediaError>) -> Result<[UInt8], MediaError> {
        result.flatMap { reply in reply["sdp"]?.bytes.map(Result.success) ?? .failure(MediaError("rtpengine's reply has no sdp")) }
    }

    /// An answer to `offer` (rtpengine's, facing the bridge) that takes every format it offers and sends to port 9:
    /// the caller hears what `play` sends, and what the caller says goes nowhere.
    static func discardAnswer(to offer: [UInt8]) -> [UInt8] {
        let lines = String(decoding: offer, as: UTF8.self).split(omittingEmptySubsequences: true, whereSeparator: \.isNewline)
        let dropped = ["a=rtcp:", "a=candidate", "a=ice-", "a=fingerprint", "a=setup", "a=crypto", "a=sendonly", "a=recvonly",
                       "a=inactive", "a=sendrecv", "a=end-of-candidates"]
        var out: [String] = []
        for line in lines where !dropped.contains(where: { line.hasPrefix($0) }) {
            if line.hasPrefix("c=") {
                out.append("c=IN IP4 127.0.0.1")
            } else if line.hasPrefix("m=") {
                var fields = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                if fields.count > 1 { fields[1] = line.hasPrefix("m=audio") ? "9" : "0" }
                out.append(fields.joined(separator: " "))
            } else {
                out.append(String(line))
            }
        }
        return Array((out.joined(separator: "\r\n") + "\r\n").utf8)
    }

    /// The call is over (or its leftovers are): playbacks and a recording in progress are reported before
    /// `call.ended`, and rtpengine's session goes.
    func ending(_ call: Call) {
        guard let media = call.media else { return }
        for leg in media.playing.keys.sorted() { finishPlayback(call, leg: leg, outcome: .interrupted) }
        if let recording = media.recording { recorded(call, recording) }
    }

    func finished(_ call: Call) {
        guard call.media != nil else { return }
        anchored[call.id] = nil
        delete(callId: call.id)
    }

    /// Ends rtpengine's session of a call (a previous run's too: rtpengine refuses an unknown one, which is fine).
    func delete(callId: String) {
        client.request("delete", ["call-id": .string(callId)]) { [logger] result in
            if case .failure(let error) = result {
                logger.debug("rtpengine delete", metadata: ["call.id": "\(callId)", "media.error": "\(error)"])
            }
        }
    }

    // MARK: - Commands

    /// `play`: rtpengine plays the file to each leg (`play media` with the leg's tag plays *to* that party).
    func play(_ call: Call, legs: [(LegID, Leg)], playback: Playback, completion: @escaping (Result<Void, MediaError>) -> Void) {
        let file: String
        switch resolve(playback) {
        case .success(let path): file = path
        case .failure(let error): return completion(.failure(error))
        }
        var left = legs.count
        var failure: MediaError?
        for (leg, role) in legs {
            let members: [String: Bencode] = ["call-id": .string(call.id), "from-tag": Self.tag(leg), "file": .string(file),
                                              "repeat-times": .integer(playback.repeatCount)]
            client.request("play media", members) { [self] result in
                switch result {
                case .success(let reply):
                    // A new play replaces what the leg heard.
                    if call.media?.playing[leg] != nil { finishPlayback(call, leg: leg, outcome: .stopped) }
                    let planned = (reply["duration"]?.integer ?? 0) * playback.repeatCount
                    var playing = Playing(playback: playback, started: .now, plannedMs: planned)
                    playing.timer = loop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(planned))) { [self] in
                        finishPlayback(call, leg: leg, outcome: .finished)
                    }
                    call.media?.playing[leg] = playing
                    call.media?.roles[leg] = role
                case .failure(let error):
                    failure = error
                }
                left -= 1
                if left == 0 { completion(failure.map(Result.failure) ?? .success(())) }
            }
        }
    }

    /// The file a playback names, inside its folder; `bad_command` text when there is none.
    private func resolve(_ playback: Playback) -> Result<String, MediaError> {
        if let tone = playback.tone { return .success("\(settings.tones)/\(tone.rawValue).wav") }
        guard let folder = settings.prompts else { return .failure(MediaError("this bridge has no prompts folder (media_prompts)")) }
        let path = "\(folder)/\(playback.prompt ?? "").wav"
        guard FileManager.default.isReadableFile(atPath: path) else {
            return .failure(MediaError("prompt \((playback.prompt ?? "").debugDescription) is not in the prompts folder", code: .badCommand))
        }
        return .success(path)
    }

    func stopPlay(_ call: Call, legs: [LegID], completion: @escaping (Result<Void, MediaError>) -> Void) {
        let playing = legs.filter { call.media?.playing[$0] != nil }
        guard !playing.isEmpty else { return completion(.failure(MediaError("nothing is playing", code: .invalidState))) }
        var left = playing.count
        for leg in playing {
            client.request("stop media", ["call-id": .string(call.id), "from-tag": Self.tag(leg)]) { [self] _ in
                // Stopped or not, the playback is over as far as the bus knows: rtpengine has no other way to stop it.
                finishPlayback(call, leg: leg, outcome: .stopped)
                left -= 1
                if left == 0 { completion(.success(())) }
            }
        }
    }

    private func finishPlayback(_ call: Call, leg: LegID, outcome: PlaybackOutcome) {
        guard let playing = call.media?.playing.removeValue(forKey: leg), let role = call.media?.roles[leg] else { return }
        playing.timer?.cancel()
        let played = outcome == .finished ? playing.plannedMs : min(Int(CallFlow.ms(.now - playing.started).rounded()), playing.plannedMs)
        bus.publish(callId: call.id, .callMediaPlayed(MediaPlayed(leg: role, playback: playing.playback, outcome: outcome, playedMs: played)))
    }

    /// `record` `start`: rtpengine writes the call's RTP, both directions, to a pcap file in its recording folder.
    func startRecording(_ call: Call, completion: @escaping (Result<Void, MediaError>) -> Void) {
        guard let folder = settings.recordings else { return completion(.failure(MediaError("this bridge records nothing (media_recordings)"))) }
        if call.media?.recording != nil { return completion(.failure(MediaError("the call is being recorded already", code: .invalidState))) }
        guard recordings < settings.maxRecordings else {
            return completion(.failure(MediaError("\(recordings) recordings are running, the most this bridge takes (media_max_recordings)",
                                                  code: .limitExceeded)))
        }
        if let free = Self.freeBytes(folder), free < settings.minFreeBytes {
            return completion(.failure(MediaError("the recordings folder has \(free / 1_048_576) MB free, less than media_min_free_mb")))
        }
        recordings += 1
        client.request("start recording", ["call-id": .string(call.id)]) { [self] result in
            switch result {
            case .success:
                guard let path = Self.recordingFile(of: call.id, in: folder) else {
                    recordings -= 1
                    client.request("stop recording", ["call-id": .string(call.id)]) { _ in }
                    return completion(.failure(MediaError("rtpengine records to a folder other than media_recordings (\(folder))")))
                }
                call.media?.recording = Recording(path: path, started: .now)
                completion(.success(()))
            case .failure(let error):
                recordings -= 1
                completion(.failure(error))
            }
        }
    }

    func stopRecording(_ call: Call, completion: @escaping (Result<Void, MediaError>) -> Void) {
        guard let recording = call.media?.recording else { return completion(.failure(MediaError("the call is not being recorded", code: .invalidState))) }
        client.request("stop recording", ["call-id": .string(call.id)]) { [self] result in
            if case .failure(let error) = result { return completion(.failure(error)) }
            recorded(call, recording, stopped: true)
            completion(.success(()))
        }
    }

    /// `stopped`: rtpengine closed the file (a `record` `stop`), so its size is final; at the call's end it is not yet.
    private func recorded(_ call: Call, _ recording: Recording, stopped: Bool = false) {
        call.media?.recording = nil
        recordings -= 1
        let bytes = stopped ? (try? FileManager.default.attributesOfItem(atPath: recording.path)[.size] as? Int) : nil
        let duration = Int(CallFlow.ms(.now - recording.started).rounded())
        bus.publish(callId: call.id, .callMediaRecorded(MediaRecorded(path: recording.path, durationMs: duration, bytes: bytes)))
    }

    /// rtpengine's pcap method names the file `<call-id>-<16 hex>.pcap` in `pcaps/`, newest last; the call id is the
    /// bridge's own (no separator), so the name cannot leave the folder.
    static func recordingFile(of callId: String, in folder: String) -> String? {
        let directory = "\(folder)/pcaps"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let prefix = "\(callId)-"
        return names.filter { $0.hasPrefix(prefix) && $0.hasSuffix(".pcap") && !$0.dropFirst(prefix.count).contains("-") }
            .map { "\(directory)/\($0)" }
            .max { modified($0) < modified($1) }
    }

    private static func modified(_ path: String) -> Date {
        (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date) ?? .distantPast
    }

    static func freeBytes(_ folder: String) -> Int64? {
        (try? FileManager.default.attributesOfFileSystem(forPath: folder)[.systemFreeSize] as? NSNumber)?.int64Value
    }

    /// `dtmf`: the digits go to the party on `leg`, injected into the stream the other party sends it (rtpengine needs
    /// that stream: a party that sent no RTP yet cannot carry digits), one digit after another.
    func dtmf(_ call: Call, from sender: LegID, digits: String, durationMs: Int, completion: @escaping (Result<Void, MediaError>) -> Void) {
        guard let digit = digits.first else { return completion(.success(())) }
        let members: [String: Bencode] = ["call-id": .string(call.id), "from-tag": Self.tag(sender), "code": .string(String(digit)),
                                          "duration": .integer(durationMs)]
        // rtpengine reports what it injects as if the sender pressed it, possibly before its reply: that report is not
        // the party's key.
        call.media?.injected[sender, default: []].append((String(digit), .now + .milliseconds(durationMs) + .seconds(2)))
        client.request("play DTMF", members) { [self] result in
            if case .failure(let error) = result {
                call.media?.injected[sender]?.removeLast()
                return completion(.failure(error))
            }
            dtmf(call, from: sender, digits: String(digits.dropFirst()), durationMs: durationMs, completion: completion)
        }
    }

    // MARK: - Reports from rtpengine

    /// A DTMF report (`--dtmf-log-dest`): `{"callid":..,"source_tag":"leg0","event":5,"duration":120,...}` becomes
    /// `call.dtmf` for the leg that pressed it.
    func dtmfReport(_ datagram: [UInt8]) {
        guard let object = try? JSONSerialization.jsonObject(with: Data(datagram)) as? [String: Any],
              let callId = object["callid"] as? String, let source = object["source_tag"] as? String,
              let event = object["event"] as? Int, let digit = DTMFPressed.digit(ofEvent: event) else {
            dtmfDropped.increment()
            logger.warning("unreadable DTMF report from rtpengine dropped", metadata: ["media.bytes": "\(datagram.count)"])
            return
        }
        guard let call = anchored[callId], source.hasPrefix("leg"), let number = Int(source.dropFirst(3)),
              let role = call.flow.legs[LegID(number)]?.role else {
            dtmfDropped.increment()
            logger.info("DTMF report for no anchored call dropped", metadata: ["call.id": "\(callId)", "media.tag": "\(source)"])
            return
        }
        let leg = LegID(number)
        call.media?.injected[leg]?.removeAll { $0.until < .now }
        if let first = call.media?.injected[leg]?.first, first.digit == digit {
            call.media?.injected[leg]?.removeFirst()
            return
        }
        bus.publish(callId: call.id, .callDTMF(DTMFPressed(leg: role, digit: digit, durationMs: object["duration"] as? Int ?? 0)))
    }
}

/// An anchored call's media state: what each leg hears, and the recording.
final class CallMedia {
    var playing: [LegID: MediaService.Playing] = [:]
    var roles: [LegID: Leg] = [:]
    var recording: MediaService.Recording?
    /// Digits the `dtmf` command injected into each leg's stream, in order, until rtpengine reports them (or a while
    /// after they were sent).
    var injected: [LegID: [(digit: String, until: ContinuousClock.Instant)]] = [:]
}

extension MediaService.Settings {
    /// The bridge's media settings, nil without `media_rtpengine`. Folders become absolute: rtpengine, another
    /// process with another working directory, opens the files the bridge names.
    init?(_ configuration: BridgeConfiguration) {
        guard let rtpengine = configuration.mediaRTPEngine else { return nil }
        func absolute(_ path: String) -> String {
            path.hasPrefix("/") ? path : URL(fileURLWithPath: path).standardizedFileURL.path
        }
        self.init(rtpengine: rtpengine, timeout: TimeAmount(configuration.mediaTimeout), prompts: configuration.mediaPrompts.map(absolute),
                  tones: absolute(configuration.resolvedTonesPath), recordings: configuration.mediaRecordings.map(absolute),
                  maxRecordings: configuration.mediaMaxRecordings, minFreeBytes: Int64(configuration.mediaMinFreeMB) * 1_048_576)
    }
}
