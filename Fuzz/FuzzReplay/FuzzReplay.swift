import Foundation

/// The `main` of a fuzz target in a normal build: runs `body` once on each file named on the command line.
/// `swift run fuzz-sip-parser crash-…` reproduces a libFuzzer finding without the fuzzer runtime, under a
/// debugger or in CI.
public func replay(_ body: (UnsafePointer<UInt8>, Int) -> CInt) {
    let paths = CommandLine.arguments.dropFirst()
    guard !paths.isEmpty else {
        print("usage: \(CommandLine.arguments[0]) FILE... (build with scripts/fuzz to fuzz)")
        exit(2)
    }
    for path in paths {
        guard let data = FileManager.default.contents(atPath: path) else {
            print("cannot read \(path)")
            exit(2)
        }
        // A zero-length input still needs a valid pointer, as libFuzzer gives one.
        let bytes = Array(data) + [0]
        _ = bytes.withUnsafeBufferPointer { body($0.baseAddress!, data.count) }
        print("ran \(path) (\(data.count) bytes)")
    }
}
