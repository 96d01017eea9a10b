import Billing
import BusSchema
import Foundation
import GRDB
import SQLiteStore

/// One call detail record: what happened to one call a bridge offered, or a click-to-call it originated.
///
/// Redirected and rejected calls are complete with their outcome. Bridged and originated calls go on:
/// `answered_at`, `setup_ms` and a `sip_status` of 200 come with `call.connected`, and `ended_at`,
/// `talk_ms` and `end_cause` with `call.ended`.
struct CDR: Codable, Equatable, Sendable {
    enum CodingKeys: String, CodingKey {
        case id, bridgeId = "bridge_id", callId = "call_id", sipCallId = "sip_call_id", caller, callee
        case authAccount = "auth_account", offeredAt = "offered_at", decidedAt = "decided_at", outcome
        case sipStatus = "sip_status", reason, route, workerId = "worker_id", fallback, fallbackCause = "fallback_cause"
        case decisionMs = "decision_ms", answeredAt = "answered_at", endedAt = "ended_at", setupMs = "setup_ms"
        case talkMs = "talk_ms", endCause = "end_cause", ringingAt = "ringing_at", pddMs = "pdd_ms", rateRoute = "rate_route"
        case ratePlan = "rate_plan", ratePerMinuteMicros = "rate_per_minute_micros", rateIncrement = "rate_increment"
        case billedSeconds = "billed_seconds", chargeMicros = "charge_micros", currency, billTo = "bill_to"
        case recordingPath = "recording_path", recordingMs = "recording_ms", recordingBytes = "recording_bytes"
    }

    var id: Int64?
    var bridgeId: String
    /// The bridge's call id (unique with `bridgeId`).
    var callId: String
    /// Leg A's SIP Call-ID; nil when the offer was never seen (lost to journal retention).
    var sipCallId: String?
    /// The authenticated user, else the From user; party A's URI for an originated call.
    var caller: String?
    /// The Request-URI user; party B's URI for an originated call.
    var callee: String?
    /// The authenticated user; the command's account for an originated call.
    var authAccount: String?
    /// ISO 8601 UTC with milliseconds, as on the bus. For an originated call, when the command was accepted.
    var offeredAt: String?
    var decidedAt: String
    /// `routed` (redirected), `bridged` (also a call the bridge answered itself, for an IVR), `rejected` or `originated`.
    var outcome: String
    /// 302 for redirected calls, the reject status for rejected ones. Bridged and originated calls:
    /// 200 once connected, else the failure status `call.ended` names; 0 until then, or without one.
    var sipStatus: Int
    var reason: String?
    /// The redirect targets, JSON `[{"uri":..,"q":..}]`; nil for rejected calls.
    var route: String?
    var workerId: String?
    var fallback: Bool
    var fallbackCause: String?
    var decisionMs: Double
    /// When both legs were joined (`call.connected`); or when leg B answered, if the call never got that far.
    var answeredAt: String?
    var endedAt: String?
    /// From the offer (or the originate) to `call.connected`, milliseconds.
    var setupMs: Double?
    /// From `call.connected` to the end, milliseconds, as the bridge measured it; 0 if never connected.
    var talkMs: Double?
    /// `call.ended`'s cause, such as `normal_clearing` or `busy`.
    var endCause: String?
    /// The first `call.ringing` (180/183) of any leg.
    var ringingAt: String?
    /// Post-dial delay: from the offer (or the originate) to `ringingAt`, milliseconds.
    var pddMs: Int64?
    /// The rated route (``Rate/route``) the callee matched; nil when no rate matched.
    var rateRoute: String? = nil
    /// The account whose plan priced the call, or `default`.
    var ratePlan: String? = nil
    var ratePerMinuteMicros: Int64? = nil
    /// `FIRST/NEXT` seconds, such as `60/60`.
    var rateIncrement: String? = nil
    /// Talk time as billed (rounded up to the increments); nil until the call is over, and for a
    /// redirected call, whose talk time the bridge never sees.
    var billedSeconds: Int64? = nil
    /// The charge in millionths of `currency`; 0 for a call that never connected; nil when unrated.
    var chargeMicros: Int64? = nil
    /// ISO 4217 code of `chargeMicros` and `ratePerMinuteMicros` (`rates currency`).
    var currency: String? = nil
    /// The account the caller's account bills to (provisioning's `billing_account`, which Kamailio adds as
    /// `X-Switchboard-Billing-Account`); when set, its plan prices the call and it is the call's account in totals.
    var billTo: String? = nil
    /// The call's recording (`call.media.recorded`): the file on the media host, its length and size. A call recorded
    /// more than once keeps its last recording here; the earlier files stay in the bridge's recordings folder and
    /// their events in its journal.
    var recordingPath: String? = nil
    var recordingMs: Int64? = nil
    var recordingBytes: Int64? = nil

