import Foundation
import GRDB
import KetenpostAPI
import KetenpostCrypto

/// An API token of a case system. Only a hash of its secret is kept; the token itself is shown
/// once, when it is made. Its name is the actor in the access log (`token:NAME`).
public struct APIToken: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    public static let databaseTableName = "api_token"

    /// The public part of the token, by which it is looked up.
    public var id: String
    public var name: String
    /// SHA-256 (hex) of the secret part: tokens are long random strings, so no slow hash is needed.
    public var secretHash: String
    public var createdAt: Int64
    public var createdBy: String
    public var revokedAt: Int64?
    /// Updated at most once a minute, so that an unused token can be found and revoked.
    public var lastUsedAt: Int64?
    /// What the token may do, comma-separated (`send`, `read`, `answer`): a system that only
    /// reads its inbox gets a token that cannot send.
    public var scopes: String = APIToken.allScopes.map(\.rawValue).joined(separator: ",")

    public enum Scope: String, Sendable, CaseIterable {
        /// `POST /api/v1/messages`, the outbox folder is not token-bound.
        case send
        /// Status, evidence and the inbox.
        case read
        /// `POST /api/v1/inbox/{id}/answer`.
        case answer
    }
    public static let allScopes = Scope.allCases
    public var scopeSet: Set<Scope> { Set(scopes.split(separator: ",").compactMap { Scope(rawValue: String($0)) }) }

    public var actor: String { "token:\(name)" }

    /// Lowercase letters, digits, dots, dashes and underscores, 2 to 64 characters, like usernames.
    public static func isValidName(_ name: String) -> Bool { StaffMember.isValidUsername(name) }
}

/// The first answer to an idempotent send, kept with the request body's hash: a retry with the
/// same key and body gets it again; another body under the same key is refused.
struct IdempotencyRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "idempotency"

    /// Whose keys these are (`token:NAME`, `folder`): two case systems never share a key space.
    var scope: String
    var key: String
    var bodyHash: String
    var messageId: String
    var createdAt: Int64
}

