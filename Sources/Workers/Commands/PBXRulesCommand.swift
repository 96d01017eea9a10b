import ArgumentParser
import Foundation
import PBX

/// `switchboard-worker pbx-rules`: edit the PBX rules, also while the `pbx` worker runs.
///
/// ```sh
/// switchboard-worker pbx-rules extension --db pbx.sqlite --user bob --busy carol --no-answer voicemail --no-answer-seconds 15
/// switchboard-worker pbx-rules extension --db pbx.sqlite --user desk --time-zone Europe/Paris --days mon-fri --hours 09:00-17:00
/// switchboard-worker pbx-rules group --db pbx.sqlite --name sales --strategy round_robin --member alice --member bob --ring-seconds 10
/// switchboard-worker pbx-rules list --db pbx.sqlite
/// switchboard-worker pbx-rules delete --db pbx.sqlite --name sales
/// ```
struct PBXRulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pbx-rules",
        abstract: "Set, list and delete PBX extensions and hunt groups.",
        discussion: "A target is a sip:/sips:/tel: URI or a bare name: a hunt group's, else a user of the called domain.",
        subcommands: [SetExtension.self, SetGroup.self, List.self, Delete.self]
    )

    struct Database: ParsableArguments {
        @Option(name: .customLong("db"), help: "The PBX database (SQLite); created and migrated on first use.")
        var path: String
    }

    /// Creates or replaces one extension's rule.
    struct SetExtension: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "extension", abstract: "Create or replace an extension's rule.")

        @OptionGroup var database: Database
        @Option(help: "The user the rule is for (the called number or name).")
        var user: String
        @Option(help: "The URI to ring (default sip:USER@domain).")
        var contact: String?
        @Flag(inversion: .prefixedNo, help: "Do not disturb: calls are treated as busy.")
        var dnd = false
        @Option(help: "Forward every call here.")
        var always: String?
        @Option(help: "Forward here when the user is busy (or on DND).")
        var busy: String?
        @Option(help: "Forward here when the user does not answer in --no-answer-seconds.")
        var noAnswer: String?
        @Option(help: "Seconds to ring before --no-answer takes the call (default 20).")
        var noAnswerSeconds: Int?
        @Option(help: "Forward here when the user is not registered.")
        var unreachable: String?
        @Option(help: "Open hours' time zone (IANA, e.g. Europe/Paris); with --days and --hours.")
        var timeZone: String?
        @Option(help: "Open days: mon-fri, sat,sun, ...")
        var days: String?
        @Option(help: "Open hours HH:MM-HH:MM (24-hour; 22:00-06:00 runs overnight).")
        var hours: String?
        @Option(help: "Outside the hours, forward here ...")
        var closedForward: String?
        @Option(help: "... or answer this 4xx/6xx status (default 480).")
        var closedStatus = 480
        @Option(help: "The reason phrase of --closed-status.")
        var closedReason: String?

        func validate() throws {
            let scheduleParts = [timeZone, days, hours].compactMap { $0 }.count
            if scheduleParts != 0 && scheduleParts != 3 { throw ValidationError("--time-zone, --days and --hours go together") }
        }

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            var schedule: Schedule?
            if let timeZone, let days, let hours {
                guard let parsedDays = Weekday.parseList(days) else { throw ValidationError("--days \(days.debugDescription) is not like mon-fri or sat,sun") }
                let span = hours.split(separator: "-").map(String.init)
                guard span.count == 2 else { throw ValidationError("--hours \(hours.debugDescription) is not like 09:00-17:00") }
                schedule = Schedule(timeZone: timeZone, days: parsedDays, opens: span[0], closes: span[1],
                                    closed: ClosedAnswer(forward: closedForward, status: closedStatus, reason: closedReason))
            }
            let rule = PBXExtension(user: user, contact: contact, dnd: dnd, forwardAlways: always, forwardBusy: busy, forwardNoAnswer: noAnswer,
                                    noAnswerSeconds: noAnswerSeconds, forwardUnreachable: unreachable, schedule: schedule)
            try PBXStore(path: database.path).save(rule)
            return "saved extension \(user): \(PBXRulesCommand.summary(rule))"
        }
    }

    /// Creates or replaces one hunt group.
    struct SetGroup: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "group", abstract: "Create or replace a hunt group.")

        @OptionGroup var database: Database
        @Option(help: "The group's name (what callers dial).")
        var name: String
        @Option(help: "sequential, simultaneous or round_robin.")
        var strategy: HuntStrategy
        @Option(help: "A member (name or URI), in order; repeat for each.")
        var member: [String]
        @Option(help: "Seconds each member (or, simultaneous, the group) rings.")
        var ringSeconds = 20
        @Option(help: "Where the call goes when no member answers.")
        var overflow: String?

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let group = PBXGroup(name: name, strategy: strategy, members: member, ringSeconds: ringSeconds, overflow: overflow)
            try PBXStore(path: database.path).save(group)
            return "saved group \(name): \(strategy.rawValue) \(member.joined(separator: ", ")) (\(ringSeconds) s)"
                + (overflow.map { ", overflow → \($0)" } ?? "")
        }
    }

    /// Prints every rule as a table, or as JSON for scripts.
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List extensions and hunt groups.")

        @OptionGroup var database: Database
        @Flag(help: "Print {\"extensions\":[...],\"groups\":[...]} instead of tables.")
        var json = false

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let store = try PBXStore(path: database.path)
            let (extensions, groups) = (try store.extensions(), try store.groups())
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                return String(decoding: try encoder.encode(PBXRules(extensions: extensions, groups: groups)), as: UTF8.self)
            }
            if extensions.isEmpty && groups.isEmpty { return "no PBX rules" }
            var text: [String] = []
            if !extensions.isEmpty {
                text.append(TextTable.render(header: ["EXTENSION", "RULE"], rows: extensions.map { [$0.user, PBXRulesCommand.summary($0)] }))
            }
            if !groups.isEmpty {
                text.append(TextTable.render(header: ["GROUP", "STRATEGY", "MEMBERS", "RING", "OVERFLOW"], rows: groups.map {
                    [$0.name, $0.strategy.rawValue, $0.members.joined(separator: ","), "\($0.ringSeconds)s", $0.overflow ?? ""]
                }))
            }
            return text.joined(separator: "\n\n")
        }
    }

    /// Deletes an extension's rule or a group.
    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an extension's rule or a hunt group by name.")

        @OptionGroup var database: Database
        @Option(help: "The extension's user or the group's name.")
        var name: String

        func run() throws { print(try execute()) }

        func execute() throws -> String {
            let store = try PBXStore(path: database.path)
            if try store.extension(name) != nil {
                try store.deleteExtension(name)
                return "deleted extension \(name)"
            }
            try store.deleteGroup(name)
            return "deleted group \(name)"
        }
    }

    static func summary(_ rule: PBXExtension) -> String {
        var parts: [String] = []
        if let contact = rule.contact { parts.append("rings \(contact)") }
        if rule.dnd { parts.append("dnd") }
        if let target = rule.forwardAlways { parts.append("always → \(target)") }
        if let target = rule.forwardBusy { parts.append("busy → \(target)") }
        if let target = rule.forwardNoAnswer {
            parts.append("no answer in \(rule.noAnswerSeconds ?? PBXExtension.defaultNoAnswerSeconds) s → \(target)")
        }
        if let target = rule.forwardUnreachable { parts.append("unreachable → \(target)") }
        if let schedule = rule.schedule {
            let closed = schedule.closed.forward.map { "→ \($0)" } ?? "\(schedule.closed.status)"
            parts.append("open \(schedule.days.map(\.rawValue).joined(separator: ",")) \(schedule.opens)-\(schedule.closes) \(schedule.timeZone), closed \(closed)")
        }
        return parts.isEmpty ? "rings the user" : parts.joined(separator: "; ")
    }
}

extension HuntStrategy: ExpressibleByArgument {}
