import Foundation
import GRDB
import KetenpostAPI
import KetenpostCrypto

/// What staff did at the desk (NEN 7513): who, in which role, what, about which message, when.
/// Metadata only: never a payload, never a field value.
public struct AccessEvent: Sendable, Equatable {
    public enum Action: String, Sendable, CaseIterable {
        case signIn = "sign-in"
        case signInFailed = "sign-in-failed"
        case signOut = "sign-out"
        case view, compose, send, answer, download, export, assign
        case userChange = "user-change"
        case tokenChange = "token-change"
        case logRead = "log-read"
    }

    public var staff: String
    public var role: String
    public var action: Action
    public var messageId: String?
    public var detail: String?

    public init(staff: String, role: String, action: Action, messageId: String? = nil, detail: String? = nil) {
        self.staff = staff
        self.role = role
        self.action = action
        self.messageId = messageId
        self.detail = detail
    }
}

/// One recorded event, hash-chained to the one before it, so that a removed, changed or
/// inserted entry shows.
public struct AccessEntry: Sendable, Equatable, Codable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "access_log"

    public var sequence: Int64
    /// Milliseconds since 1970, UTC.
    public var at: Int64
    public var staff: String
    public var role: String
    public var action: String
    public var messageId: String?
    public var detail: String?
    public var prevHash: String
    public var hash: String

    public var date: Date { Date(timeIntervalSince1970: Double(at) / 1000) }

    /// The hash of this entry: SHA-256 over its fields as canonical JSON (sorted keys).
    public var computedHash: String {
        struct Canonical: Encodable {
            var action: String
            var at: Int64
            var detail: String?
            var messageId: String?
            var prevHash: String
            var role: String
            var sequence: Int64
            var staff: String
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let canonical = Canonical(
            action: action,
            at: at,
            detail: detail,
            messageId: messageId,
            prevHash: prevHash,
            role: role,
            sequence: sequence,
            staff: staff
        )
        // Encoding plain strings and integers cannot fail.
        let bytes = (try? encoder.encode(canonical)) ?? Data()
        return Digest.sha256(bytes).hexString
    }

    /// The hash before the first entry.
    public static let genesis = String(repeating: "0", count: 64)
}

/// The result of checking the chain from the first entry to the last.
public struct AccessLogVerification: Sendable, Equatable {
    public var entries: Int
    /// The first entry whose hash or link does not match, if any.
    public var firstBroken: Int64?
    public var intact: Bool { firstBroken == nil }

    public init(entries: Int, firstBroken: Int64?) {
        self.entries = entries
        self.firstBroken = firstBroken
    }
}

/// The access log in the desk's SQLite file.
public final class SQLiteAccessLog: Sendable {
    let database: any DatabaseWriter

    /// Opens (and creates) the log in `path`, alone (the `ketenpost desk log` commands).
    public convenience init(path: String) throws {
        let queue = try DatabaseQueue(path: path, configuration: DeskDatabase.configuration())
        var migrator = DatabaseMigrator()
        Self.registerMigrations(&migrator)
        try migrator.migrate(queue)
        self.init(database: queue)
    }

    /// The log inside a database whose migrator ran `registerMigrations`.
    init(database: any DatabaseWriter) {
        self.database = database
    }

    static func registerMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("access-log-v1") { db in
            try db.create(table: AccessEntry.databaseTableName, ifNotExists: true) { t in
                t.primaryKey("sequence", .integer)
                t.column("at", .integer).notNull()
                t.column("staff", .text).notNull().indexed()
                t.column("role", .text).notNull()
                t.column("action", .text).notNull()
                t.column("messageId", .text).indexed()
                t.column("detail", .text)
                t.column("prevHash", .text).notNull()
                t.column("hash", .text).notNull()
            }
        }
    }

    /// Appends `event` at `time` and returns the entry as stored.
    @discardableResult
    public func record(_ event: AccessEvent, at time: Date = Date()) throws -> AccessEntry {
        try database.write { db in try Self.append(event, at: time, in: db) }
    }

    /// Appends inside a transaction of the caller, so that a change and its log entry land together.
    @discardableResult
    static func append(_ event: AccessEvent, at time: Date = Date(), in db: Database) throws -> AccessEntry {
        let last = try AccessEntry.order(Column("sequence").desc).fetchOne(db)
        var entry = AccessEntry(
            sequence: (last?.sequence ?? 0) + 1,
            at: Int64((time.timeIntervalSince1970 * 1000).rounded(.down)),
            staff: event.staff,
            role: event.role,
            action: event.action.rawValue,
            messageId: event.messageId,
            detail: event.detail,
            prevHash: last?.hash ?? AccessEntry.genesis,
            hash: ""
        )
        entry.hash = entry.computedHash
        try entry.insert(db)
        return entry
    }

    /// Entries in order; optionally only those about one message or by one staff member.
    public func entries(message: String? = nil, staff: String? = nil, after sequence: Int64 = 0, limit: Int = 1000) throws -> [AccessEntry]
    {
        try database.read { db in
            var request = AccessEntry.filter(Column("sequence") > sequence)
            if let message { request = request.filter(Column("messageId") == message) }
            if let staff { request = request.filter(Column("staff") == staff) }
            return try request.order(Column("sequence")).limit(limit).fetchAll(db)
        }
    }

    /// Walks the whole chain.
    public func verify() throws -> AccessLogVerification {
        try database.read { db in
            var previous = AccessEntry.genesis
            var expected: Int64 = 1
            var count = 0
            let cursor = try AccessEntry.order(Column("sequence")).fetchCursor(db)
            while let entry = try cursor.next() {
                count += 1
                if entry.sequence != expected || entry.prevHash != previous || entry.hash != entry.computedHash {
                    return AccessLogVerification(entries: count, firstBroken: min(entry.sequence, expected))
                }
                previous = entry.hash
                expected += 1
            }
            return AccessLogVerification(entries: count, firstBroken: nil)
        }
    }

    /// The entries as CSV for a privacy officer's spreadsheet. Cells that a spreadsheet would
    /// run as a formula (=, +, -, @, tab, carriage return first) get a leading apostrophe.
    public static func csv(_ entries: [AccessEntry]) -> String {
        func cell(_ text: String) -> String {
            var value = text
            if let first = value.first, "=+-@\t\r".contains(first) { value = "'" + value }
            return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        let formatter = ISO8601DateFormatter()
        var lines = ["sequence,time,staff,role,action,message,detail,hash"]
        for e in entries {
            lines.append(
                [
                    "\(e.sequence)", cell(formatter.string(from: e.date)), cell(e.staff), cell(e.role), cell(e.action),
                    cell(e.messageId ?? ""), cell(e.detail ?? ""), cell(e.hash),
                ].joined(separator: ",")
            )
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}
