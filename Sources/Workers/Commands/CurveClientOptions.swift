import ArgumentParser
import WorkerSDK
import ZeroMQ

/// `--curve-key` / `--bridge-key`, shared by every command that connects to a bridge's bus.
///
/// ```sh
/// switchboard-worker router --curve-key keys/router.key --bridge-key keys/bridge.key.pub ...
/// ```
struct CurveClientOptions: ParsableArguments {
    @Option(help: "This worker's CURVE key pair file (keygen), when the bridge requires CURVE.")
    var curveKey: String?
    @Option(help: "With --curve-key: the bridge's public key file (the bridge's keygen .pub).")
    var bridgeKey: String?

    func validate() throws {
        if (curveKey == nil) != (bridgeKey == nil) { throw ValidationError("--curve-key and --bridge-key go together") }
    }

    /// The client settings, or nil when CURVE was not asked for; key files are read here.
    func load() throws -> WorkerConfiguration.Curve? {
        guard let curveKey, let bridgeKey else { return nil }
        return .init(keyPair: try CurveKeyFile.loadKeyPair(from: curveKey), bridgeKey: try CurveKeyFile.loadPublicKey(from: bridgeKey))
    }
}
