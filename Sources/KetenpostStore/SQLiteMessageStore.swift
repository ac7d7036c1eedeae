import Foundation
import GRDB
import ServiceLifecycle

/// The default backend: one SQLite file in WAL mode through a GRDB `DatabasePool`.
///
/// SQLite has a single writer, and every state change runs in one `BEGIN IMMEDIATE`
/// transaction, so a lease, an acknowledgement or a sweep sees and changes a consistent
/// queue, also when several processes share the file. Readers (status, body) never wait
/// for writers. Times are stored as REAL seconds since 1970; ids as lowercase UUID text.
/// Bodies are ciphertext and never leave this type except through `lease` and `body(id:)`.
public final class SQLiteMessageStore: RelayStore {
    let pool: DatabasePool
    private let writes: SQLiteWriteBatcher
    /// What the operator should know about the files (a data folder others may list); metadata only.
    public let warnings: [String]

    /// Opens or creates the database file (and its parent directories). Call `migrate()` before use.
    /// - Parameter readOnly: open an existing file without writing to it (`ketenpost audit verify`).
    public init(path: String, readOnly: Bool = false) throws {
        let url = URL(fileURLWithPath: path)
        if readOnly {
            guard FileManager.default.fileExists(atPath: path) else { throw DatabaseError(message: "no database at \(path)") }
            var config = Configuration()
            config.readonly = true
            pool = try DatabasePool(path: url.path, configuration: config)
            writes = SQLiteWriteBatcher(pool: pool)
            warnings = []
            return
        }
        warnings = try FilePermissions.prepare(database: url.path)
        var config = Configuration()
        config.foreignKeysEnabled = true
        // A second process (or a long sweep) holding the write lock makes us wait, not fail.
        config.busyMode = .timeout(5)
        config.prepareDatabase { db in
            // GRDB switches the writer to WAL itself; stating it keeps the requirement visible.
            if !db.configuration.readonly {
                try db.execute(sql: "PRAGMA journal_mode = WAL")
            }
            try db.execute(sql: "PRAGMA synchronous = FULL")
            if !db.configuration.readonly {
                // 64 MiB of page cache for the one writer (SQLite's default is 2 MiB): with a large
                // backlog, the id index and the inboxes stay in memory instead of being re-read.
                try db.execute(sql: "PRAGMA cache_size = -65536")
            }
        }
        pool = try DatabasePool(path: url.path, configuration: config)
        // FULL: the WAL is fsync'd at every commit, so "accepted" means durably stored (NORMAL may
        // lose the last commits on power loss). Set again here because GRDB's WAL setup runs after
        // `prepareDatabase` and switches the writer to NORMAL; the pool keeps this one writer for life.
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        writes = SQLiteWriteBatcher(pool: pool)
    }

    // MARK: - Lifetime

    /// Nothing to run: the file is open from `init` to the end. Returns at graceful shutdown or
    /// cancellation, like every store.
    public func run() async throws {
        do { try await gracefulShutdown() } catch {}
    }

    /// One process writes through this store's notifier alone: nothing to listen to.
    public func notifications() async throws -> AsyncStream<StoreNotification>? { nil }

