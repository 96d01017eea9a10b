import BusSchema

/// What one run of `switchboard-exec` was asked: its flags, and the INVITE as the exec module hands it over
/// (the Request-URI as the last argument, headers in `SIP_HF_*` environment variables).
struct ExecRequest: Equatable {
    /// A usage error: the message goes to stderr, nothing to stdout, exit 64 (`EX_USAGE`).
    struct UsageError: Error, Equatable {
        let message: String
    }

    var bridges: [String] = []
    /// The whole budget from start to printed answer; past it the fallback is printed.
    var timeoutMs = 1_000
    var fallback: Decision = .reject(status: 503, reason: "Service Unavailable", headers: ["Retry-After": "30"])
    /// CURVE: this client's secret key file and the bridge's public key file, both or neither.
    var curveKeyFile: String?
    var bridgeKeyFile: String?
    var offer: HandoffOffer

    static let usage = """
        usage: switchboard-exec --bridge tcp://HOST:PORT [--bridge ...] [--timeout-ms 1000]
                                [--fallback reject:503[:REASON] | --fallback redirect:URI]
                                [--curve-key FILE --bridge-key FILE] [--auth-user USER] [--source IP:PORT;transport=udp]
                                REQUEST-URI
        The exec module's exec_dset runs it: the Request-URI comes as the last argument, From, To and Call-ID
        in SIP_HF_FROM, SIP_HF_TO, SIP_HF_CALLID. Prints the new Request-URI and further branches, one a line,
        or sip:STATUS@reject.invalid;reason=REASON for a reject; exit 0. Exit 64: bad flags or environment.
        """

    /// Reads `arguments` (without the program name) and the exec module's environment.
    static func parse(_ arguments: [String], environment: (String) -> String?) throws(UsageError) -> ExecRequest {
        var bridges: [String] = []
        var timeoutMs = 1_000
        var fallback: Decision?
        var curveKeyFile: String?
        var bridgeKeyFile: String?
        var authUser: String?
        var source: String?
        var positional: [String] = []
        var index = 0
        func value(_ flag: String) throws(UsageError) -> String {
            index += 1
            guard index < arguments.count else { throw UsageError(message: "\(flag) needs a value") }
            return arguments[index]
        }
        while index < arguments.count {
            let argument = arguments[index]
            switch argument {
            case "--bridge": bridges.append(try value(argument))
            case "--timeout-ms":
                let text = try value(argument)
                guard let milliseconds = Int(text), (10...60_000).contains(milliseconds) else {
                    throw UsageError(message: "--timeout-ms \(text.debugDescription) is not a number of milliseconds in 10...60000")
                }
                timeoutMs = milliseconds
            case "--fallback": fallback = try parseFallback(try value(argument))
            case "--curve-key": curveKeyFile = try value(argument)
            case "--bridge-key": bridgeKeyFile = try value(argument)
            // An empty value is how a cfg says "none" without an `if` around the whole command line.
            case "--auth-user": authUser = try value(argument).nonEmpty
            case "--source": source = try value(argument).nonEmpty
            case "-h", "--help": throw UsageError(message: usage)
            default:
                if argument.hasPrefix("--") { throw UsageError(message: "unknown flag \(argument)\n\(usage)") }
                positional.append(argument)
            }
            index += 1
        }
        guard !bridges.isEmpty else { throw UsageError(message: "--bridge is required\n\(usage)") }
        guard (curveKeyFile == nil) == (bridgeKeyFile == nil) else {
            throw UsageError(message: "--curve-key and --bridge-key go together")
        }
        guard positional.count <= 1 else { throw UsageError(message: "one Request-URI expected, got \(positional.count) arguments") }
        guard let requestUri = positional.first ?? environment("SIP_RURI"), !requestUri.isEmpty else {
            throw UsageError(message: "no Request-URI: exec_dset passes it as the last argument (or set SIP_RURI)")
        }
        func header(_ name: String) throws(UsageError) -> String {
            guard let text = environment("SIP_HF_\(name)"), !text.isEmpty else {
                throw UsageError(message: "SIP_HF_\(name) is not set: run from exec_dset with the exec module's setvars on")
            }
            return text
        }
        let offer = HandoffOffer(requestUri: requestUri, from: try header("FROM"), to: try header("TO"), sipCallId: try header("CALLID"),
                                 source: source, authUser: authUser)
        var request = ExecRequest(offer: offer)
        request.bridges = bridges
        request.timeoutMs = timeoutMs
        request.fallback = fallback ?? request.fallback
        request.curveKeyFile = curveKeyFile
        request.bridgeKeyFile = bridgeKeyFile
        return request
    }

    /// `reject:503`, `reject:486:Busy Here` or `redirect:sip:voicemail@example.com`.
    static func parseFallback(_ text: String) throws(UsageError) -> Decision {
        if text.hasPrefix("redirect:") {
            let uri = String(text.dropFirst("redirect:".count))
            let decision = Decision.redirect([Target(uri: uri)])
            if let problem = decision.problem { throw UsageError(message: "--fallback: \(problem)") }
            return decision
        }
        let parts = text.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0] == "reject", let status = Int(parts[1]) else {
            throw UsageError(message: "--fallback \(text.debugDescription) is not reject:STATUS[:REASON] or redirect:URI")
        }
        let decision = Decision.reject(status: status, reason: parts.count == 3 ? String(parts[2]) : nil)
        if let problem = decision.problem { throw UsageError(message: "--fallback: \(problem)") }
        return decision
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
