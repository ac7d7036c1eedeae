import Foundation
import GRDB
import KetenpostAPI

/// How the desk opens its SQLite file.
enum DeskDatabase {
    static func configuration() -> Configuration {
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // A message, an account change or a log entry is written before the page that caused it
            // says so: it must survive a crash or a power cut.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        configuration.busyMode = .timeout(10)
        return configuration
    }
}

/// What a staff member may do at the desk.
public enum StaffRole: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    /// Composes, reads and answers messages.
    case caseworker
    /// A caseworker who also sees the whole team's worklist and assigns messages.
    case teamLead = "team-lead"
    /// Manages staff accounts; reads no messages.
    case administrator = "desk-admin"
    /// Reads the access log; reads no messages.
    case logReader = "log-reader"

    public var handlesMessages: Bool { self == .caseworker || self == .teamLead }
    /// Desk administrators and log readers must sign in with a second factor.
    public var requiresSecondFactor: Bool { self == .administrator || self == .logReader }
}

/// A staff account. The password is kept as a bcrypt hash; the TOTP secret (base32) only when a
/// second factor is set up.
public struct StaffMember: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "staff"

    public var username: String
    public var displayName: String
    public var role: StaffRole
    public var passwordHash: String
    public var totpSecret: String?
    public var disabled: Bool
    public var failedAttempts: Int
    /// Milliseconds since 1970; locked while in the future.
    public var lockedUntil: Int64?
    public var createdAt: Int64
    /// The 30-second step of the last second-factor code accepted: a code works only once, so one
    /// seen over a shoulder or in a proxy log cannot sign in again within its window.
    public var lastCodeStep: Int64?

    /// Lowercase letters, digits, dots, dashes and underscores, 2 to 64 characters: it appears in
    /// the access log and in URLs.
    public static func isValidUsername(_ name: String) -> Bool {
        (2...64).contains(name.count)
            && name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || ".-_".unicodeScalars.contains($0) }
    }

    public func isLocked(at time: Date) -> Bool { (lockedUntil ?? 0) > DeskStore.milliseconds(time) }
}

/// Which way a message went.
public enum Direction: String, Codable, Sendable, DatabaseValueConvertible {
    case incoming = "in"
    case outgoing = "out"
}

/// A message's state at the desk. Outgoing: draft → sending → accepted → delivered →
/// acknowledged, or one of the red ends (rejected, expired, dead, failed). Incoming: new → opened
/// → answered, or refused when it could not be opened.
public enum DeskState: String, Codable, Sendable, CaseIterable, DatabaseValueConvertible {
    case draft, sending, accepted, delivered, acknowledged
    case rejected, expired, dead, failed
    case new, opened, answered, refused

    /// States that need someone to act: shown in red.
    public var isFailure: Bool { [.rejected, .expired, .dead, .failed, .refused].contains(self) }
    /// Outgoing states the relay may still change.
    public var awaitsRelay: Bool { [.sending, .accepted, .delivered].contains(self) }
}

