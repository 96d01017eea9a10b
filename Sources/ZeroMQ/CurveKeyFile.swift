#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a key file could not be read or written.
public enum CurveKeyFileError: Error, Equatable, CustomStringConvertible {
    /// A system call failed (`open`, `read`, `write`, `rename`...), with its errno.
    case io(path: String, call: String, errno: Int32)
    /// The file exists and overwriting was not asked for.
    case alreadyExists(path: String)
    /// A line is not `# comment`, blank, `public-key = <z85>` or `secret-key = <z85>`.
    case malformed(path: String, line: Int, reason: String)
    /// A key on `line` is not a valid CURVE key.
    case invalidKey(path: String, line: Int, CurveKeyError)
    /// The file lacks a field it needs (`"public-key"` or `"secret-key"`).
    case missingKey(path: String, field: String)
    /// The file's public key is not the one its secret key derives.
    case mismatchedKeys(path: String)
    /// A secret key file that others may read or write (`mode & 0o077 != 0`); `chmod 600` it.
    case insecurePermissions(path: String, mode: UInt32)

    public var description: String {
        switch self {
        case .io(let path, let call, let code): "\(path): \(call) failed: \(String(cString: strerror(code))) (errno \(code))"
        case .alreadyExists(let path): "\(path) already exists"
        case .malformed(let path, let line, let reason): "\(path):\(line): \(reason)"
        case .invalidKey(let path, let line, let error): "\(path):\(line): \(error)"
        case .missingKey(let path, let field): "\(path): no \(field) line"
        case .mismatchedKeys(let path): "\(path): public-key does not belong to secret-key"
        case .insecurePermissions(let path, let mode):
            "\(path): secret key file has mode \(String(mode, radix: 8)); it must not be readable by group or others (chmod 600)"
        }
    }
}

/// The key file format: a few `field = value` lines, `#` comments allowed.
///
/// A secret key file (mode 0600) holds both halves; a public key file (`.pub`, shareable) only the first:
/// ```
/// # Switchboard CURVE key pair. Keep this file private.
/// public-key = rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7
/// secret-key = JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6
/// ```
///
/// ```swift
/// let pair = try CurveKeyPair.generate()
/// try CurveKeyFile.save(pair, to: "worker.key")
/// try CurveKeyFile.savePublic(pair.publicKey, to: "worker.key.pub")
/// let again = try CurveKeyFile.loadKeyPair(from: "worker.key")
/// let allowed = try CurveKeyFile.loadPublicKeys(directory: "/etc/switchboard/workers")
/// ```
public enum CurveKeyFile {
    /// Largest key file read, so a wrong path (a log, a device) fails fast instead of filling memory.
    static let maxFileSize = 64 * 1024

    /// Writes both halves of `pair` to `path` with mode 0600, atomically (a temporary file, then a link
    /// or rename). Refuses an existing file unless `overwrite`.
    public static func save(_ pair: CurveKeyPair, to path: String, overwrite: Bool = false) throws(CurveKeyFileError) {
        let text = """
            # Switchboard CURVE key pair. Keep this file private (mode 0600); share only the public key.
            public-key = \(pair.publicKey.z85)
            secret-key = \(pair.secretKey.z85)

            """
        try writeFile(text, to: path, mode: 0o600, overwrite: overwrite)
    }

    /// Writes the public key alone to `path` (mode 0644), for the peer's allow-list or configuration.
    public static func savePublic(_ key: CurvePublicKey, to path: String, overwrite: Bool = false) throws(CurveKeyFileError) {
        let text = """
            # Switchboard CURVE public key.
            public-key = \(key.z85)

            """
        try writeFile(text, to: path, mode: 0o644, overwrite: overwrite)
    }

    /// Reads a secret key file. The public half is derived when absent and checked when present.
    /// Unless `requirePrivate` is false, refuses a file that group or others may access.
    public static func loadKeyPair(from path: String, requirePrivate: Bool = true) throws(CurveKeyFileError) -> CurveKeyPair {
        let (text, mode) = try readFile(path)
        if requirePrivate, mode & 0o077 != 0 { throw .insecurePermissions(path: path, mode: mode & 0o7777) }
        let fields = try parse(text, path: path)
        guard let secret = fields.secretKey else { throw .missingKey(path: path, field: "secret-key") }
        let derived: CurveKeyPair
        do throws(CurveKeyError) {
            derived = try CurveKeyPair(secretKey: secret)
        } catch {
            throw .invalidKey(path: path, line: 0, error)
        }
        if let stated = fields.publicKey, stated != derived.publicKey { throw .mismatchedKeys(path: path) }
        return derived
    }

