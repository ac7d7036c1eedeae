import Foundation
import PostgresNIO

/// Report and monitoring aggregates on PostgreSQL (metadata only), as in the SQLite backend.
extension PostgresMessageStore {  // ReportStore, StatsStore
    public func labelCounts(from: Date, to: Date) async throws -> [LabelCount] {
        let rows = try await client.query(
            """
            SELECT to_char(to_timestamp(floor(accepted_at)) AT TIME ZONE 'UTC', 'YYYY-MM') AS month, type, exploitation_form, region,
                   count(*)::bigint AS n
            FROM messages WHERE accepted_at >= \(from.timeIntervalSince1970) AND accepted_at < \(to.timeIntervalSince1970)
            GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
            """,
            logger: logger
        ).collect()
        return try rows.map { row in
            let (month, type, form, region, n) = try row.decode((String, String, String?, String?, Int64).self)
            return LabelCount(month: month, type: type, form: form, region: region, count: Int(n))
        }
    }

    /// Pending messages per recipient from the inbox index (one entry per pending message,
    /// not the history), and the acceptance time of the first one committed (submissions
    /// commit in `sequence` order; across instances with skewed clocks that is the oldest
    /// only approximately, as on SQLite).
    static let inboxStats: PostgresQuery = """
        SELECT p.recipient, p.n, m.accepted_at FROM (
            SELECT recipient, count(*)::bigint AS n, min(sequence) AS first FROM messages
            WHERE state IN ('accepted', 'delivered') GROUP BY recipient) p
        JOIN messages m ON m.sequence = p.first
        ORDER BY p.recipient
        """

    /// Counts by type and state: the folded counts plus the change rows not folded yet, read in
    /// one statement (one snapshot), so a concurrent fold is seen whole or not at all.
    static let stateCounts: PostgresQuery = """
        SELECT type, state, sum(n)::bigint FROM (
            SELECT type, state, n FROM message_counts UNION ALL SELECT type, state, n FROM message_count_changes) c
        GROUP BY type, state ORDER BY type, state
        """

    public func pendingBytesBySender() async throws -> [String: Int] {
        var bytes: [String: Int] = [:]
        let query: PostgresQuery = """
            SELECT sender, sum(size)::bigint FROM messages WHERE state IN ('accepted', 'delivered') GROUP BY sender
            """
        for row in try await client.query(query, logger: logger).collect() {
            let (sender, n) = try row.decode((String, Int64).self)
            bytes[sender] = Int(n)
        }
        return bytes
    }

    public func queueStats() async throws -> QueueStats {
        // Best effort: the statistics below are right with or without it.
        await foldCounts()
        let inboxes = try await client.query(Self.inboxStats, logger: logger).collect().map { row in
            let (recipient, n, oldest) = try row.decode((String, Int64, Double).self)
            return QueueStats.Inbox(recipient: recipient, pending: Int(n), oldestAcceptedAt: Date(timeIntervalSince1970: oldest))
        }
        // States that emptied stay listed with 0, as on SQLite.
        let states = try await client.query(Self.stateCounts, logger: logger).collect().map { row in
            let (type, state, n) = try row.decode((String, String, Int64).self)
            return QueueStats.StateCount(type: type, state: state, count: Int(n))
        }
        return QueueStats(inboxes: inboxes, byTypeAndState: states)
    }

    /// Change rows folded per transaction: a fold stays well under a second (about 2.4 s per
    /// million rows measured), however many piled up (e.g. while only older relays ran).
    static let foldBatch = 100_000

    /// Folds up to `foldBatch` of the change rows the triggers appended (migration 4) into
    /// `message_counts`, and says how many. One instance at a time (an advisory lock; the
    /// others skip, never wait). Writers only append change rows, so a fold never waits for
    /// them nor they for it. Failures are logged and left for the next fold.
    @discardableResult
    func foldCounts() async -> Int {
        do {
            return try await transaction { connection in
                let locked =
                    try await self.rows(connection, "SELECT pg_try_advisory_xact_lock(\(Self.countsLock))").first?.decode(Bool.self)
                    ?? false
                guard locked else { return 0 }
                let folded = try await self.rows(
                    connection,
                    """
                    WITH moved AS (
                        DELETE FROM message_count_changes
                        WHERE ctid = ANY (ARRAY(SELECT ctid FROM message_count_changes LIMIT \(Self.foldBatch)))
                        RETURNING type, state, n),
                    summed AS (SELECT type, state, sum(n)::bigint AS n, count(*) AS rows FROM moved GROUP BY type, state),
                    applied AS (
                        INSERT INTO message_counts (type, state, n) SELECT type, state, n FROM summed
                        ON CONFLICT (type, state) DO UPDATE SET n = message_counts.n + EXCLUDED.n)
                    SELECT coalesce(sum(rows), 0)::bigint FROM summed
                    """
                )
                return Int(try folded.first?.decode(Int64.self) ?? 0)
            }
        } catch {
            logger.warning("store.counts.fold-failed", metadata: ["error.type": "\(type(of: error))"])
            return 0
        }
    }
}