    // MARK: - Schema

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE messages (
                        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                        id TEXT NOT NULL UNIQUE,
                        sender TEXT NOT NULL,
                        recipient TEXT NOT NULL,
                        type TEXT NOT NULL,
                        priority TEXT NOT NULL,
                        correlation_id TEXT,
                        exploitation_form TEXT,
                        region TEXT,
                        digest TEXT NOT NULL,
                        size INTEGER NOT NULL,
                        accepted_at REAL NOT NULL,
                        expires_at REAL NOT NULL,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        lease_token TEXT,
                        lease_until REAL,
                        first_delivered_at REAL,
                        last_delivered_at REAL,
                        completed_at REAL,
                        acceptance_receipt BLOB NOT NULL,
                        recipient_receipt BLOB,
                        reason_code TEXT,
                        body BLOB,
                        body_purged_at REAL
                    );
                    -- The inbox: only pending rows, in acceptance order, so a lease walks the
                    -- recipient's waiting messages and stops at LIMIT, never the completed history.
                    CREATE INDEX messages_inbox ON messages(recipient, sequence) WHERE state IN ('accepted', 'delivered');
                    -- Expiry and dead-lettering (sweep over all recipients).
                    CREATE INDEX messages_expiry ON messages(state, expires_at);
                    CREATE INDEX messages_lease ON messages(state, lease_until);
                    -- Retention purge: only rows that still hold a body.
                    CREATE INDEX messages_purge ON messages(completed_at) WHERE body IS NOT NULL;
                    """
            )
        }
        migrator.registerMigration("v2-directory") { db in
            try db.execute(sql: SQLiteMessageStore.directorySchema)
        }
        migrator.registerMigration("v3-waiting") { db in
            // Only messages nobody holds: leasing walks it without stepping over running leases.
            try db.execute(sql: "CREATE INDEX messages_waiting ON messages(recipient, sequence) WHERE state = 'accepted'")
        }
        migrator.registerMigration("v4-slim-indexes") { db in
            // Fewer index pages written per message. A lease changes `state`, so every index keyed
            // on it or filtered by it was rewritten at each lease (a random page each, with a large
            // backlog); these are filtered by `completed_at`, which a lease leaves alone and which is
            // set exactly when a message becomes final (acknowledged, rejected, expired, dead-lettered).
            // Leased rows and purgeable bodies are indexed only while they are that.
            // The replaced indexes are dropped, so this upgrade is one-way: an older relay names
            // them (INDEXED BY). Relays from this version on refuse a store with migrations they
            // do not know (`migrate`); earlier ones do not check (docs/SCALING.md: keep a copy).
            try db.execute(
                sql: """
                    CREATE INDEX messages_pending ON messages(recipient, sequence) WHERE completed_at IS NULL;
                    CREATE INDEX messages_pending_expiry ON messages(expires_at) WHERE completed_at IS NULL;
                    CREATE INDEX messages_leased ON messages(lease_until) WHERE state = 'delivered';
                    CREATE INDEX messages_purgeable ON messages(completed_at) WHERE body IS NOT NULL AND completed_at IS NOT NULL;
                    DROP INDEX messages_inbox;
                    DROP INDEX messages_expiry;
                    DROP INDEX messages_lease;
                    DROP INDEX messages_purge;
                    """
            )
        }
        migrator.registerMigration("v5-message-counts") { db in
            // Messages by type and state, kept by triggers in the writing transaction, so that a
            // metrics scrape reads a few rows instead of counting the whole table (every message
            // the store ever accepted: about a second per million rows on the benchmark machine).
            try db.execute(
                sql: """
                    CREATE TABLE message_counts (
                        type TEXT NOT NULL,
                        state TEXT NOT NULL,
                        n INTEGER NOT NULL,
                        PRIMARY KEY (type, state)
                    ) WITHOUT ROWID;
                    INSERT INTO message_counts (type, state, n) SELECT type, state, count(*) FROM messages GROUP BY type, state;
                    CREATE TRIGGER message_counts_insert AFTER INSERT ON messages BEGIN
                        INSERT INTO message_counts (type, state, n) VALUES (NEW.type, NEW.state, 1)
                            ON CONFLICT (type, state) DO UPDATE SET n = n + 1;
                    END;
                    CREATE TRIGGER message_counts_update AFTER UPDATE OF type, state ON messages
                    WHEN OLD.type IS NOT NEW.type OR OLD.state IS NOT NEW.state BEGIN
                        UPDATE message_counts SET n = n - 1 WHERE type = OLD.type AND state = OLD.state;
                        INSERT INTO message_counts (type, state, n) VALUES (NEW.type, NEW.state, 1)
                            ON CONFLICT (type, state) DO UPDATE SET n = n + 1;
                    END;
                    CREATE TRIGGER message_counts_delete AFTER DELETE ON messages BEGIN
                        UPDATE message_counts SET n = n - 1 WHERE type = OLD.type AND state = OLD.state;
                    END;
                    """
            )
        }
        migrator.registerMigration("v6-certificate-chains-and-crls") { db in
            // Intermediates registered with a partner's certificate, and the relay's CRL per
            // issuing CA (RevocationStore).
            try db.execute(
                sql: """
                    ALTER TABLE certificates ADD COLUMN chain TEXT NOT NULL DEFAULT '';
                    CREATE TABLE revocation_lists (
                        issuer_fingerprint TEXT PRIMARY KEY,
                        issuer TEXT NOT NULL,
                        source TEXT NOT NULL,
                        der BLOB NOT NULL,
                        this_update REAL,
                        next_update REAL,
                        revoked_count INTEGER NOT NULL,
                        fetched_at REAL,
                        last_error TEXT,
                        last_attempt_at REAL
                    );
                    """
            )
        }
        migrator.registerMigration("v7-sender-pending-bytes") { db in
            // The bytes each sender has waiting (the per-sender quota, limits.maxPendingBytesPerSender),
            // kept by triggers in the writing transaction like message_counts: the quota read them
            // from every pending row's table page every 5 s, 8 % of the relay's CPU with 20,000
            // messages waiting and linear in the backlog.
            try db.execute(
                sql: """
                    CREATE TABLE sender_pending_bytes (
                        sender TEXT PRIMARY KEY,
                        bytes INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    INSERT INTO sender_pending_bytes (sender, bytes)
                        SELECT sender, sum(size) FROM messages WHERE completed_at IS NULL GROUP BY sender;
                    CREATE TRIGGER sender_pending_bytes_insert AFTER INSERT ON messages WHEN NEW.completed_at IS NULL BEGIN
                        INSERT INTO sender_pending_bytes (sender, bytes) VALUES (NEW.sender, NEW.size)
                            ON CONFLICT (sender) DO UPDATE SET bytes = bytes + excluded.bytes;
                    END;
                    CREATE TRIGGER sender_pending_bytes_update AFTER UPDATE OF completed_at, size, sender ON messages
                    WHEN (OLD.completed_at IS NULL) != (NEW.completed_at IS NULL) OR OLD.size IS NOT NEW.size
                        OR OLD.sender IS NOT NEW.sender BEGIN
                        UPDATE sender_pending_bytes SET bytes = bytes - OLD.size WHERE sender = OLD.sender AND OLD.completed_at IS NULL;
                        INSERT INTO sender_pending_bytes (sender, bytes) SELECT NEW.sender, NEW.size WHERE NEW.completed_at IS NULL
                            ON CONFLICT (sender) DO UPDATE SET bytes = bytes + excluded.bytes;
                    END;
                    CREATE TRIGGER sender_pending_bytes_delete AFTER DELETE ON messages WHEN OLD.completed_at IS NULL BEGIN
                        UPDATE sender_pending_bytes SET bytes = bytes - OLD.size WHERE sender = OLD.sender;
                    END;
                    """
            )
        }
        migrator.registerMigration("v8-message-bodies") { db in
            // Bodies in a table of their own, written once. A body inline made the message row
            // span overflow pages, and SQLite rewrites a whole row on every UPDATE: each lease and
            // each acknowledgement wrote the 4 KB ciphertext again (the WAL's largest share while
            // draining). `messages.body` stays the marker the indexes and queries test: x'' while
            // the body is in message_bodies, NULL once purged. Rows from before keep their body
            // inline (read with coalesce), so the migration copies nothing. One-way: an older relay
            // would hand out the empty marker, and it refuses a store with migrations it does not know.
            try db.execute(
                sql: """
                    CREATE TABLE message_bodies (
                        sequence INTEGER PRIMARY KEY,
                        body BLOB NOT NULL
                    );
                    CREATE TRIGGER message_bodies_purge AFTER UPDATE OF body ON messages WHEN NEW.body IS NULL BEGIN
                        DELETE FROM message_bodies WHERE sequence = OLD.sequence;
                    END;
                    CREATE TRIGGER message_bodies_delete AFTER DELETE ON messages BEGIN
                        DELETE FROM message_bodies WHERE sequence = OLD.sequence;
                    END;
                    """
            )
        }
        migrator.registerMigration("v9-message-receipts") { db in
            // Receipts in tables of their own, written once, as the bodies (v8). The acceptance
            // receipt (about 2 KB with the relay's certificate) inline made each row larger than
            // half a page: one message per 4 KB table page, so a lease of 50 and each
            // acknowledgement rewrote a whole page per message, and the recipient's receipt on
            // acknowledgement pushed the row onto an overflow page. `messages.acceptance_receipt`
            // is x'' and `messages.recipient_receipt` NULL for rows written from here on; rows from
            // before keep theirs inline (read with coalesce), so nothing is copied. One-way, as v8.
            try db.execute(
                sql: """
                    CREATE TABLE acceptance_receipts (
                        sequence INTEGER PRIMARY KEY,
                        receipt BLOB NOT NULL
                    );
                    CREATE TABLE recipient_receipts (
                        sequence INTEGER PRIMARY KEY,
                        receipt BLOB NOT NULL
                    );
                    CREATE TRIGGER message_receipts_delete AFTER DELETE ON messages BEGIN
                        DELETE FROM acceptance_receipts WHERE sequence = OLD.sequence;
                        DELETE FROM recipient_receipts WHERE sequence = OLD.sequence;
                    END;
                    """
            )
        }
        return migrator
    }

    public func migrate() async throws {
        // A newer relay may have replaced indexes this version names: refuse to run on its store.
        if try await pool.read({ db in try Self.migrator.hasBeenSuperseded(db) }) {
            throw StoreError(
                .newerSchema,
                "The store at \(pool.path) was upgraded by a newer Ketenpost version. Run that version (or newer) on it."
            )
        }
        do {
            try await runMigrator()
        } catch is DatabaseError {
            // Another process may have applied `v1` between GRDB's check and our transaction
            // (the check runs outside it); ours then fails and rolls back. Once more, the
            // migration is recorded as applied and nothing runs; a real error recurs.
            try await runMigrator()
        }
    }

    private func runMigrator() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            Self.migrator.asyncMigrate(pool) { result in
                continuation.resume(with: result.map { _ in () })
            }
        }
    }

    // MARK: - Queue

    /// Group commit (`SQLiteWriteBatcher`): submissions, leases and acknowledgements that arrive
    /// while a commit is being fsync'd share the next transaction. Each caller still gets its
    /// answer only after the transaction holding its write committed.
    public func submit(_ message: NewMessage) async throws -> SubmitOutcome {
        try await writes.write { db in try Self.submit(db, message) }
    }

    /// One submission inside a write transaction; an id repeated within a batch sees the earlier insert.
    private static func submit(_ db: Database, _ message: NewMessage) throws -> SubmitOutcome {
        let id = key(message.id)
        // The insert is the existence check: a row with this id leaves it undone (no AFTER
        // INSERT trigger fires), and only then is the stored row read. Reading first cost every
        // message a full row query for the rare retry. A skipped insert still advances the
        // AUTOINCREMENT counter, as PostgreSQL's sequence does: sequences only ever increase
        // (the inbox order, paging cursors); nothing reads them as counts.
        try db.cachedStatement(
            sql: """
                INSERT INTO messages (id, sender, recipient, type, priority, correlation_id, exploitation_form, region,
                    digest, size, accepted_at, expires_at, state, attempts, acceptance_receipt, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'accepted', 0, x'', x'')
                ON CONFLICT (id) DO NOTHING
                """
        ).execute(arguments: [
            id, message.sender, message.recipient, message.type, message.priority,
            message.correlationId.map(key), message.exploitationForm, message.region,
            message.digest, message.body.count, seconds(message.acceptedAt), seconds(message.expiresAt),
        ])
        if db.changesCount == 0 {
            guard let existing = try fetch(db, id: id) else {
                throw StoreError(.unexpectedResult, "insert of a message reported a conflict, but no message has its id")
            }
            return existing.digest == message.digest && existing.sender == message.sender ? .duplicate(existing) : .conflict
        }
        // The body and the acceptance receipt in tables of their own (migrations v8 and v9); the
        // x'' above marks the body as there. (GRDB binds an empty Data as NULL, hence the coalesce.)
        let sequence = db.lastInsertedRowID
        try db.cachedStatement(sql: "INSERT INTO message_bodies (sequence, body) VALUES (?, coalesce(?, x''))").execute(arguments: [
            sequence, message.body,
        ])
        try db.cachedStatement(sql: "INSERT INTO acceptance_receipts (sequence, receipt) VALUES (?, coalesce(?, x''))").execute(
            arguments: [sequence, message.acceptanceReceipt]
        )
        // What a later read returns: times as the stored seconds, the sequence SQLite assigned.
        let stored = StoredMessage(
            id: message.id,
            sender: message.sender,
            recipient: message.recipient,
            type: message.type,
            priority: message.priority,
            correlationId: message.correlationId,
            exploitationForm: message.exploitationForm,
            region: message.region,
            digest: message.digest,
            size: message.body.count,
            acceptedAt: Date(timeIntervalSince1970: seconds(message.acceptedAt)),
            expiresAt: Date(timeIntervalSince1970: seconds(message.expiresAt)),
            state: .accepted,
            attempts: 0,
            leaseToken: nil,
            leaseUntil: nil,
            firstDeliveredAt: nil,
            lastDeliveredAt: nil,
            completedAt: nil,
            acceptanceReceipt: message.acceptanceReceipt,
            recipientReceipt: nil,
            reasonCode: nil,
            bodyPurgedAt: nil,
            sequence: sequence
        )
        try appendAudit(
            db,
            [
                AuditEvent(
                    action: "message.accepted",
                    actor: message.sender,
                    messageId: id,
                    partnerId: message.recipient,
                    detail: "type=\(message.type) size=\(message.body.count) digest=\(message.digest)"
                )
            ],
            at: message.acceptedAt
        )
        return .accepted(stored)
    }

    public func lease(
        recipient: String,
        limit: Int,
        maxBytes: Int,
        duration: TimeInterval,
        maxAttempts: Int,
        now: Date
    ) async throws -> [Lease] {
        guard limit > 0 else { return [] }
        let t = Self.seconds(now)
        return try await writes.write { db in
            try Self.expire(db, recipient: recipient, now: t)
            try Self.deadLetter(db, recipient: recipient, now: t, maxAttempts: maxAttempts)
            // Metadata first (with each body's size), bodies only of what fits the byte bound.
            let candidates = try Row.fetchAll(
                db.cachedStatement(sql: Self.deliverableSQL),
                arguments: Self.deliverableArguments(recipient: recipient, now: t, maxAttempts: maxAttempts, limit: limit)
            ).map(Self.record)
            var picked: [StoredMessage] = []
            var bytes = 0
            for message in candidates {
                if !picked.isEmpty && bytes + message.size > maxBytes { break }
                bytes += message.size
                picked.append(message)
            }
            var generator = SystemRandomNumberGenerator()
            let until = t + duration
            let leases = try picked.map { candidate in
                var message = candidate
                let body = try Data.fetchOne(
                    db.cachedStatement(sql: "\(Self.bodySelect) WHERE m.sequence = ?"),
                    arguments: [message.sequence]
                )
                let token = Self.token(using: &generator)
                try db.cachedStatement(
                    sql: """
                        UPDATE messages SET state = 'delivered', lease_token = ?, lease_until = ?, attempts = attempts + 1,
                            first_delivered_at = coalesce(first_delivered_at, ?), last_delivered_at = ?
                        WHERE sequence = ?
                        """
                ).execute(arguments: [token, until, t, t, message.sequence])
                message.state = .delivered
                message.leaseToken = token
                message.leaseUntil = Date(timeIntervalSince1970: until)
                message.attempts += 1
                // Dates as a later read returns them (built from the stored seconds).
                message.firstDeliveredAt = message.firstDeliveredAt ?? Date(timeIntervalSince1970: t)
                message.lastDeliveredAt = Date(timeIntervalSince1970: t)
                return Lease(message: message, body: body ?? Data())
            }
            try Self.appendAudit(
                db,
                leases.map {
                    AuditEvent(
                        action: "message.leased",
                        actor: recipient,
                        messageId: Self.key($0.message.id),
                        partnerId: $0.message.sender,
                        detail: "attempt=\($0.message.attempts)"
                    )
                },
                at: now
            )
            return leases
        }
    }

    /// Waiting, or leased with the lease run out; not expired; attempts left; body present.
    ///
    /// Two index walks merged by sequence: waiting messages from `messages_waiting` (a leased
    /// message leaves that index, so a lease never steps over messages other leases hold), and
    /// redeliveries from `messages_leased` (only deliveries whose lease ran out). The state terms
    /// are spelled exactly as in the partial index's WHERE, as SQLite matches them literally.
    static let deliverableSQL = """
        SELECT \(columns) FROM (
          SELECT * FROM (SELECT * FROM messages INDEXED BY messages_waiting
            WHERE recipient = ? AND state = 'accepted' AND expires_at > ? AND attempts < ? AND body IS NOT NULL
            ORDER BY sequence LIMIT ?)
          UNION ALL
          SELECT * FROM (SELECT * FROM messages INDEXED BY messages_leased
            WHERE state = 'delivered' AND lease_until <= ? AND recipient = ? AND expires_at > ? AND attempts < ? AND body IS NOT NULL
            ORDER BY sequence LIMIT ?)
        ) m ORDER BY sequence LIMIT ?
        """

    /// A message's body: in message_bodies (migration v8), or inline for rows from before; NULL
    /// once purged (the purge trigger removes the message_bodies row).
    static let bodySelect = """
        SELECT coalesce(b.body, m.body) FROM messages m LEFT JOIN message_bodies b ON b.sequence = m.sequence
        """

    static func deliverableArguments(recipient: String, now t: Double, maxAttempts: Int, limit: Int) -> StatementArguments {
        [recipient, t, maxAttempts, limit, t, recipient, t, maxAttempts, limit, limit]
    }

    public func acknowledge(
        id: UUID,
        recipient: String,
        leaseToken: String,
        receipt: Data,
        rejected: Bool,
        reasonCode: String?,
        claims: ReceiptClaims?,
        now: Date
    ) async throws -> AcknowledgeOutcome {
        let t = Self.seconds(now)
        return try await writes.write { db in
            guard let message = try Self.fetch(db, id: Self.key(id)), message.recipient == recipient else { return .notFound }
            if let claims, !claims.match(message) { return .receiptMismatch }
            if message.state.isFinal {
                // A retry of the acknowledgement that completed it is answered as before.
                return message.recipientReceipt == receipt ? .alreadyCompleted(message) : .final(message)
            }
            guard message.leaseToken == leaseToken else { return .notLeased }
            guard let until = message.leaseUntil, Self.seconds(until) > t else { return .leaseExpired }
            let state: MessageState = rejected ? .rejected : .acknowledged
            let reason = rejected ? reasonCode : nil
            try db.cachedStatement(
                sql: """
                    UPDATE messages SET state = ?, reason_code = ?, completed_at = ?, lease_token = NULL, lease_until = NULL
                    WHERE sequence = ?
                    """
            ).execute(arguments: [state.rawValue, reason, t, message.sequence])
            // In its own table, written once (migration v9): the row stays small.
            try db.cachedStatement(sql: "INSERT INTO recipient_receipts (sequence, receipt) VALUES (?, coalesce(?, x''))").execute(
                arguments: [message.sequence, receipt]
            )
            var updated = message
            updated.state = state
            updated.recipientReceipt = receipt
            updated.reasonCode = reason
            updated.completedAt = Date(timeIntervalSince1970: t)
            updated.leaseToken = nil
            updated.leaseUntil = nil
            try Self.appendAudit(
                db,
                [
                    AuditEvent(
                        action: "message.\(state.rawValue)",
                        actor: recipient,
                        messageId: Self.key(id),
                        partnerId: message.sender,
                        detail: reason.map { "reason=\($0)" }
                    )
                ],
                at: now
            )
            return .completed(updated)
        }
    }

    public func message(id: UUID) async throws -> StoredMessage? {
        try await pool.read { db in try Self.fetch(db, id: Self.key(id)) }
    }

    public func body(id: UUID) async throws -> Data? {
        try await pool.read { db in
            try Data.fetchOne(db.cachedStatement(sql: "\(Self.bodySelect) WHERE m.id = ?"), arguments: [Self.key(id)])
        }
    }

    public func sweep(now: Date, maxAttempts: Int, retention: TimeInterval) async throws -> SweepCounts {
        let t = Self.seconds(now)
        return try await transaction { db in
            var counts = SweepCounts()
            counts.expired = try Self.expire(db, recipient: nil, now: t)
            counts.deadLettered = try Self.deadLetter(db, recipient: nil, now: t, maxAttempts: maxAttempts)
            // completed_at is set exactly when a message becomes final; the state test is a second guard.
            let purgeable = "body IS NOT NULL AND completed_at IS NOT NULL AND completed_at <= ? AND state NOT IN ('accepted', 'delivered')"
            let purged = try Row.fetchAll(
                db,
                sql: "SELECT id, recipient FROM messages INDEXED BY messages_purgeable WHERE \(purgeable) ORDER BY sequence",
                arguments: [t - retention]
            )
            try db.execute(
                sql: "UPDATE messages INDEXED BY messages_purgeable SET body = NULL, body_purged_at = ? WHERE \(purgeable)",
                arguments: [t, t - retention]
            )
            counts.purged = db.changesCount
            try Self.appendAudit(
                db,
                purged.map {
                    AuditEvent(action: "message.purged", actor: "relay", messageId: $0["id"], partnerId: $0["recipient"])
                },
                at: now
            )
            return counts
        }
    }

    public func pendingCount(recipient: String) async throws -> Int {
        try await pool.read { db in
            try Int.fetchOne(
                db.cachedStatement(
                    sql: "SELECT count(*) FROM messages INDEXED BY messages_pending WHERE recipient = ? AND completed_at IS NULL"
                ),
                arguments: [recipient]
            ) ?? 0
        }
    }

    // MARK: - Shared steps

    /// Pending messages whose `expiresAt` passed become `expired` (for one recipient, or all).
    @discardableResult
    private static func expire(_ db: Database, recipient: String?, now t: Double) throws -> Int {
        // A message under a running lease is left alone: the recipient may be processing it, and
        // its acknowledgement within the lease must still complete it. It expires once the lease ends.
        var arguments: StatementArguments = [t, t]
        let scope = only(recipient, &arguments)
        let condition = expiryCondition(scope)
        // INDEXED BY: with a recipient given, SQLite would otherwise pick the pending index and walk
        // every pending message of that recipient on each lease; the expiry index only visits
        // what has expired (normally nothing: the sweep got there first).
        let affected = try Row.fetchAll(db.cachedStatement(sql: expirySelect(scope)), arguments: arguments)
        guard !affected.isEmpty else { return 0 }
        try db.execute(
            sql: """
                UPDATE messages INDEXED BY messages_pending_expiry SET state = 'expired', completed_at = ?, reason_code = 'expired', \
                lease_token = NULL, lease_until = NULL
                WHERE \(condition)
                """,
            arguments: [t] + arguments
        )
        try appendAudit(
            db,
            affected.map {
                AuditEvent(action: "message.expired", actor: "relay", messageId: $0["id"], partnerId: $0["recipient"])
            },
            at: Date(timeIntervalSince1970: t)
        )
        return affected.count
    }

    /// Delivered messages whose last lease ran out after `maxAttempts` deliveries become `dead-lettered`.
    @discardableResult
    private static func deadLetter(_ db: Database, recipient: String?, now t: Double, maxAttempts: Int) throws -> Int {
        var arguments: StatementArguments = [t, maxAttempts]
        let scope = only(recipient, &arguments)
        let condition = deadLetterCondition(scope)
        // INDEXED BY, as in `expire`: only deliveries whose lease ran out are visited.
        let affected = try Row.fetchAll(db.cachedStatement(sql: deadLetterSelect(scope)), arguments: arguments)
        guard !affected.isEmpty else { return 0 }
        try db.execute(
            sql: """
                UPDATE messages INDEXED BY messages_leased SET state = 'dead-lettered', completed_at = ?, reason_code = 'max-attempts',
                    lease_token = NULL, lease_until = NULL
                WHERE \(condition)
                """,
            arguments: [t] + arguments
        )
        try appendAudit(
            db,
            affected.map {
                AuditEvent(action: "message.dead-lettered", actor: "relay", messageId: $0["id"], partnerId: $0["recipient"])
            },
            at: Date(timeIntervalSince1970: t)
        )
        return affected.count
    }

    private static func expiryCondition(_ scope: String) -> String {
        """
        completed_at IS NULL AND expires_at <= ? AND state IN ('accepted', 'delivered')
          AND (state = 'accepted' OR lease_until IS NULL OR lease_until <= ?)\(scope)
        """
    }

    private static func deadLetterCondition(_ scope: String) -> String {
        "state = 'delivered' AND lease_until <= ? AND attempts >= ?\(scope)"
    }

    private static func expirySelect(_ scope: String) -> String {
        "SELECT id, recipient FROM messages INDEXED BY messages_pending_expiry WHERE \(expiryCondition(scope)) ORDER BY sequence"
    }

    private static func deadLetterSelect(_ scope: String) -> String {
        "SELECT id, recipient FROM messages INDEXED BY messages_leased WHERE \(deadLetterCondition(scope)) ORDER BY sequence"
    }

    /// Narrows a statement to one recipient (in `lease`) or leaves it global (in `sweep`).
    private static func only(_ recipient: String?, _ arguments: inout StatementArguments) -> String {
        guard let recipient else { return "" }
        arguments += [recipient]
        return " AND recipient = ?"
    }

    /// One `BEGIN IMMEDIATE` transaction: takes the write lock up front, so a read-then-write
    /// never fails half-way with SQLITE_BUSY when another process writes the same file.
    func transaction<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await pool.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(db)
                return .commit
            }
            guard let result else { throw DatabaseError(message: "transaction produced no result") }
            return result
        }
    }

    // MARK: - Mapping

    /// The columns `record` reads, in the order it reads them by position (GRDB's lookup by
    /// name compares lowercased names column by column: measurable on every lease and ack).
    private enum Column: String, CaseIterable {
        case sequence, id, sender, recipient, type, priority
        case correlationId = "correlation_id"
        case exploitationForm = "exploitation_form"
        case region, digest, size
        case acceptedAt = "accepted_at"
        case expiresAt = "expires_at"
        case state, attempts
        case leaseToken = "lease_token"
        case leaseUntil = "lease_until"
        case firstDeliveredAt = "first_delivered_at"
        case lastDeliveredAt = "last_delivered_at"
        case completedAt = "completed_at"
        case acceptanceReceipt = "acceptance_receipt"
        case recipientReceipt = "recipient_receipt"
        case reasonCode = "reason_code"
        case bodyPurgedAt = "body_purged_at"
        /// Only in the lease selection, after all the others.
        case body

        /// The position in a row selected with `columns` (and `body` after them).
        var position: Int { Self.allCases.firstIndex(of: self)! }

        /// How `columns` reads it from a message row `m`: the receipts from their tables
        /// (migration v9), or inline for rows written before.
        var selection: String {
            switch self {
            case .acceptanceReceipt:
                "coalesce((SELECT r.receipt FROM acceptance_receipts r WHERE r.sequence = m.sequence), m.acceptance_receipt)"
            case .recipientReceipt:
                "coalesce((SELECT r.receipt FROM recipient_receipts r WHERE r.sequence = m.sequence), m.recipient_receipt)"
            default: "m.\(rawValue)"
            }
        }
    }

    /// Every column but the body (read only where it is handed out), in `Column` order, from `m`.
    private static let columns = Column.allCases.filter { $0 != .body }.map(\.selection).joined(separator: ", ")

    private static func fetch(_ db: Database, id: String) throws -> StoredMessage? {
        try Row.fetchOne(db.cachedStatement(sql: "SELECT \(columns) FROM messages m WHERE m.id = ?"), arguments: [id]).map(record)
    }

    private static func record(_ row: Row) -> StoredMessage {
        // StatementColumnConvertible: GRDB's fast path, reading the SQLite column directly.
        func date(_ column: Column) -> Date? { (row[column.position] as Double?).map(Date.init(timeIntervalSince1970:)) }
        func uuid(_ column: Column) -> UUID? { (row[column.position] as String?).flatMap(UUID.init(uuidString:)) }
        func value<T: DatabaseValueConvertible & StatementColumnConvertible>(_ column: Column) -> T { row[column.position] }
        func optional<T: DatabaseValueConvertible & StatementColumnConvertible>(_ column: Column) -> T? { row[column.position] }
        let state: String = value(.state)
        return StoredMessage(
            id: uuid(.id)!,
            sender: value(.sender),
            recipient: value(.recipient),
            type: value(.type),
            priority: value(.priority),
            correlationId: uuid(.correlationId),
            exploitationForm: optional(.exploitationForm),
            region: optional(.region),
            digest: value(.digest),
            size: value(.size),
            acceptedAt: date(.acceptedAt)!,
            expiresAt: date(.expiresAt)!,
            // Only this type writes `state`; an unknown value would mean a newer schema, so fail safe as final.
            state: MessageState(rawValue: state) ?? .deadLettered,
            attempts: value(.attempts),
            leaseToken: optional(.leaseToken),
            leaseUntil: date(.leaseUntil),
            firstDeliveredAt: date(.firstDeliveredAt),
            lastDeliveredAt: date(.lastDeliveredAt),
            completedAt: date(.completedAt),
            acceptanceReceipt: value(.acceptanceReceipt),
            recipientReceipt: optional(.recipientReceipt),
            reasonCode: optional(.reasonCode),
            bodyPurgedAt: date(.bodyPurgedAt),
            sequence: value(.sequence)
        )
    }

    private static func key(_ id: UUID) -> String { id.uuidString.lowercased() }
    private static func seconds(_ date: Date) -> Double { date.timeIntervalSince1970 }

    /// 128 random bits as 32 lowercase hex characters.
    private static func token(using generator: inout SystemRandomNumberGenerator) -> String {
        (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    // MARK: - Diagnostics (tests)

    /// The `EXPLAIN QUERY PLAN` details of the lease selection, to check that it uses an index.
    /// The plans of the expiry and dead-letter selections a lease runs for one recipient.
    func leaseHousekeepingPlans() async throws -> [String] {
        try await pool.read { db in
            var arguments: StatementArguments = [0.0, 0.0]
            let scope = Self.only("r", &arguments)
            var deadArguments: StatementArguments = [0.0, 5]
            _ = Self.only("r", &deadArguments)
            return try Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + Self.expirySelect(scope), arguments: arguments).map {
                $0["detail"] as String
            }
                + Row.fetchAll(db, sql: "EXPLAIN QUERY PLAN " + Self.deadLetterSelect(scope), arguments: deadArguments).map {
                    $0["detail"] as String
                }
        }
    }

    func leaseQueryPlan() async throws -> [String] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "EXPLAIN QUERY PLAN " + Self.deliverableSQL,
                arguments: Self.deliverableArguments(recipient: "r", now: 0, maxAttempts: 5, limit: 10)
            )
            .map { $0["detail"] as String }
        }
    }

    /// Runs `sql` on the writer connection (tests: a TEMP trigger that makes one write fail).
    func executeOnWriter(_ sql: String) async throws {
        try await pool.writeWithoutTransaction { db in try db.execute(sql: sql) }
    }

    /// A count from `sql`, read on the writer connection (tests: invariants of stored rows).
    func countOnWriter(_ sql: String) async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: sql) ?? 0 }
    }

    /// The indexes on `messages` (tests: which migration's indexes are present).
    func indexNames() async throws -> Set<String> {
        try await pool.read { db in
            Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'"))
        }
    }

    /// Migrates up to and including `identifier` (tests: a store as an older version left it).
    func migrate(upTo identifier: String) async throws {
        try Self.migrator.migrate(pool, upTo: identifier)
    }

    /// Group-commit transactions run so far.
    var writeBatches: Int { writes.batches.load(ordering: .relaxed) }

    /// Keeps the writer connection busy for `seconds` (tests: writes arriving meanwhile queue
    /// up and run as one group-commit batch).
    func occupyWriter(seconds: Double) async throws {
        try await pool.writeWithoutTransaction { _ in Thread.sleep(forTimeInterval: seconds) }
    }

    /// Runs `body` as one write of the group-commit queue (tests: a write that misbehaves).
    func writeThroughBatcher(_ body: @escaping @Sendable (Database) throws -> Void) async throws {
        try await writes.write(body)
    }

    /// Runs a write through the group-commit queue that holds the writer for `seconds` (tests:
    /// writes arriving meanwhile all wait for the next batch, however their threads are timed).
    func occupyWriteQueue(seconds: Double) async throws {
        try await writes.write { _ in Thread.sleep(forTimeInterval: seconds) }
    }

    /// A pragma's value as the writer connection (the one that commits) sees it.
    func writerPragma(_ name: String) async throws -> String? {
        try await pool.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA \(name)") }
    }
}