    /// Reads the public key from a public key file (or from a secret key file's `public-key` line).
    public static func loadPublicKey(from path: String) throws(CurveKeyFileError) -> CurvePublicKey {
        guard let key = try parse(readFile(path).text, path: path).publicKey else { throw .missingKey(path: path, field: "public-key") }
        return key
    }

    /// Reads every `*.pub` file in `directory`: an allow-list kept as one file per peer.
    public static func loadPublicKeys(directory: String) throws(CurveKeyFileError) -> Set<CurvePublicKey> {
        guard let dir = opendir(directory) else { throw .io(path: directory, call: "opendir", errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".pub"), !name.hasPrefix(".") { names.append(name) }
        }
        var keys = Set<CurvePublicKey>()
        for name in names.sorted() {
            keys.insert(try loadPublicKey(from: directory.hasSuffix("/") ? directory + name : directory + "/" + name))
        }
        return keys
    }

    /// Parses key file text. Unknown fields and repeated fields are errors, so a typo is never ignored.
    static func parse(_ text: String, path: String) throws(CurveKeyFileError) -> (publicKey: CurvePublicKey?, secretKey: CurveSecretKey?) {
        var publicKey: CurvePublicKey?
        var secretKey: CurveSecretKey?
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            let content = trimmed(rawLine)
            if content.isEmpty || content.hasPrefix("#") { continue }
            guard let equals = content.firstIndex(of: "=") else {
                throw .malformed(path: path, line: line, reason: "expected `field = value`")
            }
            let field = trimmed(content[..<equals])
            let value = trimmed(content[content.index(after: equals)...])
            switch field {
            case "public-key":
                guard publicKey == nil else { throw .malformed(path: path, line: line, reason: "public-key given twice") }
                do throws(CurveKeyError) { publicKey = try CurvePublicKey(z85: value) } catch { throw .invalidKey(path: path, line: line, error) }
            case "secret-key":
                guard secretKey == nil else { throw .malformed(path: path, line: line, reason: "secret-key given twice") }
                do throws(CurveKeyError) { secretKey = try CurveSecretKey(z85: value) } catch { throw .invalidKey(path: path, line: line, error) }
            default:
                throw .malformed(path: path, line: line, reason: "unknown field \(field.debugDescription)")
            }
        }
        return (publicKey, secretKey)
    }

    private static func trimmed(_ text: Substring) -> String {
        String(text.drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }

    private static func readFile(_ path: String) throws(CurveKeyFileError) -> (text: String, mode: UInt32) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, call: "open", errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(path: path, call: "fstat", errno: errno) }
        guard info.st_mode & S_IFMT == S_IFREG else { throw .malformed(path: path, line: 0, reason: "not a regular file") }
        guard info.st_size <= maxFileSize else { throw .malformed(path: path, line: 0, reason: "larger than \(maxFileSize) bytes") }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .io(path: path, call: "read", errno: errno)
            }
            if count == 0 { break }
            bytes += buffer[..<count]
            if bytes.count > maxFileSize { throw .malformed(path: path, line: 0, reason: "larger than \(maxFileSize) bytes") }
        }
        return (String(decoding: bytes, as: UTF8.self), UInt32(info.st_mode))
    }

    private static func writeFile(_ text: String, to path: String, mode: mode_t, overwrite: Bool) throws(CurveKeyFileError) {
        // Write a private temporary file next to the target, then publish it in one step, so a reader
        // never sees half a key and a secret is never briefly readable by others.
        let temporary = path + ".tmp-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(path: temporary, call: "open", errno: errno) }
        var published = false
        defer { if !published { unlink(temporary) } }
        do throws(CurveKeyFileError) {
            defer { close(fd) }
            // Set the mode explicitly: the umask may have narrowed it at creation.
            guard fchmod(fd, mode) == 0 else { throw CurveKeyFileError.io(path: temporary, call: "fchmod", errno: errno) }
            let bytes = Array(text.utf8)
            var written = 0
            while written < bytes.count {
                let count = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                if count < 0 {
                    if errno == EINTR { continue }
                    throw CurveKeyFileError.io(path: temporary, call: "write", errno: errno)
                }
                written += count
            }
            guard fsync(fd) == 0 else { throw CurveKeyFileError.io(path: temporary, call: "fsync", errno: errno) }
        } catch {
            throw error
        }
        if overwrite {
            guard rename(temporary, path) == 0 else { throw .io(path: path, call: "rename", errno: errno) }
            published = true
        } else {
            // link(2) fails with EEXIST instead of replacing: no check-then-write race.
            guard link(temporary, path) == 0 else {
                if errno == EEXIST { throw .alreadyExists(path: path) }
                throw .io(path: path, call: "link", errno: errno)
            }
        }
    }
}