    /// Who pays: the bill-to account, else the authenticated account.
    var payingAccount: String? { billTo ?? authAccount }
}

extension CDR: FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "cdrs"

    mutating func didInsert(_ inserted: InsertionSuccess) {
        id = inserted.rowID
    }
}

/// An offer whose outcome has not arrived yet, kept on disk so a restart between the two loses nothing.
private struct PendingOffer: Codable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "pending_offers"
    enum CodingKeys: String, CodingKey {
        case bridgeId = "bridge_id", callId = "call_id", sipCallId = "sip_call_id", caller, callee
        case authAccount = "auth_account", offeredAt = "offered_at", billTo = "bill_to"
    }

    var bridgeId: String
    var callId: String
    var sipCallId: String
    var caller: String?
    var callee: String?
    var authAccount: String?
    var offeredAt: String
    var billTo: String?
}

/// What ``CDRStore/apply(_:)`` did with an event.
enum CDRApplyResult: Equatable {
    /// The event was at or below the stored cursor: already applied once.
    case alreadyApplied
    /// An offer, kept until its outcome.
    case pending
    /// A CDR was written.
    case recorded
    /// A bridged or originated call's CDR got its answer or end.
    case updated
    /// Nothing to record for this event type; only the cursor moved.
    case ignored
}

/// CDRs and the subscription cursor in one SQLite file (WAL). Each event's changes and the cursor move
/// in one transaction, so an event is applied exactly once however often it is delivered.
///
/// ```swift
/// let store = try CDRStore(path: "cdr.sqlite")
/// let resume = try store.cursor(bridgeId: nil)     // the only bridge's last_seq, if any
/// try store.apply(event)
/// let latest = try store.cdrs(limit: 20)
/// ```
struct CDRStore: Sendable {
    let path: String
    let database: DatabaseQueue

