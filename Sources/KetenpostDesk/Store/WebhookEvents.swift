import Foundation
import GRDB
import KetenpostAPI

/// A notification for the case system's webhook, written in the same transaction as the change it
/// reports (so none is lost or invented), delivered and retried by `DeskWebhookService`.
/// Ids, types and states only: never content.
public struct WebhookEvent: Codable, Sendable, Equatable, FetchableRecord, MutablePersistableRecord {
    public static let databaseTableName = "webhook_event"

    public var seq: Int64?
    /// `message.received`, `message.state` or `message.answered`.
    public var event: String
    public var messageId: String
    public var type: String
    public var state: String
    public var outcome: String?
    public var createdAt: Int64
    public var attempts: Int
    public var nextAttemptAt: Int64
    public var deliveredAt: Int64?
    public var abandonedAt: Int64?
    /// `http-500`, `network`, …: what the last attempt met.
    public var lastError: String?

    public mutating func didInsert(_ inserted: InsertionSuccess) { seq = inserted.rowID }

    /// The body POSTed: the event and its message's metadata.
    public var body: Data {
        var object: [String: Any] = [
            "id": seq ?? 0, "event": event, "messageId": messageId, "type": type, "state": state,
            "at": Date(timeIntervalSince1970: Double(createdAt) / 1000).formatted(.iso8601),
        ]
        if let outcome { object["outcome"] = outcome }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }
}

/// What the status page shows of the webhook.
public struct WebhookSummary: Sendable, Equatable {
    public var pending = 0
    /// Pending and failed at least once.
    public var failing = 0
    public var abandoned = 0
    public var delivered = 0
    public var lastError: String?
    public var lastErrorAt: Int64?
}

extension DeskStore {
    static func registerWebhookMigrations(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("desk-v5-webhooks") { db in
            try db.create(table: WebhookEvent.databaseTableName) { t in
                t.autoIncrementedPrimaryKey("seq")
                t.column("event", .text).notNull()
                t.column("messageId", .text).notNull()
                t.column("type", .text).notNull()
                t.column("state", .text).notNull()
                t.column("outcome", .text)
                t.column("createdAt", .integer).notNull()
                t.column("attempts", .integer).notNull()
                t.column("nextAttemptAt", .integer).notNull()
                t.column("deliveredAt", .integer)
                t.column("abandonedAt", .integer)
                t.column("lastError", .text)
            }
            try db.execute(sql: "CREATE INDEX webhook_pending ON webhook_event(seq) WHERE deliveredAt IS NULL AND abandonedAt IS NULL")
        }
    }

    /// The notifications a change of `before` into `after` makes (none for drafts).
    static func recordWebhookEvents(before: DeskMessage?, after: DeskMessage, in db: Database) throws {
        guard after.state != .draft else { return }
        let now = milliseconds(Date())
        func record(_ event: String) throws {
            var row = WebhookEvent(
                seq: nil,
                event: event,
                messageId: after.id,
                type: after.type,
                state: DeskAPIState.name(after.state),
                outcome: after.outcome,
                createdAt: now,
                attempts: 0,
                nextAttemptAt: now
            )
            try row.insert(db)
        }
        if before == nil {
            try record(after.direction == .incoming ? "message.received" : "message.state")
            return
        }
        if before?.state != after.state { try record("message.state") }
        if before?.outcome == nil && after.outcome != nil && after.direction == .outgoing { try record("message.answered") }
    }

    /// The oldest undelivered notifications, in order (due or not: order is kept).
    public func pendingWebhookEvents(limit: Int = 20) throws -> [WebhookEvent] {
        try database.read { db in
            try WebhookEvent
                .filter(Column("deliveredAt") == nil && Column("abandonedAt") == nil)
                .order(Column("seq"))
                .limit(limit)
                .fetchAll(db)
        }
    }

    func webhookDelivered(_ seq: Int64, at time: Date) {
        _ = try? write { db in
            try db.execute(
                sql: "UPDATE webhook_event SET deliveredAt = ?, attempts = attempts + 1 WHERE seq = ?",
                arguments: [Self.milliseconds(time), seq]
            )
        }
    }

    func webhookFailed(_ seq: Int64, error: String, retryAt: Date?, at time: Date) {
        _ = try? write { db in
            if let retryAt {
                try db.execute(
                    sql: "UPDATE webhook_event SET attempts = attempts + 1, lastError = ?, nextAttemptAt = ? WHERE seq = ?",
                    arguments: [error, Self.milliseconds(retryAt), seq]
                )
            } else {
                try db.execute(
                    sql: "UPDATE webhook_event SET attempts = attempts + 1, lastError = ?, abandonedAt = ? WHERE seq = ?",
                    arguments: [error, Self.milliseconds(time), seq]
                )
            }
        }
    }

    public func webhookSummary() throws -> WebhookSummary {
        try database.read { db in
            var summary = WebhookSummary()
            let row = try Row.fetchOne(
                db,
                sql: """
                    SELECT
                      COUNT(*) FILTER (WHERE deliveredAt IS NULL AND abandonedAt IS NULL) AS pending,
                      COUNT(*) FILTER (WHERE deliveredAt IS NULL AND abandonedAt IS NULL AND attempts > 0) AS failing,
                      COUNT(*) FILTER (WHERE abandonedAt IS NOT NULL) AS abandoned,
                      COUNT(*) FILTER (WHERE deliveredAt IS NOT NULL) AS delivered
                    FROM webhook_event
                    """
            )
            summary.pending = row?["pending"] ?? 0
            summary.failing = row?["failing"] ?? 0
            summary.abandoned = row?["abandoned"] ?? 0
            summary.delivered = row?["delivered"] ?? 0
            if let last = try WebhookEvent.filter(Column("lastError") != nil && Column("deliveredAt") == nil).order(Column("seq").desc)
                .fetchOne(db)
            {
                summary.lastError = last.lastError
                summary.lastErrorAt = last.nextAttemptAt
            }
            return summary
        }
    }
}
