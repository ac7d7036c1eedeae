import Foundation
import PostgresNIO

/// Report and monitoring aggregates on PostgreSQL (metadata only), as in the SQLite backend.
extension PostgresMessageStore: ReportStore, StatsStore {
    public func labelCounts(from: Date, to: Date) async throws -> [LabelCount] {
        let rows = try await client.query("""
            SELECT to_char(to_timestamp(floor(accepted_at)) AT TIME ZONE 'UTC', 'YYYY-MM') AS month, type, exploitation_form, region,
                   count(*)::bigint AS n
            FROM messages WHERE accepted_at >= \(from.timeIntervalSince1970) AND accepted_at < \(to.timeIntervalSince1970)
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """, logger: logger).collect()
        return try rows.map { row in
            let (month, type, form, region, n) = try row.decode((String, String, String?, String?, Int64).self)
            return LabelCount(month: month, type: type, form: form, region: region, count: Int(n))
        }
    }

    public func queueStats() async throws -> QueueStats {
        let inboxes = try await client.query("""
            SELECT recipient, count(*)::bigint, min(accepted_at) FROM messages
            WHERE state IN ('accepted', 'delivered') GROUP BY recipient ORDER BY recipient
            """, logger: logger).collect().map { row in
            let (recipient, n, oldest) = try row.decode((String, Int64, Double?).self)
            return QueueStats.Inbox(recipient: recipient, pending: Int(n), oldestAcceptedAt: oldest.map(Date.init(timeIntervalSince1970:)))
        }
        let states = try await client.query("SELECT type, state, count(*)::bigint FROM messages GROUP BY type, state ORDER BY type, state",
                                            logger: logger).collect().map { row in
            let (type, state, n) = try row.decode((String, String, Int64).self)
            return QueueStats.StateCount(type: type, state: state, count: Int(n))
        }
        return QueueStats(inboxes: inboxes, byTypeAndState: states)
    }
}