extension DeskStore {
    static func registerIntegrationMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("desk-v4-integration") { db in
            try db.create(table: APIToken.databaseTableName) { t in
                t.primaryKey("id", .text)
                t.column("name", .text).notNull().unique()
                t.column("secretHash", .text).notNull()
                t.column("createdAt", .integer).notNull()
                t.column("createdBy", .text).notNull()
                t.column("revokedAt", .integer)
                t.column("lastUsedAt", .integer)
            }
            try db.create(table: IdempotencyRecord.databaseTableName) { t in
                t.column("scope", .text).notNull()
                t.column("key", .text).notNull()
                t.column("bodyHash", .text).notNull()
                t.column("messageId", .text).notNull()
                t.column("createdAt", .integer).notNull()
                t.primaryKey(["scope", "key"])
            }
            try db.alter(table: DeskMessage.databaseTableName) { t in t.add(column: "inboxSeq", .integer) }
            // Messages received before this version get their places in arrival order.
            try db.execute(
                sql: """
                    UPDATE message SET inboxSeq = (
                        SELECT COUNT(*) FROM message AS earlier WHERE earlier.direction = 'in'
                        AND (earlier.createdAt < message.createdAt OR (earlier.createdAt = message.createdAt AND earlier.id <= message.id)))
                    WHERE direction = 'in'
                    """
            )
            try db.execute(sql: "CREATE UNIQUE INDEX message_inbox ON message(inboxSeq) WHERE inboxSeq IS NOT NULL")
        }
        migrator.registerMigration("desk-v6-token-scopes") { db in
            try db.alter(table: APIToken.databaseTableName) { t in
                t.add(column: "scopes", .text).notNull().defaults(to: "send,read,answer")
            }
        }
    }

    static func nextInboxSeq(_ db: Database) throws -> Int64 {
        (try Int64.fetchOne(db, sql: "SELECT MAX(inboxSeq) FROM message") ?? 0) + 1
    }

    // MARK: Tokens

    public func addToken(_ token: APIToken, actor: AccessEvent.Actor) throws(KetenpostError) {
        try write { db in
            guard try APIToken.filter(Column("name") == token.name).fetchCount(db) == 0 else {
                throw KetenpostError(.deskConflict, "A token with this name exists already; choose another name or revoke that one.")
            }
            try token.insert(db)
            _ = try SQLiteAccessLog.append(
                AccessEvent(staff: actor.staff, role: actor.role, action: .tokenChange, detail: "added \(token.name)"),
                in: db
            )
        }
    }

    public func tokens() throws -> [APIToken] {
        try database.read { db in try APIToken.order(Column("createdAt")).fetchAll(db) }
    }

    public func token(id: String) throws -> APIToken? {
        try database.read { db in try APIToken.fetchOne(db, key: id) }
    }

    public func revokeToken(named name: String, actor: AccessEvent.Actor) throws(KetenpostError) {
        try write { db in
            guard var token = try APIToken.filter(Column("name") == name).fetchOne(db) else {
                throw KetenpostError(.deskNotFound, "There is no token with this name; `ketenpost desk tokens list` shows them.")
            }
            guard token.revokedAt == nil else { return }
            token.revokedAt = Self.milliseconds(Date())
            try token.update(db)
            _ = try SQLiteAccessLog.append(
                AccessEvent(staff: actor.staff, role: actor.role, action: .tokenChange, detail: "revoked \(name)"),
                in: db
            )
        }
    }

    func touchToken(_ id: String, at time: Date) {
        let now = Self.milliseconds(time)
        _ = try? write { db in
            try db.execute(
                sql: "UPDATE api_token SET lastUsedAt = ? WHERE id = ? AND (lastUsedAt IS NULL OR lastUsedAt < ?)",
                arguments: [now, id, now - 60_000]
            )
        }
    }

    // MARK: Idempotent sends

    /// The message an earlier send with this key made, or nil. A different body under the key is
    /// a conflict: the key names one message for good.
    func idempotentMessage(scope: String, key: String, bodyHash: String) throws(KetenpostError) -> DeskMessage? {
        let found: (IdempotencyRecord, DeskMessage?)? = try read { db in
            guard let record = try IdempotencyRecord.fetchOne(db, key: ["scope": scope, "key": key]) else { return nil }
            return (record, try DeskMessage.fetchOne(db, key: record.messageId))
        }
        guard let (record, message) = found else { return nil }
        guard record.bodyHash == bodyHash else {
            throw KetenpostError(
                .deskIdempotencyConflict,
                "This idempotency key was used before for a different message. Use a new key for a new message."
            )
        }
        return message
    }

    /// Stores a sealed outgoing message and its idempotency key in one transaction. When another
    /// request with the same key got there first, nothing is stored and its message is returned.
    func insertIdempotent(
        _ message: DeskMessage,
        scope: String,
        key: String,
        bodyHash: String,
        events: [AccessEvent]
    ) throws(KetenpostError) -> (message: DeskMessage, created: Bool) {
        let result: (DeskMessage?, Bool) = try write { db in
            if let record = try IdempotencyRecord.fetchOne(db, key: ["scope": scope, "key": key]) {
                guard record.bodyHash == bodyHash else {
                    throw KetenpostError(
                        .deskIdempotencyConflict,
                        "This idempotency key was used before for a different message. Use a new key for a new message."
                    )
                }
                return (try DeskMessage.fetchOne(db, key: record.messageId), false)
            }
            try message.insert(db)
            if webhookEvents { try Self.recordWebhookEvents(before: nil, after: message, in: db) }
            try IdempotencyRecord(scope: scope, key: key, bodyHash: bodyHash, messageId: message.id, createdAt: message.createdAt)
                .insert(db)
            for event in events { _ = try SQLiteAccessLog.append(event, in: db) }
            return (message, true)
        }
        guard let stored = result.0 else {
            throw KetenpostError(.internalError, "The message of this idempotency key is missing from the desk's database.")
        }
        return (stored, result.1)
    }

    // MARK: The API's inbox

    /// Received messages after `cursor` in arrival order, at most `limit`.
    public func inbox(after cursor: Int64, limit: Int) throws -> [DeskMessage] {
        try database.read { db in
            try DeskMessage.filter(Column("inboxSeq") > cursor).order(Column("inboxSeq")).limit(limit).fetchAll(db)
        }
    }

    func read<T: Sendable>(_ body: @Sendable (Database) throws -> T) throws(KetenpostError) -> T {
        do {
            return try database.read(body)
        } catch let error as KetenpostError {
            throw error
        } catch {
            throw KetenpostError(.storeUnavailable, "The desk could not read its database. Check the data folder's disk and permissions.")
        }
    }
}
