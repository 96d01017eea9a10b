/// What is home and what may be reached: the configuration half of a ``DestinationPolicy``, shared by
/// every account. The defaults are the safe ones: the US and Canada are home, everything else that
/// costs money is denied, and only the demo's SIP domain and loopback are hosts.
///
/// ```swift
/// var rules = DestinationRules()
/// rules.sipDomains = ["pbx.example.com"]
/// rules.trunkHosts = ["sbc1.carrier.example:5060"]
/// rules.homeAreaCodes = .only(["212", "646", "917"])
/// ```
public struct DestinationRules: Equatable, Sendable {
    /// Which +1 area codes are domestic when the home country code is `1`.
    public enum HomeAreaCodes: Equatable, Sendable {
        /// Every NANP area code of the United States and Canada (all but ``NumberingPlan/nanpForeignAreaCodes``).
        case unitedStatesAndCanada
        /// These area codes only.
        case only(Set<String>)

        /// Reads `["US+CA"]` or a list of three-digit area codes; nil when neither.
        public init?(_ values: [String]) {
            if values == ["US+CA"] {
                self = .unitedStatesAndCanada
            } else if !values.isEmpty, values.allSatisfy({ $0.count == 3 && $0.allSatisfy { $0.isASCII && $0.isNumber } }) {
                self = .only(Set(values))
            } else {
                return nil
            }
        }

        /// The spelling ``init(_:)`` reads back.
        public var values: [String] {
            switch self {
            case .unitedStatesAndCanada: ["US+CA"]
            case .only(let codes): codes.sorted()
            }
        }
    }

    /// The home country calling code without `+` (`1` for NANP, `49` for Germany).
    public var homeCountryCode = "1"
    public var homeAreaCodes = HomeAreaCodes.unitedStatesAndCanada
    /// Dialled prefixes that mean "international", rewritten to `+` (longest first).
    public var internationalPrefixes = ["011", "00"]
    /// The national trunk prefix outside NANP (`0` in most of Europe): `0` + national number becomes
    /// `+CC` + national number. NANP's `1` is handled by the 10/11-digit rule instead.
    public var nationalPrefix = "0"
    /// Digit strings that are no E.164 number are short numbers (extensions, service codes) up to this length.
    public var maxShortNumberDigits = 6
    /// More prefixes denied as `premium_rate` (``DialPattern`` syntax, on the E.164 or short form).
    public var extraDeniedPrefixes: [String] = []
    /// The SIP domains destinations may be addressed at (`sip:alice@DOMAIN`), lower-cased.
    public var sipDomains = ["switchboard.local"]
    /// Further hosts a destination may name: trunks, gateways, and internal hosts workers route to.
    /// `host` allows every port, `host:port` that port only; IPv6 in brackets (`[::1]:5060`).
    public var trunkHosts = ["127.0.0.1"]

    public init() {}

    /// Whether a URI's host (and port) is a SIP domain or a trunk.
    func allows(host: String, port: UInt16?, defaultPort: UInt16) -> Bool {
        let host = host.lowercased()
        return (sipDomains + trunkHosts).contains { entry in
            let (entryHost, entryPort) = Self.split(entry.lowercased())
            return entryHost == host && (entryPort == nil || entryPort == (port ?? defaultPort))
        }
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    static func split(_ entry: String) -> (String, UInt16?) {
        let portStart: String.Index?
        if entry.hasPrefix("[") {
            portStart = entry.firstIndex(of: "]").flatMap { close in
                entry[entry.index(after: close)...].hasPrefix(":") ? entry.index(close, offsetBy: 2) : nil
            }
        } else {
            portStart = entry.firstIndex(of: ":").map { entry.index(after: $0) }
        }
        guard let portStart, let port = UInt16(entry[portStart...]) else { return (entry, nil) }
        return (String(entry[..<entry.index(portStart, offsetBy: -1)]), port)
    }

    /// A problem with a host entry, for the configuration readers; nil when usable.
    public static func hostProblem(_ entry: String) -> String? {
        let (host, _) = split(entry)
        let ok = !host.isEmpty && host.count <= 253 && (host.hasPrefix("[") && host.hasSuffix("]")
            || host.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) })
        return ok ? nil : "\"\(entry)\" is not a host, host:port or [IPv6]:port"
    }
}
