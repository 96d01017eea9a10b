import Foundation
import GRDB
import HTTPTypes
import HummingbirdTesting
import Testing
@testable import WebGateway

/// `GET /cdrs.csv` and `GET /stats` on a CDR file with the worker's rating columns (migration "v3").
@Suite struct StatsRoutesTests {
    /// Four calls in the hour from 20:00: two answered and rated on "dc" (c3: `owner`'s), one busy,
    /// one redirected without a rate; a caller name that a spreadsheet would run as a formula.
    static func makeRatedFile(owner: String) throws -> String {
        let path = try CDRRoutesTests.makeCDRFile(rows: 0)
        let database = try DatabaseQueue(path: path)
        try database.write { db in
            for column in ["ringing_at TEXT", "pdd_ms INTEGER", "rate_route TEXT", "rate_plan TEXT", "rate_per_minute_micros INTEGER",
                           "rate_increment TEXT", "billed_seconds INTEGER", "charge_micros INTEGER", "currency TEXT", "bill_to TEXT"] {
                try db.execute(sql: "ALTER TABLE cdrs ADD COLUMN \(column)")
            }
            try db.execute(sql: "CREATE TABLE rating_settings (id INTEGER PRIMARY KEY, currency TEXT NOT NULL)")
            try db.execute(sql: "INSERT INTO rating_settings VALUES (1, 'EUR')")
            let rows: [[(any DatabaseValueConvertible)?]] = [
                // call, caller, account, decided, outcome, status, ended, talk, pdd, route, billed, charge
                ["c1", "=HYPERLINK(\"http://x\",\"a, b\")", "alice", "2026-11-26T20:05:00.000Z", "bridged", 200, "2026-11-26T20:06:01.000Z",
                 61_000.0, 800, "dc", 120, 24_000],
                ["c2", "alice", "alice", "2026-11-26T20:10:00.000Z", "bridged", 486, "2026-11-26T20:10:03.000Z", 0.0, 1_200, "dc", 0, 0],
                ["c3", "carol", owner, "2026-11-26T20:40:00.000Z", "originated", 200, "2026-11-26T20:40:30.000Z", 29_000.0, nil, "dc", 60,
                 12_000],
                ["c4", "bob", "bob", "2026-11-26T20:50:00.000Z", "routed", 302, nil, nil, nil, nil, nil, nil],
            ]
            for row in rows {
                try db.execute(sql: """
                    INSERT INTO cdrs (bridge_id, call_id, caller, callee, auth_account, decided_at, outcome, sip_status, fallback, decision_ms,
                      ended_at, talk_ms, pdd_ms, rate_route, billed_seconds, charge_micros, rate_per_minute_micros, currency)
                    VALUES ('b', ?, ?, '5000', ?, ?, ?, ?, 0, 1, ?, ?, ?, ?, ?, ?, 12000, 'EUR')
                    """, arguments: StatementArguments(row))
            }
        }
        try database.close()
        return path
    }

