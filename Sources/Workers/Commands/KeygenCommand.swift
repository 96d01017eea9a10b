import ArgumentParser
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ZeroMQ

/// `switchboard-worker keygen`: a CURVE key pair for a worker (or a bridge) on an encrypted bus.
///
/// ```sh
/// switchboard-worker keygen --out /etc/switchboard/worker.key
/// # writes worker.key (both keys, mode 0600) and worker.key.pub (public key only),
/// # prints the public key: add it to the bridge's allow-list.
/// ```
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Generate a CURVE key pair for the bus.",
        discussion: """
        Writes PATH (public and secret key, mode 0600) and PATH.pub (public key only, safe to share) and \
        prints the public key. The bridge admits a worker whose public key is in its allow-list.
        """
    )

    @Option(name: .customLong("out"), help: "Where to write the secret key file; the public key goes to PATH.pub.")
    var path: String
    @Flag(help: "Replace existing key files.")
    var force = false

    func validate() throws {
        if path.isEmpty { throw ValidationError("--out needs a path") }
        if path.hasSuffix(".pub") { throw ValidationError("--out names the secret key file; the .pub file is written next to it") }
    }

    func run() throws { print(try execute()) }

    /// Does the work and returns what `run` prints (the public key), so tests can check it.
    func execute() throws -> String {
        guard zmqHasCurve else { throw KeygenError("this libzmq was built without CURVE support") }
        let pair = try CurveKeyPair.generate()
        let publicPath = path + ".pub"
        if !force {
            // Refuse before writing either file, so a refusal never leaves a half-made pair behind.
            for existing in [path, publicPath] where access(existing, F_OK) == 0 {
                throw KeygenError("\(existing) already exists (use --force to replace it)")
            }
        }
        try CurveKeyFile.save(pair, to: path, overwrite: force)
        try CurveKeyFile.savePublic(pair.publicKey, to: publicPath, overwrite: force)
        return pair.publicKey.z85
    }
}

/// A refusal worth one line on stderr, without the usage text a ``ValidationError`` brings.
struct KeygenError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
