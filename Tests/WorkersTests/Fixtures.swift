import BusSchema
import Foundation
@testable import Workers

/// An INVITE offer to `user` (the Request-URI user) from `caller`, as the bridge would publish it.
func offer(to user: String?, from caller: String? = "2125550199", authUser: String? = nil) -> CallOffer {
    let host = "switchboard.example.com"
    let requestUri = user.map { "sip:\($0)@\(host)" } ?? "sip:\(host)"
    return CallOffer(
        sipCallId: "a84b4c76e66710@pc33.example.com",
        requestUri: Address(uri: requestUri, user: user, host: host),
        from: Address(uri: "sip:\(caller ?? "")@example.com", user: caller, host: "example.com"),
        to: Address(uri: requestUri, user: user, host: host),
        source: Source(address: "192.0.2.10", port: 5060, transport: "udp", peer: "127.0.0.1"),
        authUser: authUser,
        headers: [:],
        sdp: nil
    )
}

/// A fresh database path in the temporary directory; the file does not exist yet.
func temporaryDatabasePath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("workers-tests-\(UUID().uuidString).sqlite").path
}