    @Test func theCSVOfAPeriodIsQuotedAndFormulaSafe() async throws {
        let file = try Self.makeRatedFile(owner: "nobody")
        let fixture = try GatewayFixture { $0.cdrDatabase = file }
        let adminKey = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, admin: true))
        try await fixture.test { client async throws in
            let response = try await client.send(.get, "/api/v1/cdrs.csv?since=2026-11-26T20:00:00Z&until=2026-11-26T20:45:00Z",
                                                 key: adminKey.secret)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "text/csv; charset=utf-8; header=present")
            #expect(response.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"cdrs-2026-11-26T200000.000Z") == true)
            let lines = response.text.components(separatedBy: "\r\n")
            #expect(lines.count == 5 && lines[4].isEmpty)   // header, c1, c2, c3 (c4 is after until)
            #expect(lines[0].hasPrefix("decided_at,bridge_id,call_id,sip_call_id,caller,callee,auth_account,bill_to,outcome,"))
            #expect(lines[1].hasPrefix(#"2026-11-26T20:05:00.000Z,b,c1,,"'=HYPERLINK(""http://x"",""a, b"")",5000,alice,,bridged,200,"#))
            // The recording columns are empty: c1 was not recorded.
            #expect(lines[1].hasSuffix(",800,,61000,dc,,0.012000,,120,0.024000,EUR,,,"))
            let empty = try await client.send(.get, "/api/v1/cdrs.csv?since=2026-11-26T21:00:00Z&until=2026-11-26T20:00:00Z", key: adminKey.secret)
            #expect(empty.status == .ok && empty.text.hasPrefix("decided_at,") && empty.text.components(separatedBy: "\r\n").count == 2)
            let badTime = try await client.send(.get, "/api/v1/cdrs.csv?since=yesterday", key: adminKey.secret)
            #expect(badTime.invalidParamNames == ["since"])
        }
    }

    @Test func statisticsPerRouteAndInterval() async throws {
        let file = try Self.makeRatedFile(owner: "nobody")
        let fixture = try GatewayFixture { $0.cdrDatabase = file }
        let admin = try fixture.key(AccessPolicy(ratePerSecond: 100, burst: 100, admin: true))
        try await fixture.test { client async throws in
            let response = try await client.send(
                .get, "/api/v1/stats?since=2026-11-26T20:00:00Z&until=2026-11-26T21:00:00Z&interval=1800&by=route", key: admin.secret)
            #expect(response.status == .ok)
            let body = response.object
            #expect(body["currency"] as? String == "EUR" && body["interval_s"] as? Int == 1800)
            let total = try #require(body["total"] as? [String: Any])
            #expect(total["attempts"] as? Int == 4 && total["answered"] as? Int == 2 && total["redirected"] as? Int == 1)
            #expect(total["charge"] as? String == "0.036000")
            let keys = try #require(body["keys"] as? [[String: Any]])
            #expect(keys.map { $0["key"] as? String } == ["(unrated)", "dc"])
            let dc = keys[1]
            #expect(dc["asr"] as? Double == 2.0 / 3.0 && dc["acd_s"] as? Double == 45 && dc["pdd_ms"] as? Double == 1000)
            #expect(dc["billed_s"] as? Int == 180)
            let intervals = try #require(body["intervals"] as? [[String: Any]])
            #expect(intervals.map { $0["start"] as? String } == ["2026-11-26T20:00:00.000Z", "2026-11-26T20:30:00.000Z"])
            #expect(intervals.map { ($0["total"] as? [String: Any])?["attempts"] as? Int } == [2, 2])
            let year = try await client.send(.get, "/api/v1/stats?since=2026-01-01T00:00:00Z&until=2027-01-01T00:00:00Z&interval=60",
                                             key: admin.secret)
            #expect(year.object["interval_s"] as? Int == 15_768 && (year.object["intervals"] as? [Any])?.count == 2000)
            for bad in ["interval=59", "interval=x", "by=caller", "since=x"] {
                let refused = try await client.send(.get, "/api/v1/stats?\(bad)", key: admin.secret)
                #expect(refused.status == .badRequest, "\(bad)")
            }
        }
    }

    @Test func aKeySeesItsOwnCallsOnly() async throws {
        let fixture = try GatewayFixture { _ in }
        let user = try fixture.key()
        // A key's id is the account its calls carry: c3 is its own.
        let file = try Self.makeRatedFile(owner: user.id)
        var configured = fixture
        configured.configuration.cdrDatabase = file
        try await configured.test { client async throws in
            let csv = try await client.send(.get, "/api/v1/cdrs.csv?since=2026-11-26T20:00:00Z&until=2026-11-26T21:00:00Z", key: user.secret)
            let lines = csv.text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
            #expect(lines.count == 2 && lines[1].contains(",c3,"))
            let stats = try await client.send(.get, "/api/v1/stats?since=2026-11-26T20:00:00Z&until=2026-11-26T21:00:00Z&by=account",
                                              key: user.secret)
            #expect((stats.object["keys"] as? [[String: Any]])?.map { $0["key"] as? String } == [user.id])
        }
    }

    @Test func withoutACDRDatabaseIs503() async throws {
        let fixture = try GatewayFixture()
        let key = try fixture.key()
        try await fixture.test { client async throws in
            #expect(try await client.send(.get, "/api/v1/stats", key: key.secret).status == .serviceUnavailable)
            #expect(try await client.send(.get, "/api/v1/cdrs.csv", key: key.secret).status == .serviceUnavailable)
        }
    }
}