    /// Opens (creating and migrating) the database at `path`.
    init(path: String) throws {
        database = try DatabaseQueue.openMigrated(path: path, migrator: Self.migrator)
        self.path = path
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: cdrs, pending offers, cursors") { db in
            try createCDRTable("cdrs", outcomes: ["routed", "rejected"], db)
            try db.create(index: "cdrs_decided_at", on: "cdrs", columns: ["decided_at"])
            try db.create(table: "pending_offers") { table in
                table.column("bridge_id", .text).notNull()
                table.column("call_id", .text).notNull()
                table.column("sip_call_id", .text).notNull()
                table.column("caller", .text)
                table.column("callee", .text)
                table.column("auth_account", .text)
                table.column("offered_at", .text).notNull()
                table.primaryKey(["bridge_id", "call_id"])
            }
            try db.create(table: "cursors") { table in
                table.column("bridge_id", .text).notNull().primaryKey()
                table.column("last_seq", .integer).notNull()
            }
        }
        // SQLite cannot change a CHECK constraint in place: the table is rebuilt with the wider one.
        migrator.registerMigration("v2: bridged and originated calls") { db in
            try createCDRTable("cdrs_v2", outcomes: ["routed", "bridged", "rejected", "originated"], db)
            try db.execute(sql: "INSERT INTO cdrs_v2 SELECT * FROM cdrs")
            try db.drop(table: "cdrs")
            try db.rename(table: "cdrs_v2", to: "cdrs")
            try db.create(index: "cdrs_decided_at", on: "cdrs", columns: ["decided_at"])
        }
        // Additive only: the gateway's CDRReader reads this file, and old rows keep NULLs (unrated).
        migrator.registerMigration("v3: rating and post-dial delay") { db in
            try db.alter(table: "cdrs") { table in
                table.add(column: "ringing_at", .text)
                table.add(column: "pdd_ms", .integer)
                table.add(column: "rate_route", .text)
                table.add(column: "rate_plan", .text)
                table.add(column: "rate_per_minute_micros", .integer)
                table.add(column: "rate_increment", .text)
                table.add(column: "billed_seconds", .integer)
                table.add(column: "charge_micros", .integer)
                table.add(column: "currency", .text)
                table.add(column: "bill_to", .text)
            }
            try db.alter(table: "pending_offers") { table in table.add(column: "bill_to", .text) }
            try Rate.createTables(db)
        }
        // Additive as v3, for the same reader; only anchored calls that were recorded have them.
        migrator.registerMigration("v4: recordings") { db in
            try db.alter(table: "cdrs") { table in
                table.add(column: "recording_path", .text)
                table.add(column: "recording_ms", .integer)
                table.add(column: "recording_bytes", .integer)
            }
        }
        return migrator
    }

    private static func createCDRTable(_ name: String, outcomes: [String], _ db: Database) throws {
        try db.create(table: name) { table in
            table.autoIncrementedPrimaryKey("id")
            table.column("bridge_id", .text).notNull()
            table.column("call_id", .text).notNull()
            table.column("sip_call_id", .text)
            table.column("caller", .text)
            table.column("callee", .text)
            table.column("auth_account", .text)
            table.column("offered_at", .text)
            table.column("decided_at", .text).notNull()
            table.column("outcome", .text).notNull().check { outcomes.contains($0) }
            table.column("sip_status", .integer).notNull()
            table.column("reason", .text)
            table.column("route", .text)
            table.column("worker_id", .text)
            table.column("fallback", .boolean).notNull()
            table.column("fallback_cause", .text)
            table.column("decision_ms", .double).notNull()
            table.column("answered_at", .text)
            table.column("ended_at", .text)
            table.column("setup_ms", .double)
            table.column("talk_ms", .double)
            table.column("end_cause", .text)
            table.uniqueKey(["bridge_id", "call_id"])
        }
    }

    /// The last applied sequence number of `bridgeId`; with nil, of the only bridge on file.
    /// - Throws: ``AccountingError/ambiguousCursor(_:)`` when several bridges are on file and none is named.
    func cursor(bridgeId: String?) throws -> (bridgeId: String, lastSeq: UInt64)? {
        let rows = try database.read { db in
            try Row.fetchAll(db, sql: "SELECT bridge_id, last_seq FROM cursors ORDER BY bridge_id")
        }
        let cursors = rows.map { (bridgeId: $0["bridge_id"] as String, lastSeq: UInt64($0["last_seq"] as Int64)) }
        if let bridgeId { return cursors.first { $0.bridgeId == bridgeId } }
        if cursors.count > 1 { throw AccountingError.ambiguousCursor(cursors.map(\.bridgeId)) }
        return cursors.first
    }

    /// Applies one event and moves the bridge's cursor to its `seq`, in one transaction.
    @discardableResult
    func apply(_ event: Event) throws -> CDRApplyResult {
        try database.write { db in try Self.apply(event, db).result }
    }

    /// The same, without blocking the caller's thread while SQLite writes; also returns the CDR when
    /// this event finished it (an outcome with nothing to follow, or `call.ended`), rated, for metrics.
    @discardableResult
    func apply(_ event: Event) async throws -> (result: CDRApplyResult, finished: CDR?) {
        try await database.write { db in try Self.apply(event, db) }
    }

    private static func apply(_ event: Event, _ db: Database) throws -> (result: CDRApplyResult, finished: CDR?) {
        let stored = try Int64.fetchOne(db, sql: "SELECT last_seq FROM cursors WHERE bridge_id = ?", arguments: [event.bridgeId])
        if let stored, UInt64(stored) >= event.seq { return (.alreadyApplied, nil) }
        let result = try record(event, db)
        try db.execute(sql: """
            INSERT INTO cursors (bridge_id, last_seq) VALUES (?, ?)
            ON CONFLICT(bridge_id) DO UPDATE SET last_seq = excluded.last_seq
            """, arguments: [event.bridgeId, Int64(event.seq)])
        return result
    }

    private static func record(_ event: Event, _ db: Database) throws -> (result: CDRApplyResult, finished: CDR?) {
        // System events have no call id.
        guard let callId = event.callId else { return (.ignored, nil) }
        let ts = CDRTimestamp.format(event.timestamp)
        switch event.body {
        case .callOffered(let offer):
            try PendingOffer(bridgeId: event.bridgeId, callId: callId, sipCallId: offer.sipCallId,
                             caller: offer.authUser ?? offer.from.user, callee: offer.requestUri.user,
                             authAccount: offer.authUser, offeredAt: ts, billTo: Self.billingAccount(offer)).save(db)
            return (.pending, nil)
        case .callRouted(let routed) where routed.step != nil:
            // A failure step's route: the bridged call's CDR stays, and its route becomes the one tried last.
            try db.execute(sql: "UPDATE cdrs SET route = ?, worker_id = ? WHERE bridge_id = ? AND call_id = ?",
                           arguments: [String(decoding: try BusSchema.makeEncoder().encode(routed.targets), as: UTF8.self),
                                       routed.workerId, event.bridgeId, callId])
            return (.updated, nil)
        case .callRouted(let routed):
            // An answered call (an IVR's `answer` decision) is the bridge's to keep, as a bridged one: it goes on.
            let bridged = routed.action != .redirect
            var cdr = try cdrFromOffer(bridgeId: event.bridgeId, callId: callId, decidedAt: ts, outcome: bridged ? "bridged" : "routed",
                                       status: bridged ? 0 : 302, db)
            cdr.route = String(decoding: try BusSchema.makeEncoder().encode(routed.targets), as: UTF8.self)
            cdr.workerId = routed.workerId
            cdr.fallback = routed.fallback
            cdr.fallbackCause = routed.cause?.rawValue
            cdr.decisionMs = routed.decisionMs
            // A redirect is the CDR's last event; a bridged or answered call is rated when it ends.
            if !bridged { try RateSheet.load(db).rate(&cdr) }
            try write(cdr, db)
            return (.recorded, bridged ? nil : cdr)
        case .callRejected(let rejected):
            var cdr = try cdrFromOffer(bridgeId: event.bridgeId, callId: callId, decidedAt: ts, outcome: "rejected",
                                       status: rejected.status, db)
            cdr.reason = rejected.reason
            cdr.workerId = rejected.workerId
            cdr.fallback = rejected.fallback
            cdr.fallbackCause = rejected.cause?.rawValue
            cdr.decisionMs = rejected.decisionMs
            try RateSheet.load(db).rate(&cdr)
            try write(cdr, db)
            return (.recorded, cdr)
        case .callOriginated(let originate):
            // No offer and no worker: the command is both, so it is offered and decided at once.
            try write(CDR(id: nil, bridgeId: event.bridgeId, callId: callId, sipCallId: nil, caller: originate.a.uri,
                          callee: originate.b.uri, authAccount: originate.account, offeredAt: ts, decidedAt: ts,
                          outcome: "originated", sipStatus: 0, reason: nil, route: nil, workerId: nil, fallback: false,
                          fallbackCause: nil, decisionMs: 0), db)
            return (.recorded, nil)
        case .callRinging:
            return try update(event, callId: callId, db) { cdr in
                guard cdr.ringingAt == nil else { return }
                cdr.ringingAt = ts
                cdr.pddMs = Self.milliseconds(from: cdr.offeredAt, to: ts)
            }
        case .callAnswered(let answered) where answered.leg == .b:
            return try update(event, callId: callId, db) { cdr in
                if cdr.answeredAt == nil { cdr.answeredAt = ts }
            }
        case .callConnected:
            return try update(event, callId: callId, db) { cdr in
                cdr.answeredAt = ts
                cdr.sipStatus = 200
                if let setup = Self.milliseconds(from: cdr.offeredAt, to: ts) { cdr.setupMs = Double(setup) }
            }
        case .callEnded(let ended):
            let sheet = try RateSheet.load(db)
            var finished: CDR?
            let result = try update(event, callId: callId, db) { cdr in
                cdr.endedAt = ts
                cdr.talkMs = ended.talkMs
                cdr.endCause = ended.cause.rawValue
                if let status = ended.status, cdr.sipStatus == 0 { cdr.sipStatus = status }
                sheet.rate(&cdr)
                finished = cdr
            }
            return (result.result, finished)
        case .callMediaRecorded(let recorded):
            // The bridge publishes it before the call's `call.ended`, so the finished CDR already has it.
            return try update(event, callId: callId, db) { cdr in
                cdr.recordingPath = recorded.path
                cdr.recordingMs = Int64(recorded.durationMs)
                // Unknown (nil) when the call's end stopped the recording: rtpengine was still closing the file.
                cdr.recordingBytes = recorded.bytes.map(Int64.init)
            }
        default:
            // System events (bridge.started, worker.joined, ...) and the steps between (dialing,
            // holds, key presses, prompts) change no CDR.
            return (.ignored, nil)
        }
    }

    /// The header Kamailio adds from the caller's provisioned billing account (any spelling of its name).
    private static func billingAccount(_ offer: CallOffer) -> String? {
        offer.headers.first { $0.key.caseInsensitiveCompare("X-Switchboard-Billing-Account") == .orderedSame }
            .flatMap { $0.value.isEmpty ? nil : $0.value }
    }

    /// From one stored timestamp to another; both are whole milliseconds, so the difference is exact.
    private static func milliseconds(from start: String?, to end: String) -> Int64? {
        guard let start = start.flatMap(CDRTimestamp.parse), let end = CDRTimestamp.parse(end) else { return nil }
        return Int64((end.timeIntervalSince(start) * 1000).rounded())
    }

    /// Completes the CDR of an ongoing call; an event for a call without one (its start lost to
    /// journal retention) changes nothing.
    private static func update(_ event: Event, callId: String, _ db: Database,
                               _ change: (inout CDR) -> Void) throws -> (result: CDRApplyResult, finished: CDR?) {
        guard var cdr = try CDR.filter(Column("bridge_id") == event.bridgeId && Column("call_id") == callId).fetchOne(db) else {
            return (.ignored, nil)
        }
        change(&cdr)
        try cdr.update(db)
        return (.updated, nil)
    }

    private static func cdrFromOffer(bridgeId: String, callId: String, decidedAt: String, outcome: String, status: Int,
                                     _ db: Database) throws -> CDR {
        let offer = try PendingOffer.fetchOne(db, key: ["bridge_id": bridgeId, "call_id": callId])
        if offer != nil { try PendingOffer.deleteOne(db, key: ["bridge_id": bridgeId, "call_id": callId]) }
        return CDR(id: nil, bridgeId: bridgeId, callId: callId, sipCallId: offer?.sipCallId, caller: offer?.caller,
                   callee: offer?.callee, authAccount: offer?.authAccount, offeredAt: offer?.offeredAt, decidedAt: decidedAt,
                   outcome: outcome, sipStatus: status, reason: nil, route: nil, workerId: nil, fallback: false,
                   fallbackCause: nil, decisionMs: 0, billTo: offer?.billTo)
    }

    /// One CDR per call: a second outcome for the same call (not expected) replaces the first.
    private static func write(_ cdr: CDR, _ db: Database) throws {
        var cdr = cdr
        try CDR.filter(Column("bridge_id") == cdr.bridgeId && Column("call_id") == cdr.callId).deleteAll(db)
        try cdr.insert(db)
    }

    /// CDRs decided at or after `since` and before `until` (ISO 8601), the newest `limit` of them, oldest first.
    func cdrs(limit: Int? = nil, since: String? = nil, until: String? = nil, account: String? = nil) throws -> [CDR] {
        try database.read { db in
            var request = CDR.all()
            if let since { request = request.filter(Column("decided_at") >= since) }
            if let until { request = request.filter(Column("decided_at") < until) }
            if let account { request = request.filter(Column("auth_account") == account) }
            request = request.order(Column("decided_at").desc, Column("id").desc)
            if let limit { request = request.limit(limit) }
            return try request.fetchAll(db).reversed()
        }
    }

    /// Rows decided in `since..<until`, oldest first, column by column, for ``CDRExport`` and ``CallStatistics``.
    func rows(since: String, until: String, account: String? = nil) throws -> [CDRRow] {
        try database.read { db in
            var sql = "SELECT * FROM cdrs WHERE decided_at >= ? AND decided_at < ?"
            var arguments: StatementArguments = [since, until]
            if let account {
                sql += " AND auth_account = ?"
                arguments += [account]
            }
            return try Row.fetchAll(db, sql: sql + " ORDER BY decided_at, id", arguments: arguments).map(\.cdrColumns)
        }
    }

    /// Offers still waiting for their outcome.
    func pendingCount() throws -> Int {
        try database.read { db in try PendingOffer.fetchCount(db) }
    }
}

/// Failures of the accounting worker and its CLI.
enum AccountingError: Error, Equatable, CustomStringConvertible {
    case ambiguousCursor([String])
    case invalidSince(String)
    case invalidTime(option: String, value: String)

    var description: String {
        switch self {
        case .ambiguousCursor(let bridges):
            "the database holds cursors of several bridges (\(bridges.joined(separator: ", "))); name one with --bridge-id"
        case .invalidSince(let value):
            "--since must be an ISO 8601 time such as 2026-11-26T20:00:00Z, got \(value)"
        case .invalidTime(let option, let value):
            "\(option) must be an ISO 8601 time such as 2026-11-26T20:00:00Z, got \(value)"
        }
    }
}

/// The bus's timestamp format (ISO 8601 UTC, milliseconds), which also sorts as text; Billing's,
/// which the gateway reads the same file with.
typealias CDRTimestamp = CDRTime
