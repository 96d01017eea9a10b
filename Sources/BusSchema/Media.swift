import Foundation

/// Where a call's media flows: phone to phone with the SDP relayed (the default), or through the bridge's rtpengine,
/// which the media commands (`play`, `record`, `dtmf`) and `call.dtmf` need.
public enum MediaMode: String, Equatable, Sendable, CaseIterable {
    case relay
    case anchor
}

/// A tone the bridge can play without a prompt file: it writes them itself, 8 kHz 16-bit WAV.
public enum Tone: String, Equatable, Sendable, CaseIterable {
    /// 440 + 480 Hz, 2 s on and 4 s off (North American ringback).
    case ringback
    /// 480 + 620 Hz, 0.5 s on and 0.5 s off.
    case busy
    /// 1 kHz for 0.5 s, the "start speaking" beep before a recording.
    case beep
}

/// What a `play` command plays: a prompt of the bridge's prompts folder (by name, without `.wav`) or a tone,
/// `repeat` times.
///
/// ```json
/// {"prompt":"welcome","repeat":2}
/// {"tone":"ringback","repeat":10}
/// ```
public struct Playback: Equatable, Sendable {
    /// Most repeats one command may ask for: a prompt looped for ever would keep its leg busy after its worker is gone.
    public static let maxRepeat = 100

    public var prompt: String?
    public var tone: Tone?
    public var repeatCount: Int

    public init(prompt: String? = nil, tone: Tone? = nil, repeatCount: Int = 1) {
        self.prompt = prompt
        self.tone = tone
        self.repeatCount = repeatCount
    }

    /// What the bridge would refuse, or nil: exactly one of prompt and tone, a prompt name that cannot leave the
    /// prompts folder, a repeat count in range.
    var problem: String? {
        switch (prompt, tone) {
        case (nil, nil): return "play needs a prompt or a tone"
        case (.some, .some): return "play takes a prompt or a tone, not both"
        case (let prompt?, nil):
            if !Self.isPromptName(prompt) {
                return "prompt \(prompt.debugDescription) is not a prompt name (letters, digits, '-', '_' and '.', at most 64, not starting with '.')"
            }
        case (nil, .some): break
        }
        if !(1...Self.maxRepeat).contains(repeatCount) { return "repeat \(repeatCount) is outside 1...\(Self.maxRepeat)" }
        return nil
    }

    /// A name that is one file name inside the prompts folder: no separator, no `..`, no hidden file.
    public static func isPromptName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), name.first != "." else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
    }

    /// The name events and logs show: the prompt's, or `tone:NAME`.
    public var label: String { prompt ?? "tone:\(tone?.rawValue ?? "")" }
}

/// Digits for the `dtmf` command: RFC 4733 events 0-9, `*`, `#`, `A`-`D`.
public enum DTMFDigits {
    public static let alphabet = Set("0123456789*#ABCD")
    /// Most digits one command sends (a PIN or an extension, not a fax).
    public static let maxCount = 32
    /// Each digit's tone length, milliseconds; RFC 4733 senders use 40 ms and more.
    public static let durationRange = 40...2_000

    static func problem(_ digits: String, durationMs: Int?) -> String? {
        if digits.isEmpty { return "digits is empty" }
        if digits.count > maxCount { return "digits has \(digits.count) digits, more than \(maxCount)" }
        if let bad = digits.first(where: { !alphabet.contains($0) }) {
            return "digits contains \(String(bad).debugDescription): only 0-9, *, # and A-D are DTMF"
        }
        if let durationMs, !durationRange.contains(durationMs) {
            return "duration_ms \(durationMs) is outside \(durationRange.lowerBound)...\(durationRange.upperBound)"
        }
        return nil
    }
}

/// A key a party pressed, as rtpengine detected it in the party's RFC 4733 packets: `call.dtmf`, one per key, in
/// the order pressed.
///
/// ```json
/// {"leg":"a","digit":"5","duration_ms":120}
/// ```
public struct DTMFPressed: Equatable, Sendable {
    public var leg: Leg
    public var digit: String
    public var durationMs: Int