/// One message at the desk. Its content is never stored in the clear: `sealed` holds the message as
/// it travels (opened again on every view of an incoming message), `copy` the desk's own copy of an
/// outgoing message or draft, encrypted for the partner's own certificate. The other columns are
/// routing metadata, which the relay sees too, and the business answer.
public struct DeskMessage: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "message"

    public var id: String
    public var direction: Direction
    public var type: String
    /// The recipient of an outgoing message, the sender of an incoming one.
    public var counterpart: String
    public var priority: String
    public var correlationId: String?
    /// Drafts: when the draft was made; incoming: when it arrived.
    public var createdAt: Int64
    public var updatedAt: Int64
    public var sentAt: Int64?
    public var expiresAt: Int64?
    public var state: DeskState
    public var sealed: Data?
    public var digest: String?
    public var copy: Data?
    public var acceptanceReceipt: Data?
    public var recipientReceipt: Data?
    /// Why the relay or the desk refused or gave up (a stable code), for red states.
    public var reasonCode: String?
    /// The business answer to an outgoing intake notice or referral (or given to an incoming one).
    public var outcome: String?
    public var outcomeReason: String?
    public var answerId: String?
    public var answeredAt: Int64?
    public var createdBy: String?
    public var assignedTo: String?
    /// Attempts to submit a `sending` message (retried in the background).
    public var submitAttempts: Int
    /// For received messages: their place in arrival order, the cursor of the API's inbox.
    public var inboxSeq: Int64?

    public init(
        id: String,
        direction: Direction,
        type: String,
        counterpart: String,
        priority: String,
        correlationId: String? = nil,
        createdAt: Int64,
        updatedAt: Int64,
        sentAt: Int64? = nil,
        expiresAt: Int64? = nil,
        state: DeskState,
        sealed: Data? = nil,
        digest: String? = nil,
        copy: Data? = nil,
        acceptanceReceipt: Data? = nil,
        recipientReceipt: Data? = nil,
        reasonCode: String? = nil,
        outcome: String? = nil,
        outcomeReason: String? = nil,
        answerId: String? = nil,
        answeredAt: Int64? = nil,
        createdBy: String? = nil,
        assignedTo: String? = nil,
        submitAttempts: Int = 0,
        inboxSeq: Int64? = nil
    ) {
        self.id = id
        self.direction = direction
        self.type = type
        self.counterpart = counterpart
        self.priority = priority
        self.correlationId = correlationId
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.sentAt = sentAt
        self.expiresAt = expiresAt
        self.state = state
        self.sealed = sealed
        self.digest = digest
        self.copy = copy
        self.acceptanceReceipt = acceptanceReceipt
        self.recipientReceipt = recipientReceipt
        self.reasonCode = reasonCode
        self.outcome = outcome
        self.outcomeReason = outcomeReason
        self.answerId = answerId
        self.answeredAt = answeredAt
        self.createdBy = createdBy
        self.assignedTo = assignedTo
        self.submitAttempts = submitAttempts
        self.inboxSeq = inboxSeq
    }
}

/// The desk's SQLite file: staff accounts, messages (sealed only) and the access log, in one
/// database so that a change and its log entry are written in one transaction.
public final class DeskStore: Sendable {
    let database: DatabasePool
    public let accessLog: SQLiteAccessLog
    /// Whether message changes also record webhook notifications (in the same transaction).
    let webhookEvents: Bool

