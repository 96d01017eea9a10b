import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import WebGateway

/// `GET /recordings` and `GET /recordings/{call_id}` on a CDR file with the worker's recording columns (migration "v4"),
/// and a recordings folder with a file in it, a link out of it and a file beside it.
@Suite struct RecordingRoutesTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("recordings-test-\(UUID().uuidString)")
    var folder: URL { directory.appendingPathComponent("recordings") }
    var cdrs: String { directory.appendingPathComponent("cdr.sqlite").path }
    let pcap = Data([0xD4, 0xC3, 0xB2, 0xA1, 0x02, 0x00, 0x04, 0x00] + Array(repeating: 0x55, count: 300))

    /// Five recorded calls of `owner` (c1 the good one, stopped by the call's end: its size unknown; c3 a link out of the folder, c4 a `..` out of it, c5 a file
    /// that is gone), one of `other` (c2) and one call without a recording (c6).
    func makeFiles(owner: String, other: String) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try pcap.write(to: folder.appendingPathComponent("c1.pcap"))
        try pcap.write(to: folder.appendingPathComponent("c2.pcap"))
        let outside = directory.appendingPathComponent("outside.pcap")
        try Data("secret".utf8).write(to: outside)
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("c3.pcap").path, withDestinationPath: outside.path)
        let database = try DatabaseQueue(path: cdrs)
        try database.write { db in
            try db.execute(sql: """
                CREATE TABLE cdrs (id INTEGER PRIMARY KEY AUTOINCREMENT, bridge_id TEXT NOT NULL, call_id TEXT NOT NULL,
                  caller TEXT, callee TEXT, auth_account TEXT, offered_at TEXT, decided_at TEXT NOT NULL, outcome TEXT NOT NULL,
                  sip_status INTEGER NOT NULL, recording_path TEXT, recording_ms INTEGER, recording_bytes INTEGER)
                """)
            let rows: [[(any DatabaseValueConvertible)?]] = [
                ["c1", owner, folder.appendingPathComponent("c1.pcap").path, "2026-12-04T20:01:00.000Z"],
                ["c2", other, folder.appendingPathComponent("c2.pcap").path, "2026-12-04T20:02:00.000Z"],
                ["c3", owner, folder.appendingPathComponent("c3.pcap").path, "2026-12-04T20:03:00.000Z"],
                ["c4", owner, folder.appendingPathComponent("../outside.pcap").path, "2026-12-04T20:04:00.000Z"],
                ["c5", owner, folder.appendingPathComponent("c5.pcap").path, "2026-12-04T20:05:00.000Z"],
                ["c6", owner, nil, "2026-12-04T20:06:00.000Z"],
            ]
            for row in rows {
                try db.execute(sql: """
                    INSERT INTO cdrs (bridge_id, call_id, caller, callee, auth_account, offered_at, decided_at, outcome, sip_status,
                      recording_path, recording_ms, recording_bytes)
                    VALUES ('b1', ?, 'alice', 'bob', ?, ?, ?, 'bridged', 200, ?, 10020, ?)
                    """, arguments: [row[0], row[1], row[3], row[3], row[2], row[0] as? String == "c1" ? nil : 999])
            }
        }
        try database.close()
    }

    @Test func eachAccountListsAndDownloadsItsOwnRecordings() async throws {
        let fixture = try GatewayFixture { [cdrs, folder] in
            $0.cdrDatabase = cdrs
            $0.recordingsDirectory = folder.path
        }
        let owner = try fixture.key()
        let other = try fixture.key()
        let admin = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, admin: true))
        try makeFiles(owner: owner.id, other: other.id)
        try await fixture.test { [pcap] client async throws in
            let mine = try await client.send(.get, "/api/v1/recordings", key: owner.secret)
            #expect(mine.status == .ok)
            #expect(mine.object["total"] as? Int == 4)
            let listed = try #require(mine.object["recordings"] as? [[String: Any]])
            #expect(listed.map { $0["call_id"] as? String } == ["c5", "c4", "c3", "c1"])
            let first = try #require(listed.last)
            // c1's size is the file's (308 bytes); the others' is their CDR's.
            #expect(first["url"] as? String == "/api/v1/recordings/c1" && first["duration_ms"] as? Int == 10020 && first["bytes"] as? Int == 308)
            #expect(listed.first?["bytes"] as? Int == 999)
            #expect(first["started_at"] as? String == "2026-12-04T20:01:00.000Z" && first["path"] == nil)
            let all = try await client.send(.get, "/api/v1/recordings?per_page=2&page=3", key: admin.secret)
            #expect(all.object["total"] as? Int == 5)
            #expect((all.object["recordings"] as? [[String: Any]])?.map { $0["call_id"] as? String } == ["c1"])
            #expect(try await client.send(.get, "/api/v1/recordings?per_page=0", key: owner.secret).invalidParamNames == ["per_page"])

            let file = try await client.send(.get, "/api/v1/recordings/c1", key: owner.secret)
            #expect(file.status == .ok)
            #expect(file.headers[.contentType] == "application/vnd.tcpdump.pcap")
            #expect(file.headers[.contentDisposition] == #"attachment; filename="c1.pcap""#)
            #expect(Data(file.body.readableBytesView) == pcap)
            #expect(try await client.send(.get, "/api/v1/recordings/c2", key: admin.secret).status == .ok)
            // Another account's, one without a recording, an unknown call: the same 404.
            for id in ["c2", "c6", "c9"] {
                let response = try await client.send(.get, "/api/v1/recordings/\(id)", key: owner.secret)
                #expect(response.status == .notFound && response.object["detail"] as? String == "no recording of call \(id)", "\(id)")
            }
            // A link out of the folder, a path that climbs out of it, a file that is gone: nothing is served.
            for id in ["c3", "c4", "c5"] {
                let response = try await client.send(.get, "/api/v1/recordings/\(id)", key: admin.secret)
                #expect(response.status == .notFound, "\(id)")
                #expect(response.object["detail"] as? String == "the recording of call \(id) is not available", "\(id)")
                #expect(!response.text.contains("secret"))
            }
        }
    }

    @Test func withoutARecordingsFolderNothingIsServed() async throws {
        let fixture = try GatewayFixture { [cdrs] in $0.cdrDatabase = cdrs }
        let owner = try fixture.key()
        try makeFiles(owner: owner.id, other: "x")
        try await fixture.test { client async throws in
            #expect(try await client.send(.get, "/api/v1/recordings", key: owner.secret).object["total"] as? Int == 4)
            let response = try await client.send(.get, "/api/v1/recordings/c1", key: owner.secret)
            #expect(response.status == .notFound)
            #expect((response.object["detail"] as? String)?.hasPrefix("recordings are not served") == true)
        }
    }

    @Test func aFileBeforeTheRecordingColumnsListsNoneAndNoFileIs503() async throws {
        let old = try CDRRoutesTests.makeCDRFile(rows: 3)
        let fixture = try GatewayFixture { [folder] in
            $0.cdrDatabase = old
            $0.recordingsDirectory = folder.path
        }
        let admin = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, admin: true))
        try await fixture.test { client async throws in
            let listed = try await client.send(.get, "/api/v1/recordings", key: admin.secret)
            #expect(listed.status == .ok && listed.object["total"] as? Int == 0)
            #expect(try await client.send(.get, "/api/v1/recordings/c1", key: admin.secret).status == .notFound)
        }
        let none = try GatewayFixture()
        let key = try none.key()
        try await none.test { client async throws in
            #expect(try await client.send(.get, "/api/v1/recordings", key: key.secret).status == .serviceUnavailable)
        }
    }

    @Test func servableResolvesLinksAndDotDots() throws {
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("pcaps"), withIntermediateDirectories: true)
        let inside = folder.appendingPathComponent("pcaps/a.pcap")
        try pcap.write(to: inside)
        // The folder itself named through a link: the file is inside its real path.
        let link = directory.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: folder.path)
        #expect(RecordingRoutes.servable(inside.path, in: link.path) != nil)
        #expect(RecordingRoutes.servable(link.appendingPathComponent("pcaps/a.pcap").path, in: folder.path) != nil)
        #expect(RecordingRoutes.servable(folder.appendingPathComponent("pcaps/../pcaps/a.pcap").path, in: folder.path) != nil)
        // A sibling whose name starts with the folder's is not inside it.
        let sibling = URL(fileURLWithPath: folder.path + "-other")
        try FileManager.default.createDirectory(at: sibling, withIntermediateDirectories: true)
        try pcap.write(to: sibling.appendingPathComponent("a.pcap"))
        #expect(RecordingRoutes.servable(sibling.appendingPathComponent("a.pcap").path, in: folder.path) == nil)
        // A folder is not a file.
        #expect(RecordingRoutes.servable(folder.appendingPathComponent("pcaps").path, in: folder.path) == nil)
    }
}
