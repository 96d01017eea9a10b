import BusSchema
import Foundation

/// The tones `play` offers without a prompt file, written by the bridge as 8 kHz 16-bit mono WAV files for
/// rtpengine to read: one cadence cycle each, which `repeat` loops.
enum Tones {
    static let sampleRate = 8_000

    /// Writes every tone into `folder` (made if missing); throws what the file system refused.
    static func write(to folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for tone in Tone.allCases {
            try wav(samples(tone)).write(to: URL(fileURLWithPath: "\(folder)/\(tone.rawValue).wav"), options: .atomic)
        }
    }

    /// One cycle: frequencies on for `on` seconds, then silence for `off`.
    static func samples(_ tone: Tone) -> [Int16] {
        let (frequencies, on, off): ([Double], Double, Double) = switch tone {
        case .ringback: ([440, 480], 2, 4)
        case .busy: ([480, 620], 0.5, 0.5)
        case .beep: ([1_000], 0.5, 0)
        }
        let onSamples = Int(on * Double(sampleRate))
        let level = 8_000.0 / Double(frequencies.count)
        let sound = (0..<onSamples).map { index in
            Int16(frequencies.reduce(0) { $0 + level * sin(2 * .pi * $1 * Double(index) / Double(sampleRate)) })
        }
        return sound + Array(repeating: 0, count: Int(off * Double(sampleRate)))
    }

    /// A RIFF/WAVE file of 16-bit PCM mono samples.
    static func wav(_ samples: [Int16]) -> Data {
        var data = Data()
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) } }
        let bytes = UInt32(samples.count * 2)
        data.append(contentsOf: Array("RIFF".utf8)); append(36 + bytes)
        data.append(contentsOf: Array("WAVEfmt ".utf8)); append(UInt32(16)); append(UInt16(1)); append(UInt16(1))
        append(UInt32(sampleRate)); append(UInt32(sampleRate * 2)); append(UInt16(2)); append(UInt16(16))
        data.append(contentsOf: Array("data".utf8)); append(bytes)
        for sample in samples { append(sample) }
        return data
    }
}