    /// Opens (and creates) `desk.sqlite` in `directory`, readable by the desk's user only.
    public init(directory: String, webhookEvents: Bool = false) throws {
        self.webhookEvents = webhookEvents
        try FileManager.default.createDirectory(
            atPath: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let path = (directory as NSString).appendingPathComponent("desk.sqlite")
        database = try DatabasePool(path: path, configuration: DeskDatabase.configuration())
        try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        var migrator = DatabaseMigrator()
        SQLiteAccessLog.registerMigrations(&migrator)
        migrator.registerMigration("desk-v1") { db in
            try db.create(table: StaffMember.databaseTableName) { t in
                t.primaryKey("username", .text)
                t.column("displayName", .text).notNull()
                t.column("role", .text).notNull()
                t.column("passwordHash", .text).notNull()
                t.column("totpSecret", .text)
                t.column("disabled", .boolean).notNull()
                t.column("failedAttempts", .integer).notNull()
                t.column("lockedUntil", .integer)
                t.column("createdAt", .integer).notNull()
            }
            try db.create(table: DeskMessage.databaseTableName) { t in
                t.primaryKey("id", .text)
                t.column("direction", .text).notNull()
                t.column("type", .text).notNull()
                t.column("counterpart", .text).notNull()
                t.column("priority", .text).notNull()
                t.column("correlationId", .text).indexed()
                t.column("createdAt", .integer).notNull()
                t.column("updatedAt", .integer).notNull()
                t.column("sentAt", .integer)
                t.column("expiresAt", .integer)
                t.column("state", .text).notNull()
                t.column("sealed", .blob)
                t.column("digest", .text)
                t.column("copy", .blob)
                t.column("acceptanceReceipt", .blob)
                t.column("recipientReceipt", .blob)
                t.column("reasonCode", .text)
                t.column("outcome", .text)
                t.column("outcomeReason", .text)
                t.column("answerId", .text)
                t.column("answeredAt", .integer)
                t.column("createdBy", .text)
                t.column("assignedTo", .text)
                t.column("submitAttempts", .integer).notNull()
            }
            try db.create(index: "message_list", on: DeskMessage.databaseTableName, columns: ["direction", "createdAt"])
            try db.create(index: "message_state", on: DeskMessage.databaseTableName, columns: ["state"])
        }
        migrator.registerMigration("desk-v2-code-once") { db in
            try db.alter(table: StaffMember.databaseTableName) { t in t.add(column: "lastCodeStep", .integer) }
        }
        // Lists order by (createdAt, id) both descending, so that SQLite walks the index instead of
        // sorting a whole direction for every page; the filter columns ride along, so counts and
        // filters are answered from the index without reading rows (whose sealed bytes come first).
        // The urgent banner, on every page, gets a small index of its own.
        migrator.registerMigration("desk-v3-list-index") { db in
            try db.drop(index: "message_list")
            try db.create(
                index: "message_list",
                on: DeskMessage.databaseTableName,
                columns: ["direction", "createdAt", "id", "state", "type", "counterpart", "priority", "assignedTo", "createdBy"]
            )
            try db.execute(
                sql: """
                    CREATE INDEX message_urgent ON message(createdAt, state, outcome, answerId)
                    WHERE type = 'intake-notice' AND priority = 'urgent'
                    """
            )
        }
        Self.registerIntegrationMigrations(&migrator)
        Self.registerWebhookMigrations(&migrator)
        try migrator.migrate(database)
        accessLog = SQLiteAccessLog(database: database)
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    // MARK: Staff

    public func staff(_ username: String) throws -> StaffMember? {
        try database.read { db in try StaffMember.fetchOne(db, key: username) }
    }

    public func allStaff() throws -> [StaffMember] {
        try database.read { db in try StaffMember.order(Column("username")).fetchAll(db) }
    }

    /// Adds an account; refuses a username that exists. The change is logged with `actor`.
    public func addStaff(_ member: StaffMember, actor: AccessEvent.Actor) throws(KetenpostError) {
        try write { db in
            guard try StaffMember.fetchOne(db, key: member.username) == nil else {
                throw KetenpostError(.deskConflict, "There is already an account with this username; choose another one.")
            }
            try member.insert(db)
            try SQLiteAccessLog.append(
                AccessEvent(
                    staff: actor.staff,
                    role: actor.role,
                    action: .userChange,
                    detail: "add \(member.username) as \(member.role.rawValue)"
                ),
                in: db
            )
        }
    }

    /// Changes an account with `change`; logs `what` with `actor`.
    @discardableResult
    public func updateStaff(
        _ username: String,
        actor: AccessEvent.Actor,
        what: String,
        _ change: @Sendable (inout StaffMember) -> Void
    ) throws(KetenpostError) -> StaffMember {
        try write { db in
            guard var member = try StaffMember.fetchOne(db, key: username) else {
                throw KetenpostError(.deskNotFound, "There is no account with this username.")
            }
            change(&member)
            try member.update(db)
            try SQLiteAccessLog.append(
                AccessEvent(staff: actor.staff, role: actor.role, action: .userChange, detail: "\(what) \(username)"),
                in: db
            )
            return member
        }
    }

    /// Records a sign-in attempt's result on the account and in the log, in one transaction:
    /// failures count up to a lockout, a success resets the count.
    @discardableResult
    public func recordSignIn(
        _ username: String,
        succeeded: Bool,
        lockAfter attempts: Int,
        lockFor duration: TimeInterval,
        codeStep: Int64? = nil,
        at time: Date = Date()
    ) throws(KetenpostError) -> Bool {
        try write { db in
            let member = try StaffMember.fetchOne(db, key: username)
            var succeeded = succeeded
            // Checked inside the write, so two sign-ins racing with one code cannot both pass.
            if succeeded, let codeStep, let last = member?.lastCodeStep, codeStep <= last { succeeded = false }
            if var member {
                if let codeStep, succeeded { member.lastCodeStep = codeStep }
                if succeeded {
                    member.failedAttempts = 0
                    member.lockedUntil = nil
                } else {
                    member.failedAttempts += 1
                    if member.failedAttempts >= attempts {
                        member.lockedUntil = Self.milliseconds(time.addingTimeInterval(duration))
                        member.failedAttempts = 0
                    }
                }
                try member.update(db)
            }
            // An unknown username is logged as typed only when it is a valid username: a password
            // typed into the wrong field must not end up in the log.
            let name = member?.username ?? (StaffMember.isValidUsername(username) ? username : "(invalid username)")
            try SQLiteAccessLog.append(
                AccessEvent(
                    staff: name,
                    role: member?.role.rawValue ?? "unknown",
                    action: succeeded ? .signIn : .signInFailed,
                    detail: member?.isLocked(at: time) == true && !succeeded ? "locked" : nil
                ),
                at: time,
                in: db
            )
            return succeeded
        }
    }

    // MARK: Messages

    public func message(_ id: String) throws -> DeskMessage? {
        try database.read { db in try DeskMessage.fetchOne(db, key: id) }
    }

    /// Inserts a new message (a draft, or one just received). A second insert of the same id is
    /// refused: ids are fixed once.
    public func insert(_ message: DeskMessage) throws(KetenpostError) {
        try write { db in
            guard try DeskMessage.fetchOne(db, key: message.id) == nil else {
                throw KetenpostError(.deskConflict, "A message with this id is already at the desk.")
            }
            var message = message
            if message.direction == .incoming && message.inboxSeq == nil { message.inboxSeq = try Self.nextInboxSeq(db) }
            try message.insert(db)
            if webhookEvents { try Self.recordWebhookEvents(before: nil, after: message, in: db) }
        }
    }

    /// Inserts many messages in one transaction (imports and the benchmark).
    public func insertAll(_ messages: [DeskMessage]) throws(KetenpostError) {
        try write { db in
            for message in messages { try message.insert(db) }
        }
    }

    /// Changes a message when `condition` holds for its current version; returns the new
    /// version, or nil when the condition did not hold (someone else changed it first).
    @discardableResult
    public func update(
        _ id: String,
        when condition: @Sendable (DeskMessage) -> Bool = { _ in true },
        event: AccessEvent? = nil,
        _ change: @Sendable (inout DeskMessage) -> Void
    ) throws(KetenpostError) -> DeskMessage? {
        try write { db in
            guard var message = try DeskMessage.fetchOne(db, key: id) else {
                throw KetenpostError(.deskNotFound, "There is no message with this id at this desk.")
            }
            guard condition(message) else { return nil }
            let before = message
            change(&message)
            message.updatedAt = Self.milliseconds(Date())
            try message.update(db)
            if let event { try SQLiteAccessLog.append(event, in: db) }
            if webhookEvents { try Self.recordWebhookEvents(before: before, after: message, in: db) }
            return message
        }
    }

    /// A page of a worklist, newest first.
    public struct Query: Sendable {
        public var direction: Direction
        public var states: [DeskState]?
        public var type: String?
        public var counterpart: String?
        public var priority: String?
        public var assignedTo: String?
        /// Only messages assigned to this staff member or to nobody.
        public var assignedToOrNobody: String?
        public var createdBy: String?
        public var from: Date?
        public var until: Date?
        public var limit = 50
        public var offset = 0

        public init(direction: Direction) { self.direction = direction }
    }

    /// The messages of a worklist (without their sealed bytes) and how many there are in all.
    public func list(_ query: Query) throws -> (messages: [DeskMessage], total: Int) {
        try database.read { db in
            var request = DeskMessage.filter(Column("direction") == query.direction.rawValue)
            if let states = query.states { request = request.filter(states.map(\.rawValue).contains(Column("state"))) }
            if let type = query.type { request = request.filter(Column("type") == type) }
            if let counterpart = query.counterpart { request = request.filter(Column("counterpart") == counterpart) }
            if let priority = query.priority { request = request.filter(Column("priority") == priority) }
            if let assignedTo = query.assignedTo { request = request.filter(Column("assignedTo") == assignedTo) }
            if let member = query.assignedToOrNobody {
                request = request.filter(Column("assignedTo") == nil || Column("assignedTo") == member)
            }
            if let createdBy = query.createdBy { request = request.filter(Column("createdBy") == createdBy) }
            if let from = query.from { request = request.filter(Column("createdAt") >= Self.milliseconds(from)) }
            if let until = query.until { request = request.filter(Column("createdAt") < Self.milliseconds(until)) }
            let total = try request.fetchCount(db)
            let messages =
                try request
                .select(Self.listColumns)
                .order(Column("createdAt").desc, Column("id").desc)
                .limit(query.limit, offset: query.offset)
                .fetchAll(db)
            return (messages, total)
        }
    }

    /// Lists leave the blobs out: a page of fifty rows should not read fifty messages.
    private static let listColumnNames = [
        "id", "direction", "type", "counterpart", "priority", "correlationId", "createdAt", "updatedAt", "sentAt", "expiresAt", "state",
        "digest", "reasonCode", "outcome", "outcomeReason", "answerId", "answeredAt", "createdBy", "assignedTo", "submitAttempts",
    ]
    private static var listColumns: [any SQLSelectable] {
        listColumnNames.map { Column($0) as any SQLSelectable } + [
            SQL("NULL AS sealed"), SQL("NULL AS copy"), SQL("NULL AS acceptanceReceipt"), SQL("NULL AS recipientReceipt"),
        ]
    }

    /// Messages that answer `id` (by correlation id), oldest first.
    public func answers(to id: String) throws -> [DeskMessage] {
        try database.read { db in
            try DeskMessage.filter(Column("correlationId") == id).order(Column("createdAt")).fetchAll(db)
        }
    }

    /// Outgoing messages whose relay state may still change.
    public func awaitingRelay(limit: Int = 200) throws -> [DeskMessage] {
        try database.read { db in
            try DeskMessage
                .filter(Column("direction") == Direction.outgoing.rawValue)
                .filter(DeskState.allCases.filter(\.awaitsRelay).map(\.rawValue).contains(Column("state")))
                .order(Column("updatedAt"))
                .limit(limit)
                .fetchAll(db)
        }
    }

    /// Urgent intake notices sent or received before `cutoff` that have no answer yet.
    public func unansweredUrgent(before cutoff: Date) throws -> [DeskMessage] {
        // On every page: through the small partial index (a plain filter lets SQLite pick the
        // state index and read every row of those states, ten times slower with 10,000 messages).
        let states = [DeskState.accepted, .delivered, .acknowledged, .new, .opened].map { "'\($0.rawValue)'" }.joined(separator: ", ")
        let columns = Self.listColumnNames.joined(separator: ", ")
        return try database.read { db in
            try DeskMessage.fetchAll(
                db,
                sql: """
                    SELECT \(columns), NULL AS sealed, NULL AS copy, NULL AS acceptanceReceipt, NULL AS recipientReceipt
                    FROM message INDEXED BY message_urgent
                    WHERE type = 'intake-notice' AND priority = 'urgent' AND outcome IS NULL AND answerId IS NULL
                    AND createdAt < ? AND state IN (\(states))
                    ORDER BY createdAt LIMIT 20
                    """,
                arguments: [Self.milliseconds(cutoff)]
            )
        }
    }

    /// Runs `body` in a write transaction; failures of the file become a `KetenpostError`.
    func write<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws(KetenpostError) -> T {
        do {
            return try database.write(body)
        } catch let error as KetenpostError {
            throw error
        } catch {
            throw KetenpostError(
                .storeUnavailable,
                "The desk could not write to its database; nothing was changed. Check the data folder's disk and permissions."
            )
        }
    }
}

extension AccessEvent {
    /// Who did something: a staff member with a role, or the command line.
    public struct Actor: Sendable, Equatable {
        public var staff: String
        public var role: String
        public init(staff: String, role: String) {
            self.staff = staff
            self.role = role
        }
        /// `ketenpost desk users …` on the desk's machine.
        public static let commandLine = Actor(staff: "(command line)", role: "operator")
    }
}