    public init(leg: Leg, digit: String, durationMs: Int) {
        self.leg = leg
        self.digit = digit
        self.durationMs = durationMs
    }

    /// The digit of an RFC 4733 event code (0-15), nil for the other events (flash, tones).
    public static func digit(ofEvent code: Int) -> String? {
        let digits = Array("0123456789*#ABCD")
        return digits.indices.contains(code) ? String(digits[code]) : nil
    }
}

/// How a playback ended, in `call.media.played`.
public enum PlaybackOutcome: String, Equatable, Sendable, CaseIterable {
    /// It played every repeat.
    case finished
    /// A `stop_play` command, or a new `play` to the same leg, cut it short.
    case stopped
    /// The call ended (or its media went away) while it played.
    case interrupted
}

/// A playback that is over: `call.media.played`.
///
/// ```json
/// {"leg":"a","prompt":"welcome","outcome":"finished","played_ms":2000}
/// ```
public struct MediaPlayed: Equatable, Sendable {
    public var leg: Leg
    public var playback: Playback
    public var outcome: PlaybackOutcome
    /// How long it played, milliseconds.
    public var playedMs: Int

    public init(leg: Leg, playback: Playback, outcome: PlaybackOutcome, playedMs: Int) {
        self.leg = leg
        self.playback = playback
        self.outcome = outcome
        self.playedMs = playedMs
    }
}

/// A recording that is complete: `call.media.recorded`, after `record` `stop` or the end of the call.
///
/// ```json
/// {"path":"/var/spool/switchboard/recordings/pcaps/b1-x-7-1f2e3d4c5b6a7988.pcap","format":"pcap","duration_ms":10020,"bytes":180224}
/// {"path":"/var/spool/switchboard/recordings/pcaps/b1-x-7-1f2e3d4c5b6a7988.pcap","format":"pcap","duration_ms":10020}
/// ```
public struct MediaRecorded: Equatable, Sendable {
    /// The file on the media host, inside the bridge's recordings folder.
    public var path: String
    /// `pcap`: both directions' RTP as rtpengine captured them.
    public var format: String
    /// From the start to the stop of the recording, milliseconds.
    public var durationMs: Int
    /// The file's size after a `record` `stop`; nil when the call's end stopped it, as rtpengine is still closing the
    /// file then.
    public var bytes: Int?

    public init(path: String, format: String = "pcap", durationMs: Int, bytes: Int? = nil) {
        self.path = path
        self.format = format
        self.durationMs = durationMs
        self.bytes = bytes
    }
}

extension Playback: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(prompt: try json.optionalString("prompt"), tone: try json.optionalEnum("tone"),
                  repeatCount: try json.optionalInt("repeat") ?? 1)
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writeMembers(to: &writer)
        writer.closeObject()
    }

    /// The members alone, for the `play` command and `call.media.played`, whose objects hold others too.
    func writeMembers(to writer: inout JSONWriter) {
        writer.member("prompt", prompt)
        writer.member("tone", tone)
        if repeatCount != 1 { writer.member("repeat", repeatCount) }
    }
}

extension DTMFPressed: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), digit: try json.string("digit"), durationMs: try json.int("duration_ms"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        writer.member("digit", digit)
        writer.member("duration_ms", durationMs)
        writer.closeObject()
    }
}

extension MediaPlayed: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(leg: try json.enumValue("leg"), playback: try Playback(json: json), outcome: try json.enumValue("outcome"),
                  playedMs: try json.int("played_ms"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("leg", leg)
        playback.writeMembers(to: &writer)
        writer.member("outcome", outcome)
        writer.member("played_ms", playedMs)
        writer.closeObject()
    }
}

extension MediaRecorded: BusMessage {
    init(json: JSONObject) throws(BusDecodingError) {
        self.init(path: try json.string("path"), format: try json.string("format"), durationMs: try json.int("duration_ms"),
                  bytes: try json.optionalInt("bytes"))
    }

    func write(to writer: inout JSONWriter) {
        writer.openObject()
        writer.member("path", path)
        writer.member("format", format)
        writer.member("duration_ms", durationMs)
        writer.member("bytes", bytes)
        writer.closeObject()
    }
}
