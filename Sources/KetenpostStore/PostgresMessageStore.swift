import Foundation
import Logging
import NIOSSL
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// The shared backend: one PostgreSQL database for several relay instances, through PostgresNIO's
/// `PostgresClient` (a connection pool that works while this store's `run()` runs: the store is
/// a `Service` in the relay's `ServiceGroup`).
///
/// It keeps the SQLite backend's rules (the same contract tests) across instances:
/// - Every writing transaction appends its audit records last, under the one-row `audit_head`
///   lock, so the hash chain stays gapless and linear whichever instance writes.
/// - A submission takes that lock first: submissions commit one at a time, so a message's
///   `sequence` (acceptance order) is also its commit order on every instance, and no other
///   instance can be half-way through inserting the same id.
/// - Lease, expiry, dead-lettering and purge lock rows `FOR UPDATE SKIP LOCKED` in sequence
///   order: two leasers never get the same message, and none of them ever waits for a row
///   (rows locked by someone else are handled the next time). Only acknowledgements wait for
///   rows: all of a batch's at once, in sequence order. Everyone but a submission (which
///   waits for no row) takes the audit lock after its rows, so no cycle of waits can form
///   (should the server still report a deadlock or serialization failure, the transaction reruns).
/// - Times are `double precision` seconds since 1970, exactly what SQLite stores as REAL, so
///   every `Date` reads back equal. Ids are `uuid`; text sorts with `COLLATE "C"` like SQLite.
///
/// Durability: "accepted" means committed; the server's `synchronous_commit` (on by default)
/// decides whether that commit was flushed to disk, as SQLite's `synchronous = FULL` does.
public final class PostgresMessageStore: RelayStore {
    let client: PostgresClient
    let logger: Logger
    private let groupCommit = GroupCommit<NewMessage, SubmitOutcome>()
    private let acknowledgements = GroupCommit<AcknowledgeRequest, AcknowledgeOutcome>()
    private let leases = GroupCommit<LeaseRequest, [Lease]>()
    private let listeners = ListenerRegistry()

    /// Connects to `url` (see `PostgresConnectionURL` for the format and TLS modes) once `run()`
    /// runs; call `migrate()` before use.
    /// - Parameters:
    ///   - maximumConnections: the pool's size (one more is held while `notifications()` is used).
    ///   - logger: the store's and the pool's logs (PostgresNIO's background logger); metadata only. Silent when nil.
    public convenience init(url: String, maximumConnections: Int = 20, logger: Logger? = nil) throws {
        try self.init(url: PostgresConnectionURL(url), maximumConnections: maximumConnections, logger: logger)
    }

    public init(url: PostgresConnectionURL, maximumConnections: Int = 20, logger: Logger? = nil) throws {
        var configuration = PostgresClient.Configuration(
            host: url.host,
            port: url.port,
            username: url.user,
            password: url.password,
            database: url.database,
            tls: try Self.tls(for: url)
        )
        configuration.options.maximumConnections = max(2, maximumConnections)
        let logger = logger ?? Logger(label: "ketenpost.store.postgres", factory: { _ in SwiftLogNoOpLogHandler() })
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        self.url = url
        probe = PostgresConnection.Configuration(
            host: url.host,
            port: url.port,
            username: url.user,
            password: url.password,
            database: url.database,
            tls: try Self.connectionTLS(for: url)
        )
    }

    /// Where the store connects (no password in its description).
    let url: PostgresConnectionURL
    /// The pool's settings for one direct connection (`checkConnection()`).
    private let probe: PostgresConnection.Configuration

    /// Makes one connection outside the pool and closes it, so that a server that cannot be used
    /// says why at start. The pool retries a failed connection until its circuit breaker trips
    /// (about half a minute here) and then reports only that it gave up; the reason (no TLS on
    /// the server, an untrusted certificate, a refused login) went to an info-level log line.
    public func checkConnection() async throws {
        do {
            let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
            try? await connection.close()
        } catch let error as PSQLError {
            throw Self.explain(error, url: url)
        }
    }

    /// A `StoreError` with a sentence an operator can act on, for a failed first connection.
    static func explain(_ error: PSQLError, url: PostgresConnectionURL) -> StoreError {
        let server = "The PostgreSQL server at \(url.host):\(url.port)"
        switch error.code {
        case .sslUnsupported:
            return StoreError(
                .tls,
                """
                \(server) does not offer TLS, and sslmode=\(url.sslMode.rawValue) requires it: turn TLS on at the server \
                (ssl = on), or give sslmode=disable in the URL for a server on the same host or a private network.
                """
            )
        case .server where error.serverInfo?[.sqlState] == "53300":
            return StoreError(
                .serverFull,
                """
                \(server) has no connection left for user \(url.user) (SQLSTATE 53300): raise the server's max_connections \
                or the user's connection limit, or run fewer relay instances against it (each opens up to 21).
                """
            )
        case .server where error.serverInfo?[.sqlState]?.hasPrefix("53") == true:
            return StoreError(
                .serverFull,
                """
                \(server) is out of resources (SQLSTATE \(error.serverInfo?[.sqlState] ?? "")): check its disk space, its \
                memory and its log.
                """
            )
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            return StoreError(
                .loginRefused,
                """
                \(server) refused user \(url.user) for database \(url.database) (SQLSTATE \(state)): check the user, the \
                password, that the database exists, and the server's pg_hba.conf.
                """
            )
        default:
            if let underlying = error.underlying, String(reflecting: type(of: underlying)).contains("SSL") {
                return StoreError(
                    .tls,
                    """
                    TLS with \(server.dropFirst(4)) failed (\(underlying)): with sslmode=\(url.sslMode.rawValue), give \
                    sslrootcert=PATH with the CA that signed the server's certificate, or sslmode=verify-ca when the \
                    certificate does not name \(url.host).
                    """
                )
            }
            return StoreError(
                .unreachable,
                """
                \(server) cannot be reached (\(error.code)): check that it runs and listens there, and that no firewall \
                is in the way.
                """
            )
        }
    }

    deinit {
        listeners.closeAll()
    }

    /// Runs the connection pool until graceful shutdown or cancellation. The notification streams
    /// end first (each holds a connection the pool would wait for); then every connection closes.
    public func run() async throws {
        let listeners = self.listeners
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await client.run()
            } onGracefulShutdown: {
                listeners.closeAll()
            }
        } onCancel: {
            listeners.closeAll()
        }
        for task in listeners.closeAll() { await task.value }
    }

    private static func tls(for url: PostgresConnectionURL) throws -> PostgresClient.Configuration.TLS {
        if url.sslMode == .disable { return .disable }
        return .require(try tlsConfiguration(for: url))
    }

    private static func connectionTLS(for url: PostgresConnectionURL) throws -> PostgresConnection.Configuration.TLS {
        if url.sslMode == .disable { return .disable }
        return .require(try NIOSSLContext(configuration: tlsConfiguration(for: url)))
    }

    private static func tlsConfiguration(for url: PostgresConnectionURL) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        if let path = url.sslRootCertificatePath {
            // Loaded now, so that a wrong path fails at start with its name, not at the first query.
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
            } catch {
                throw StoreError(.tls, "sslrootcert \(path) is not a readable PEM certificate file")
            }
        }
        switch url.sslMode {
        case .disable: break
        case .require: tls.certificateVerification = url.sslRootCertificatePath == nil ? .none : .noHostnameVerification
        case .verifyCA: tls.certificateVerification = .noHostnameVerification
        case .verifyFull: tls.certificateVerification = .fullVerification
        }
        return tls
    }

    // MARK: - Schema

    /// Versioned migrations, each applied once in one transaction. Append; never edit an applied one.
    static let migrations: [(version: Int, statements: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE messages (
                    sequence bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    id uuid NOT NULL UNIQUE,
                    sender text NOT NULL,
                    recipient text NOT NULL,
                    type text NOT NULL,
                    priority text NOT NULL,
                    correlation_id uuid,
                    exploitation_form text,
                    region text,
                    digest text NOT NULL,
                    size bigint NOT NULL,
                    accepted_at double precision NOT NULL,
                    expires_at double precision NOT NULL,
                    state text NOT NULL,
                    attempts integer NOT NULL DEFAULT 0,
                    lease_token text,
                    lease_until double precision,
                    first_delivered_at double precision,
                    last_delivered_at double precision,
                    completed_at double precision,
                    acceptance_receipt bytea NOT NULL,
                    recipient_receipt bytea,
                    reason_code text,
                    body bytea,
                    body_purged_at double precision
                )
                """,
                // Ciphertext does not compress: store it out of line without trying.
                "ALTER TABLE messages ALTER COLUMN body SET STORAGE EXTERNAL",
                // The inbox: only pending rows, in acceptance order, so a lease walks the recipient's
                // waiting messages and stops at LIMIT, never the completed history.
                "CREATE INDEX messages_inbox ON messages (recipient, sequence) WHERE state IN ('accepted', 'delivered')",
                // Expiry, dead-lettering and retention over all recipients (sweep): pending, leased, or still holding a body.
                "CREATE INDEX messages_expiry ON messages (expires_at) WHERE state IN ('accepted', 'delivered')",
                "CREATE INDEX messages_lease ON messages (lease_until) WHERE state = 'delivered'",
                "CREATE INDEX messages_purge ON messages (completed_at) WHERE body IS NOT NULL",
                "CREATE TABLE directory_version (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)",
                "INSERT INTO directory_version (id, version) VALUES (1, 0)",
                """
                CREATE TABLE partners (
                    id text PRIMARY KEY,
                    name text NOT NULL,
                    role text NOT NULL,
                    oin text NOT NULL,
                    state text NOT NULL
                )
                """,
                """
                CREATE TABLE certificates (
                    fingerprint text PRIMARY KEY,
                    partner_id text NOT NULL REFERENCES partners (id),
                    der bytea NOT NULL,
                    uses text NOT NULL,
                    serial text NOT NULL,
                    not_before double precision NOT NULL,
                    not_after double precision NOT NULL,
                    activates_at double precision NOT NULL,
                    retires_at double precision,
                    revoked_at double precision,
                    revocation_reason text,
                    added_at double precision NOT NULL
                )
                """,
                "CREATE INDEX certificates_partner ON certificates (partner_id)",
                // The audit trail (AuditRecord): sequences assigned under the audit_head row lock, no gaps.
                """
                CREATE TABLE audit_log (
                    sequence bigint PRIMARY KEY,
                    at bigint NOT NULL,
                    action text NOT NULL,
                    actor text NOT NULL,
                    message_id text,
                    partner_id text,
                    fingerprint text,
                    detail text,
                    prev_hash text NOT NULL,
                    hash text NOT NULL
                )
                """,
                "CREATE TABLE audit_head (id integer PRIMARY KEY CHECK (id = 1), sequence bigint NOT NULL, hash text NOT NULL)",
                "INSERT INTO audit_head (id, sequence, hash) VALUES (1, 0, '\(AuditRecord.genesis)')",
                """
                CREATE TABLE audit_checkpoints (
                    sequence bigint PRIMARY KEY,
                    hash text NOT NULL,
                    at bigint NOT NULL,
                    signature bytea NOT NULL
                )
                """,
            ]
        ),
        (
            2,
            [
                // Only messages nobody holds: a lease walks it without stepping over running leases.
                "CREATE INDEX messages_waiting ON messages (recipient, sequence) WHERE state = 'accepted'"
            ]
        ),
        (
            3,
            [
                // Ordered by `sequence + 0`, which the primary key cannot deliver: with `ORDER BY
                // sequence LIMIT n` the planner walked the primary key filtering on the recipient,
                // expecting a recipient's rows to be spread evenly, and read the whole backlog when
                // they are at its end (70 ms per lease at 100,000 pending).
                // `messages_waiting` stays: a relay older than this migration may still run on the
                // database (migrations only add), and its leases order by `sequence`.
                "CREATE INDEX messages_waiting_order ON messages (recipient, (sequence + 0)) WHERE state = 'accepted'"
            ]
        ),
        (
            4,
            [
                // Message counts by type and state for the queue statistics (every metrics scrape),
                // which otherwise count the whole table, history included. Triggers append a change
                // row per transition; `foldCounts()` folds them into `message_counts`. Appending
                // takes no lock another writer waits for (a counter row updated in place would be
                // locked before the audit head, in varying order: a deadlock), and the triggers also
                // count what a relay older than this migration writes.
                "CREATE TABLE message_counts (type text NOT NULL, state text NOT NULL, n bigint NOT NULL, PRIMARY KEY (type, state))",
                "CREATE TABLE message_count_changes (type text NOT NULL, state text NOT NULL, n bigint NOT NULL)",
                """
                CREATE FUNCTION ketenpost_count_message() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
                BEGIN
                    IF TG_OP = 'INSERT' THEN
                        INSERT INTO message_count_changes (type, state, n) VALUES (NEW.type, NEW.state, 1);
                    ELSIF TG_OP = 'DELETE' THEN
                        INSERT INTO message_count_changes (type, state, n) VALUES (OLD.type, OLD.state, -1);
                    ELSE
                        INSERT INTO message_count_changes (type, state, n) VALUES (OLD.type, OLD.state, -1), (NEW.type, NEW.state, 1);
                    END IF;
                    RETURN NULL;
                END
                $$
                """,
                // No writes between the seeding count and the triggers: both in this transaction,
                // with writers held off until it commits.
                "LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE",
                "CREATE TRIGGER messages_count_insert AFTER INSERT ON messages FOR EACH ROW EXECUTE FUNCTION ketenpost_count_message()",
                "CREATE TRIGGER messages_count_delete AFTER DELETE ON messages FOR EACH ROW EXECUTE FUNCTION ketenpost_count_message()",
                """
                CREATE TRIGGER messages_count_update AFTER UPDATE OF type, state ON messages FOR EACH ROW
                WHEN (OLD.type IS DISTINCT FROM NEW.type OR OLD.state IS DISTINCT FROM NEW.state)
                EXECUTE FUNCTION ketenpost_count_message()
                """,
                "INSERT INTO message_counts (type, state, n) SELECT type, state, count(*) FROM messages GROUP BY type, state",
            ]
        ),
        (
            5,
            [
                // Intermediates registered with a partner's certificate, and the relay's CRL per
                // issuing CA (RevocationStore).
                "ALTER TABLE certificates ADD COLUMN chain text NOT NULL DEFAULT ''",
                """
                CREATE TABLE revocation_lists (
                    issuer_fingerprint text PRIMARY KEY,
                    issuer text NOT NULL,
                    source text NOT NULL,
                    der bytea NOT NULL,
                    this_update double precision,
                    next_update double precision,
                    revoked_count bigint NOT NULL,
                    fetched_at double precision,
                    last_error text,
                    last_attempt_at double precision
                )
                """,
            ]
        ),
    ]

    /// Advisory lock keys (per database): 'ktnp' + a purpose.
    private static let migrationLock: Int64 = 0x6B74_6E70_0000_0001
    static let countsLock: Int64 = 0x6B74_6E70_0000_0002

    /// Checks the connection (`checkConnection()`), then applies every migration.
    public func migrate() async throws {
        try await checkConnection()
        try await migrate(upTo: Int.max)
    }

    /// Applies the migrations up to `version` (tests build an older schema with it).
    func migrate(upTo version: Int) async throws {
        try await transaction { connection in
            // Two instances starting at once: the second waits here, then finds every migration applied.
            try await self.run(connection, "SELECT pg_advisory_xact_lock(\(Self.migrationLock))")
            try await self.run(
                connection,
                """
                CREATE TABLE IF NOT EXISTS ketenpost_migrations (
                    version integer PRIMARY KEY,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            let applied = Set(
                try await self.rows(connection, "SELECT version FROM ketenpost_migrations")
                    .map { try $0.decode(Int.self) }
            )
            // A newer relay's migrations are left alone (as GRDB's migrator does): they only add.
            for migration in Self.migrations where !applied.contains(migration.version) && migration.version <= version {
                for statement in migration.statements { try await self.run(connection, PostgresQuery(unsafeSQL: statement)) }
                try await self.run(connection, "INSERT INTO ketenpost_migrations (version) VALUES (\(migration.version))")
            }
        }
    }

    // MARK: - Queue

    /// Group commit (as in SQLite): concurrent submissions to this instance share one transaction
    /// and one commit; each caller is answered only after the commit holding its message.
    public func submit(_ message: NewMessage) async throws -> SubmitOutcome {
        try await groupCommit.submit(message) { [self] batch in try await self.submitBatch(batch) }
    }

    private func submitBatch(_ messages: [NewMessage]) async throws -> [SubmitOutcome] {
        try await transaction { connection in
            // The audit lock first: see the type's comment (sequence = commit order, no pending twin insert).
            let head = try await self.lockAuditHead(connection)
            // One statement for the batch: the audit lock is held for a few round trips instead of
            // one per message. Rows are inserted in VALUES order (so sequences follow the batch);
            // a row whose id exists, or came earlier in the batch, is skipped and not returned.
            var inserted: [UUID: StoredMessage] = [:]
            for row in try await self.rows(connection, try Self.insertMessages(messages)) {
                let stored = try Self.record(row)
                inserted[stored.id] = stored
            }
            var outcomes: [SubmitOutcome] = []
            var events: [(AuditEvent, Date)] = []
            var notify: [String] = []
            // Ids whose inserted row was answered as accepted: the first copy that matches it (the
            // row carries no trace of which copy it came from, and only one may be "accepted").
            var answered = Set<UUID>()
            for message in messages {
                if let stored = inserted[message.id], stored.digest == message.digest, stored.sender == message.sender,
                    answered.insert(message.id).inserted
                {
                    outcomes.append(.accepted(stored))
                    events.append(
                        (
                            AuditEvent(
                                action: "message.accepted",
                                actor: message.sender,
                                messageId: Self.key(message.id),
                                partnerId: message.recipient,
                                detail: "type=\(message.type) size=\(message.body.count) digest=\(message.digest)"
                            ),
                            message.acceptedAt
                        )
                    )
                    if !notify.contains(message.recipient) { notify.append(message.recipient) }
                } else {
                    // Stored before, or earlier in this batch (this transaction sees it).
                    let existing: StoredMessage?
                    if let earlier = inserted[message.id] {
                        existing = earlier
                    } else {
                        existing = try await self.fetch(connection, id: message.id)
                    }
                    guard let existing else {
                        throw StoreError(.unexpectedResult, "insert of a message reported a conflict, but no message has its id")
                    }
                    outcomes.append(
                        existing.digest == message.digest && existing.sender == message.sender ? .duplicate(existing) : .conflict
                    )
                }
            }
            try await self.appendAudit(connection, events, head: head)
            // Delivered to listeners on every instance when (and only if) this transaction commits.
            if !notify.isEmpty {
                try await self.run(connection, "SELECT pg_notify(\(Self.inboxChannel), r) FROM unnest(\(notify)::text[]) AS r")
            }
            return outcomes
        }
    }

    /// `INSERT … VALUES (…), (…) ON CONFLICT (id) DO NOTHING RETURNING` for a batch (at most
    /// `GroupCommit.maximumBatch` rows of 14 parameters, well under the protocol's 65,535).
    static func insertMessages(_ messages: [NewMessage]) throws -> PostgresQuery {
        var bindings = PostgresBindings()
        var values: [String] = []
        for message in messages {
            let n = bindings.count
            values.append("(" + (1...12).map { "$\(n + $0)" }.joined(separator: ", ") + ", 'accepted', 0, $\(n + 13), $\(n + 14))")
            bindings.append(message.id)
            bindings.append(message.sender)
            bindings.append(message.recipient)
            bindings.append(message.type)
            bindings.append(message.priority)
            bindings.append(message.correlationId)
            bindings.append(message.exploitationForm)
            bindings.append(message.region)
            bindings.append(message.digest)
            bindings.append(message.body.count)
            bindings.append(seconds(message.acceptedAt))
            bindings.append(seconds(message.expiresAt))
            try bindings.append(message.acceptanceReceipt)
            try bindings.append(message.body)
        }
        return PostgresQuery(
            unsafeSQL: """
                INSERT INTO messages (id, sender, recipient, type, priority, correlation_id, exploitation_form, region,
                    digest, size, accepted_at, expires_at, state, attempts, acceptance_receipt, body)
                VALUES \(values.joined(separator: ", "))
                ON CONFLICT (id) DO NOTHING
                RETURNING \(columns)
                """,
            binds: bindings
        )
    }

    struct LeaseRequest: Sendable {
        var recipient: String
        var limit: Int
        var maxBytes: Int
        var duration: TimeInterval
        var maxAttempts: Int
        var now: Date
    }

    /// Group commit, as for submissions and acknowledgements: leases that arrive while one is
    /// being committed share the next transaction (one hold of the audit lock, one WAL flush).
    public func lease(
        recipient: String,
        limit: Int,
        maxBytes: Int,
        duration: TimeInterval,
        maxAttempts: Int,
        now: Date
    ) async throws -> [Lease] {
        guard limit > 0 else { return [] }
        let request = LeaseRequest(
            recipient: recipient,
            limit: limit,
            maxBytes: maxBytes,
            duration: duration,
            maxAttempts: maxAttempts,
            now: now
        )
        return try await leases.submit(request) { [self] batch in try await self.leaseBatch(batch) }
    }

    private func leaseBatch(_ requests: [LeaseRequest]) async throws -> [[Lease]] {
        try await transaction { connection in
            var events: [(AuditEvent, Date)] = []
            var results: [[Lease]] = []
            // In turn: a later request for the same inbox sees what an earlier one leased
            // (same transaction) and takes the next messages.
            for request in requests {
                results.append(try await self.lease(connection, request, events: &events))
            }
            try await self.appendAudit(connection, events)
            return results
        }
    }

    private func lease(
        _ connection: PostgresConnection,
        _ request: LeaseRequest,
        events: inout [(AuditEvent, Date)]
    ) async throws -> [Lease] {
        let (recipient, limit, duration, maxAttempts, now) = (
            request.recipient, request.limit, request.duration, request.maxAttempts, request.now
        )
        let t = Self.seconds(now)
        var generator = SystemRandomNumberGenerator()
        let tokens = (0..<limit).map { _ in Self.token(using: &generator) }
        let until = t + duration
        // One statement: expire and dead-letter what is due in this inbox, pick the oldest of
        // both deliverable kinds, lease them, and return them as they were (rows locked but not
        // taken are released at commit), with the expired and dead-lettered ids in rows of their
        // own. Prepared once per connection: planning was the largest part of a lease's server time.
        let rows = try await prepared(
            connection,
            LeaseTake(
                recipient: recipient,
                now: t,
                maxAttempts: maxAttempts,
                limit: limit,
                maxBytes: Int64(clamping: request.maxBytes),
                until: until,
                tokens: tokens
            )
        )
        // The finished rows' events come first (expired, then dead-lettered, each kind in
        // sequence order), as the separate statements gave them; the statement returns them last.
        var expired: [(Int64, String)] = []
        var deadLettered: [(Int64, String)] = []
        var taken: [PostgresRow] = []
        for row in rows {
            let columns = row.makeRandomAccess()
            guard let outcome = try columns["finished_outcome"].decode(String?.self) else {
                taken.append(row)
                continue
            }
            let finished = (try columns["finished_sequence"].decode(Int64.self), Self.key(try columns["finished_id"].decode(UUID.self)))
            switch outcome {
            case "expired": expired.append(finished)
            case "dead-lettered": deadLettered.append(finished)
            default: throw StoreError(.unexpectedResult, "the lease statement reported an unknown outcome")
            }
        }
        for (action, finished) in [("message.expired", expired), ("message.dead-lettered", deadLettered)] {
            events += finished.sorted { $0.0 < $1.0 }.map {
                (AuditEvent(action: action, actor: "relay", messageId: $0.1, partnerId: recipient), Date(timeIntervalSince1970: t))
            }
        }
        let leases = try taken.map { row in
            var message = try Self.record(row)
            message.state = .delivered
            message.leaseToken = try row.makeRandomAccess()["new_lease_token"].decode(String.self)
            message.leaseUntil = Date(timeIntervalSince1970: until)
            message.attempts += 1
            // Dates as a later read returns them (built from the stored seconds).
            message.firstDeliveredAt = message.firstDeliveredAt ?? Date(timeIntervalSince1970: t)
            message.lastDeliveredAt = Date(timeIntervalSince1970: t)
            return Lease(message: message, body: try row.makeRandomAccess()["body"].decode(Data.self))
        }
        events += leases.map {
            (
                AuditEvent(
                    action: "message.leased",
                    actor: recipient,
                    messageId: Self.key($0.message.id),
                    partnerId: $0.message.sender,
                    detail: "attempt=\($0.message.attempts)"
                ), now
            )
        }
        return leases
    }

    struct AcknowledgeRequest: Sendable {
        var id: UUID
        var recipient: String
        var leaseToken: String
        var receipt: Data
        var rejected: Bool
        var reasonCode: String?
        var claims: ReceiptClaims?
        var now: Date
    }

    /// Group commit, as for submissions: acknowledgements that arrive while one is being
    /// committed share the next transaction, so they share one hold of the audit lock and one
    /// WAL flush instead of queueing for one each.
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
        let request = AcknowledgeRequest(
            id: id,
            recipient: recipient,
            leaseToken: leaseToken,
            receipt: receipt,
            rejected: rejected,
            reasonCode: reasonCode,
            claims: claims,
            now: now
        )
        return try await acknowledgements.submit(request) { [self] batch in try await self.acknowledgeBatch(batch) }
    }

    private func acknowledgeBatch(_ requests: [AcknowledgeRequest]) async throws -> [AcknowledgeOutcome] {
        try await transaction { connection in
            // The batch's rows first, in sequence order (waiting for a lease or sweep holding one,
            // which then commits), the audit lock last (`appendAudit`), as leases and the sweep
            // do: with the audit lock first, an acknowledgement could hold it while waiting for a
            // row that a lease holds while waiting for the audit lock.
            let ids = requests.map(\.id)
            // Read with the lock, so this sees what a lease or sweep committed before; an earlier
            // request of this batch for the same message is seen too (`current` is updated).
            var current: [UUID: StoredMessage] = [:]
            for row in try await self.rows(
                connection,
                "SELECT \(unescaped: Self.columns) FROM messages WHERE id = ANY (\(ids)) ORDER BY sequence FOR UPDATE"
            ) {
                let message = try Self.record(row)
                current[message.id] = message
            }
            var outcomes: [AcknowledgeOutcome] = []
            var events: [(AuditEvent, Date)] = []
            var completed: [StoredMessage] = []
            for request in requests {
                let t = Self.seconds(request.now)
                guard let message = current[request.id], message.recipient == request.recipient else {
                    outcomes.append(.notFound)
                    continue
                }
                if let claims = request.claims, !claims.match(message) {
                    outcomes.append(.receiptMismatch)
                    continue
                }
                if message.state.isFinal {
                    // A retry of the acknowledgement that completed it is answered as before.
                    outcomes.append(message.recipientReceipt == request.receipt ? .alreadyCompleted(message) : .final(message))
                    continue
                }
                guard message.leaseToken == request.leaseToken else {
                    outcomes.append(.notLeased)
                    continue
                }
                guard let until = message.leaseUntil, Self.seconds(until) > t else {
                    outcomes.append(.leaseExpired)
                    continue
                }
                let state: MessageState = request.rejected ? .rejected : .acknowledged
                let reason = request.rejected ? request.reasonCode : nil
                var updated = message
                updated.state = state
                updated.recipientReceipt = request.receipt
                updated.reasonCode = reason
                updated.completedAt = Date(timeIntervalSince1970: t)
                updated.leaseToken = nil
                updated.leaseUntil = nil
                current[request.id] = updated
                completed.append(updated)
                events.append(
                    (
                        AuditEvent(
                            action: "message.\(state.rawValue)",
                            actor: request.recipient,
                            messageId: Self.key(request.id),
                            partnerId: message.sender,
                            detail: reason.map { "reason=\($0)" }
                        ), request.now
                    )
                )
                outcomes.append(.completed(updated))
            }
            // One UPDATE for the batch (a message completes at most once in it).
            if !completed.isEmpty { try await self.run(connection, try Self.completeMessages(completed)) }
            try await self.appendAudit(connection, events)
            return outcomes
        }
    }

    /// `UPDATE messages … FROM (VALUES …)` completing each of `messages` as given.
    static func completeMessages(_ messages: [StoredMessage]) throws -> PostgresQuery {
        var bindings = PostgresBindings()
        var values: [String] = []
        for message in messages {
            let n = bindings.count
            values.append("($\(n + 1)::bigint, $\(n + 2)::text, $\(n + 3)::bytea, $\(n + 4)::text, $\(n + 5)::double precision)")
            bindings.append(message.sequence)
            bindings.append(message.state.rawValue)
            try bindings.append(message.recipientReceipt)
            bindings.append(message.reasonCode)
            bindings.append(message.completedAt.map(seconds))
        }
        return PostgresQuery(
            unsafeSQL: """
                UPDATE messages AS m SET state = v.state, recipient_receipt = v.receipt, reason_code = v.reason,
                    completed_at = v.completed_at, lease_token = NULL, lease_until = NULL
                FROM (VALUES \(values.joined(separator: ", "))) AS v (sequence, state, receipt, reason, completed_at)
                WHERE m.sequence = v.sequence
                """,
            binds: bindings
        )
    }

    public func message(id: UUID) async throws -> StoredMessage? {
        try await client.query("SELECT \(unescaped: Self.columns) FROM messages WHERE id = \(id)", logger: logger)
            .collect().first.map(Self.record)
    }

    public func body(id: UUID) async throws -> Data? {
        try await client.query("SELECT body FROM messages WHERE id = \(id)", logger: logger)
            .collect().first.flatMap { try $0.decode(Data?.self) }
    }

    public func sweep(now: Date, maxAttempts: Int, retention: TimeInterval) async throws -> SweepCounts {
        let t = Self.seconds(now)
        let counts = try await transaction { connection in
            let expired = try await self.expire(connection, recipient: nil, now: t)
            let deadLettered = try await self.deadLetter(connection, recipient: nil, now: t, maxAttempts: maxAttempts)
            // completed_at is set exactly when a message becomes final; the state test is a second guard.
            let purged = try await self.changeRows(connection, Self.purge(now: t, retention: retention))
            let events =
                expired + deadLettered
                + purged.map {
                    (AuditEvent(action: "message.purged", actor: "relay", messageId: $0.id, partnerId: $0.recipient), now)
                }
            try await self.appendAudit(connection, events)
            return SweepCounts(expired: expired.count, deadLettered: deadLettered.count, purged: purged.count)
        }
        // Also here, so that the change rows stay few when nobody reads the statistics (a few
        // batches per sweep work off a backlog of them gradually). The sweep itself has
        // committed; a failed fold is retried at the next one.
        for _ in 0..<10 where await foldCounts() == Self.foldBatch {}
        return counts
    }

    public func pendingCount(recipient: String) async throws -> Int {
        try await client.query(
            """
            SELECT count(*) FROM messages WHERE recipient = \(recipient) AND state IN ('accepted', 'delivered')
            """,
            logger: logger
        ).collect().first.map { try $0.decode(Int.self) } ?? 0
    }

    // MARK: - Shared steps

    /// Pending messages whose `expiresAt` passed become `expired` (for one recipient, or all).
    /// Returns their audit events, in sequence order.
    private func expire(_ connection: PostgresConnection, recipient: String?, now t: Double) async throws -> [(AuditEvent, Date)] {
        try await changeRows(connection, Expiry(now: t, recipient: recipient)).map {
            (
                AuditEvent(action: "message.expired", actor: "relay", messageId: $0.id, partnerId: $0.recipient),
                Date(timeIntervalSince1970: t)
            )
        }
    }

    /// Delivered messages whose last lease ran out after `maxAttempts` deliveries become `dead-lettered`.
    private func deadLetter(
        _ connection: PostgresConnection,
        recipient: String?,
        now t: Double,
        maxAttempts: Int
    ) async throws -> [(AuditEvent, Date)] {
        try await changeRows(connection, DeadLetter(now: t, maxAttempts: maxAttempts, recipient: recipient)).map {
            (
                AuditEvent(action: "message.dead-lettered", actor: "relay", messageId: $0.id, partnerId: $0.recipient),
                Date(timeIntervalSince1970: t)
            )
        }
    }

    // MARK: - Statements (one place, so that `queryPlans()` explains exactly what runs)
    //
    // The housekeeping updates lock their rows in a CTE (in sequence order, skipping rows
    // someone else holds) and then update exactly those by primary key: `= ANY (ARRAY(...))`
    // keeps the update side an index lookup whatever the planner thinks of the CTE's size.

    /// Waiting, or leased with the lease run out; not expired; attempts left; body present. The
    /// `state IN (...)` term is spelled as in `messages_inbox`'s WHERE so the planner can use it.
    /// SKIP LOCKED: a message another leaser (or an acknowledgement) holds is not ours to take.
    /// Waiting messages, from `messages_waiting_order` (a leased message leaves it, so a lease
    /// never steps over messages that other leases hold). `sequence + 0` is that index's order,
    /// one the primary key cannot give (migration 3 says why).
    static func deliverable(recipient: String, now t: Double, maxAttempts: Int, limit: Int) -> PostgresQuery {
        PostgresQuery(unsafeSQL: deliverableSQL, binds: leaseBindings(recipient: recipient, now: t, maxAttempts: maxAttempts, limit: limit))
    }

    /// Placeholders (for every lease statement): $1 recipient, $2 now, $3 maxAttempts, $4 limit.
    private static let deliverableSQL = """
        SELECT \(columns), body FROM messages
        WHERE recipient = $1 AND state = 'accepted'
          AND expires_at > $2 AND attempts < $3 AND body IS NOT NULL
        ORDER BY sequence + 0 LIMIT $4
        FOR UPDATE SKIP LOCKED
        """

    private static func leaseBindings(recipient: String, now t: Double, maxAttempts: Int, limit: Int) -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(recipient)
        binds.append(t)
        binds.append(maxAttempts)
        binds.append(limit)
        return binds
    }

    /// Deliveries whose lease ran out, longest-expired first, from `messages_lease` (ordering by
    /// `lease_until` keeps the planner on that index instead of walking the inbox). PostgreSQL
    /// allows no FOR UPDATE on a UNION, so the two kinds are selected apart and merged by sequence.
    static func redeliverable(recipient: String, now t: Double, maxAttempts: Int, limit: Int) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: redeliverableSQL,
            binds: leaseBindings(recipient: recipient, now: t, maxAttempts: maxAttempts, limit: limit)
        )
    }

    private static let redeliverableSQL = """
        SELECT \(columns), body FROM messages
        WHERE state = 'delivered' AND lease_until <= $2 AND recipient = $1
          AND expires_at > $2 AND attempts < $3 AND body IS NOT NULL
        ORDER BY lease_until, sequence LIMIT $4
        FOR UPDATE SKIP LOCKED
        """

    /// A lease in one statement: the waiting and the redeliverable messages (each selected and
    /// locked as above), the oldest `limit` of both taken in sequence order, the k-th of them
    /// given `tokens[k]` (placeholders as above, $5 lease end, $6 tokens, $7 the byte bound: the
    /// oldest message always, then while the running sum of sizes stays within it), and each returned as
    /// it was before the update, with the token it got, in sequence order.
    static func take(recipient: String, now t: Double, maxAttempts: Int, limit: Int, until: Double, tokens: [String]) -> PostgresQuery {
        PostgresQuery(
            unsafeSQL: takeSQL,
            binds: LeaseTake(
                recipient: recipient,
                now: t,
                maxAttempts: maxAttempts,
                limit: limit,
                maxBytes: .max,
                until: until,
                tokens: tokens
            ).makeBindings()
        )
    }

    ///
    /// Expiry and dead-lettering of this inbox run first in the same statement (three round trips
    /// per lease request were one): `expiring` and `dying` select exactly what `Expiry` and
    /// `DeadLetter` do for one recipient (`dying` leaves expired rows to `expiring`, as running
    /// expiry first did), and neither can meet a row the lease takes (`expires_at`, `attempts`).
    /// Their ids come back in rows of their own (`finished_*` set, the message columns NULL).
    /// The recipient test is written as in those statements, `($1 IS NULL OR recipient = $1)`,
    /// though $1 is never NULL here: the server's generic plan (a prepared statement) can then
    /// only find due rows by `expires_at` and `lease_until`; with `recipient = $1` it walked the
    /// recipient's whole inbox (10,000 rows, 94 ms, at a million pending).
    fileprivate static let takeSQL = """
        WITH expiring AS (
            SELECT sequence FROM messages
            WHERE state IN ('accepted', 'delivered') AND expires_at <= $2
              AND (state = 'accepted' OR lease_until IS NULL OR lease_until <= $2)
              AND ($1::text IS NULL OR recipient = $1)
            ORDER BY sequence FOR UPDATE SKIP LOCKED),
        expired AS (
            UPDATE messages AS m SET state = 'expired', completed_at = $2, reason_code = 'expired',
                lease_token = NULL, lease_until = NULL
            WHERE m.sequence = ANY (ARRAY(SELECT sequence FROM expiring))
            RETURNING m.sequence, m.id),
        dying AS (
            SELECT sequence FROM messages
            WHERE state = 'delivered' AND lease_until <= $2 AND attempts >= $3 AND expires_at > $2
              AND ($1::text IS NULL OR recipient = $1)
            ORDER BY sequence FOR UPDATE SKIP LOCKED),
        dead AS (
            UPDATE messages AS m SET state = 'dead-lettered', completed_at = $2, reason_code = 'max-attempts',
                lease_token = NULL, lease_until = NULL
            WHERE m.sequence = ANY (ARRAY(SELECT sequence FROM dying))
            RETURNING m.sequence, m.id),
        finished AS (
            SELECT 'expired' AS finished_outcome, sequence AS finished_sequence, id AS finished_id FROM expired
            UNION ALL SELECT 'dead-lettered', sequence, id FROM dead),
        waiting AS (\(deliverableSQL)),
        again AS (\(redeliverableSQL)),
        candidates AS (SELECT * FROM waiting UNION ALL SELECT * FROM again),
        first AS (SELECT sequence, size FROM candidates ORDER BY sequence LIMIT $4),
        counted AS (SELECT sequence, row_number() OVER (ORDER BY sequence) AS k,
                           sum(size) OVER (ORDER BY sequence) AS running FROM first),
        picked AS (SELECT sequence, k FROM counted WHERE k = 1 OR running <= $7),
        leased AS (
            UPDATE messages AS m SET state = 'delivered', lease_token = ($6::text[])[picked.k], lease_until = $5,
                attempts = m.attempts + 1, first_delivered_at = coalesce(m.first_delivered_at, $2), last_delivered_at = $2
            FROM picked WHERE m.sequence = picked.sequence
            RETURNING m.sequence, m.lease_token AS new_lease_token),
        taken AS (SELECT c.*, leased.new_lease_token FROM candidates c JOIN leased USING (sequence))
        SELECT taken.*, finished.* FROM taken FULL JOIN finished ON false ORDER BY taken.sequence, finished.finished_sequence
        """

    /// A message under a running lease is left alone: the recipient may be processing it, and
    /// its acknowledgement within the lease must still complete it. It expires once the lease ends.
    /// Rows someone else holds are skipped (never waited for): the next lease or sweep takes them.
    static func expire(recipient: String?, now t: Double) -> PostgresQuery {
        PostgresQuery(unsafeSQL: Expiry.sql, binds: Expiry(now: t, recipient: recipient).makeBindings())
    }

    static func deadLetter(recipient: String?, now t: Double, maxAttempts: Int) -> PostgresQuery {
        PostgresQuery(unsafeSQL: DeadLetter.sql, binds: DeadLetter(now: t, maxAttempts: maxAttempts, recipient: recipient).makeBindings())
    }

    /// Expiry for one inbox (at each lease) or all (`recipient` nil, the sweep), prepared.
    struct Expiry: PostgresPreparedStatement {
        static var name: String { PostgresMessageStore.preparedName("expiry") }
        static let sql = """
            WITH due AS (
                SELECT sequence FROM messages
                WHERE state IN ('accepted', 'delivered') AND expires_at <= $1
                  AND (state = 'accepted' OR lease_until IS NULL OR lease_until <= $1)
                  AND ($2::text IS NULL OR recipient = $2)
                ORDER BY sequence FOR UPDATE SKIP LOCKED)
            UPDATE messages AS m SET state = 'expired', completed_at = $1, reason_code = 'expired',
                lease_token = NULL, lease_until = NULL
            WHERE m.sequence = ANY (ARRAY(SELECT sequence FROM due))
            RETURNING m.sequence, m.id, m.recipient
            """
        static let bindingDataTypes: [PostgresDataType] = [.float8, .text]
        typealias Row = PostgresRow
        var now: Double
        var recipient: String?

        func makeBindings() -> PostgresBindings {
            var binds = PostgresBindings()
            binds.append(now)
            binds.append(recipient)
            return binds
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// Dead-lettering for one inbox or all, prepared.
    struct DeadLetter: PostgresPreparedStatement {
        static var name: String { PostgresMessageStore.preparedName("dead-letter") }
        static let sql = """
            WITH due AS (
                SELECT sequence FROM messages
                WHERE state = 'delivered' AND lease_until <= $1 AND attempts >= $2
                  AND ($3::text IS NULL OR recipient = $3)
                ORDER BY sequence FOR UPDATE SKIP LOCKED)
            UPDATE messages AS m SET state = 'dead-lettered', completed_at = $1, reason_code = 'max-attempts',
                lease_token = NULL, lease_until = NULL
            WHERE m.sequence = ANY (ARRAY(SELECT sequence FROM due))
            RETURNING m.sequence, m.id, m.recipient
            """
        static let bindingDataTypes: [PostgresDataType] = [.float8, .int8, .text]
        typealias Row = PostgresRow
        var now: Double
        var maxAttempts: Int
        var recipient: String?

        func makeBindings() -> PostgresBindings {
            var binds = PostgresBindings()
            binds.append(now)
            binds.append(maxAttempts)
            binds.append(recipient)
            return binds
        }

        func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
    }

    /// completed_at is set exactly when a message becomes final; the state test is a second guard.
    static func purge(now t: Double, retention: TimeInterval) -> PostgresQuery {
        """
        WITH due AS (
            SELECT sequence FROM messages
            WHERE body IS NOT NULL AND completed_at <= \(t - retention) AND state NOT IN ('accepted', 'delivered')
            ORDER BY sequence FOR UPDATE SKIP LOCKED)
        UPDATE messages AS m SET body = NULL, body_purged_at = \(t)
        WHERE m.sequence = ANY (ARRAY(SELECT sequence FROM due))
        RETURNING m.sequence, m.id, m.recipient
        """
    }

    // MARK: - Diagnostics (tests)

    /// Whether the server sees this store's session as TLS-encrypted.
    func sessionIsEncrypted() async throws -> Bool {
        try await client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: logger)
            .collect().first.map { try $0.decode(Bool.self) } ?? false
    }

    /// `EXPLAIN` of each housekeeping statement with sequential scans priced out, so that a
    /// test sees whether an index can serve it (on a tiny table the planner would scan anyway).
    func queryPlans() async throws -> [String: String] {
        let statements: [(String, PostgresQuery)] = [
            ("lease", Self.deliverable(recipient: "r", now: 0, maxAttempts: 5, limit: 10)),
            ("lease.again", Self.redeliverable(recipient: "r", now: 0, maxAttempts: 5, limit: 10)),
            ("lease.take", Self.take(recipient: "r", now: 0, maxAttempts: 5, limit: 10, until: 60, tokens: ["t"])),
            ("expire.recipient", Self.expire(recipient: "r", now: 0)),
            ("expire.all", Self.expire(recipient: nil, now: 0)),
            ("deadLetter.recipient", Self.deadLetter(recipient: "r", now: 0, maxAttempts: 5)),
            ("deadLetter.all", Self.deadLetter(recipient: nil, now: 0, maxAttempts: 5)),
            ("purge", Self.purge(now: 0, retention: 0)),
            ("stats.inboxes", Self.inboxStats),
        ]
        return try await transaction { connection in
            try await self.run(connection, "SET LOCAL enable_seqscan = off")
            var plans: [String: String] = [:]
            for (name, query) in statements {
                let lines = try await self.rows(connection, PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds))
                plans[name] = try lines.map { try $0.decode(String.self) }.joined(separator: "\n")
            }
            return plans
        }
    }

    /// The plan of a lease for a recipient whose `waiting` messages sit at the end of a backlog of
    /// `others` messages for 100 other recipients (filled in SQL, statistics analysed), with the
    /// planner's normal settings. Leaves the rows in place.
    func leasePlanBehindBacklog(others: Int, waiting: Int) async throws -> String {
        try await transaction { connection in
            let fill = { (count: Int, recipient: String) -> PostgresQuery in
                """
                INSERT INTO messages (id, sender, recipient, type, priority, digest, size, accepted_at, expires_at,
                                      state, acceptance_receipt, body)
                SELECT gen_random_uuid(), 's', \(recipient) || CASE WHEN \(recipient) = 'r' THEN '' ELSE (n % 100)::text END,
                       'signal', 'normal', md5(n::text), 8, 0, 1e12, 'accepted', '\\x00', '\\x00'
                FROM generate_series(1, \(count)) AS n
                """
            }
            try await self.run(connection, fill(others, "other-"))
            try await self.run(connection, fill(waiting, "r"))
        }
        try await client.query("ANALYZE messages", logger: logger).collect()
        let query = Self.deliverable(recipient: "r", now: 0, maxAttempts: 5, limit: 10)
        let lines = try await client.query(PostgresQuery(unsafeSQL: "EXPLAIN " + query.sql, binds: query.binds), logger: logger).collect()
        return try lines.map { try $0.decode(String.self) }.joined(separator: "\n")
    }

    /// The plan the server may settle on for the prepared lease statement after a few runs (a
    /// generic plan, made without the parameters' values), on whatever the table holds.
    func genericLeasePlan() async throws -> String {
        try await transaction { connection in
            try await self.run(connection, "SET LOCAL plan_cache_mode = force_generic_plan")
            // A name of its own: a PREPARE outlives a rolled-back transaction on the pooled connection.
            let name = "generic_take_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
            try await self.run(
                connection,
                PostgresQuery(unsafeSQL: "PREPARE \(name) (text, float8, int8, int8, float8, text[], int8) AS " + LeaseTake.sql)
            )
            let lines = try await self.rows(
                connection,
                PostgresQuery(unsafeSQL: "EXPLAIN EXECUTE \(name)('r', 0, 5, 10, 60, ARRAY['t'], 16777216)")
            )
            try await self.run(connection, PostgresQuery(unsafeSQL: "DEALLOCATE \(name)"))
            return try lines.map { try $0.decode(String.self) }.joined(separator: "\n")
        }
    }

    /// As below, for a prepared statement.
    private func changeRows<Statement: PostgresPreparedStatement>(
        _ connection: PostgresConnection,
        _ statement: Statement
    ) async throws
        -> [(sequence: Int64, id: String, recipient: String)] where Statement.Row == PostgresRow
    {
        try Self.changes(try await prepared(connection, statement))
    }

    /// Runs a prepared statement (prepared on first use per connection, by name). PostgresNIO
    /// keeps a failed preparation's error under that name for the life of the connection, so
    /// after any error the names move on to a new generation: the next use prepares afresh.
    private func prepared<Statement: PostgresPreparedStatement>(
        _ connection: PostgresConnection,
        _ statement: Statement
    ) async throws -> [PostgresRow] where Statement.Row == PostgresRow {
        do {
            var rows: [PostgresRow] = []
            for try await row in try await connection.execute(statement, logger: logger) { rows.append(row) }
            return rows
        } catch {
            Self.preparedGeneration.add(1, ordering: .relaxed)
            throw error
        }
    }

    /// Part of every prepared statement's name (see `prepared`).
    static let preparedGeneration = Atomic<Int>(0)
    static func preparedName(_ base: String) -> String { "ketenpost.\(base).\(preparedGeneration.load(ordering: .relaxed))" }

    /// Runs an `UPDATE … RETURNING m.sequence, m.id, m.recipient` and gives the rows in sequence
    /// order (RETURNING has none of its own), ids as the audit trail writes them.
    private func changeRows(
        _ connection: PostgresConnection,
        _ query: PostgresQuery
    ) async throws -> [(sequence: Int64, id: String, recipient: String)] {
        try Self.changes(try await rows(connection, query))
    }

    private static func changes(_ rows: [PostgresRow]) throws -> [(sequence: Int64, id: String, recipient: String)] {
        try rows.map { row in
            let (sequence, id, recipient) = try row.decode((Int64, UUID, String).self)
            return (sequence, Self.key(id), recipient)
        }.sorted { $0.sequence < $1.sequence }
    }

    // MARK: - Connections and transactions

    /// One transaction on one pooled connection. Rolled back when `body` throws (the error is
    /// rethrown as it is, e.g. a directory `StoreError`). A deadlock or serialization failure
    /// reported by the server (not expected with the lock order above, but cheap to survive)
    /// runs the whole transaction again.
    func transaction<T: Sendable>(
        level: String? = nil,
        _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        var attempt = 1
        while true {
            do {
                return try await client.withConnection { connection in
                    try await self.run(connection, level.map { PostgresQuery(unsafeSQL: "BEGIN ISOLATION LEVEL \($0)") } ?? "BEGIN")
                    do {
                        let value = try await body(connection)
                        try await self.run(connection, "COMMIT")
                        return value
                    } catch {
                        // A failed ROLLBACK means the connection is gone; the pool replaces it.
                        try? await self.run(connection, "ROLLBACK")
                        throw error
                    }
                }
            } catch let error as PSQLError where attempt < 5 && Self.isTransient(error) {
                logger.debug(
                    "store.transaction.retry",
                    metadata: ["attempt": "\(attempt)", "sqlstate": "\(error.serverInfo?[.sqlState] ?? "")"]
                )
                attempt += 1
            }
        }
    }

    private static func isTransient(_ error: PSQLError) -> Bool {
        // 40001 serialization_failure, 40P01 deadlock_detected.
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40001" || state == "40P01"
    }

    func rows(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> [PostgresRow] {
        try await connection.query(query, logger: logger).collect()
    }

    func run(_ connection: PostgresConnection, _ query: PostgresQuery) async throws {
        _ = try await connection.query(query, logger: logger).collect()
    }

    // MARK: - Mapping

    /// Every column but the body, which is only read where it is handed out.
    private static let columns = """
        sequence, id, sender, recipient, type, priority, correlation_id, exploitation_form, region, digest, size,
        accepted_at, expires_at, state, attempts, lease_token, lease_until, first_delivered_at, last_delivered_at,
        completed_at, acceptance_receipt, recipient_receipt, reason_code, body_purged_at
        """

    private func fetch(_ connection: PostgresConnection, id: UUID, forUpdate: Bool = false) async throws -> StoredMessage? {
        try await rows(
            connection,
            """
            SELECT \(unescaped: Self.columns) FROM messages WHERE id = \(id)\(unescaped: forUpdate ? " FOR UPDATE" : "")
            """
        ).first.map(Self.record)
    }

    private static func record(_ row: PostgresRow) throws -> StoredMessage {
        let row = row.makeRandomAccess()
        func date(_ column: String) throws -> Date? { try row[column].decode(Double?.self).map(Date.init(timeIntervalSince1970:)) }
        func required<T>(_ value: T?, _ column: String) throws -> T {
            guard let value else { throw StoreError(.unexpectedResult, "messages.\(column) is NULL") }
            return value
        }
        let state = try row["state"].decode(String.self)
        return StoredMessage(
            id: try row["id"].decode(UUID.self),
            sender: try row["sender"].decode(String.self),
            recipient: try row["recipient"].decode(String.self),
            type: try row["type"].decode(String.self),
            priority: try row["priority"].decode(String.self),
            correlationId: try row["correlation_id"].decode(UUID?.self),
            exploitationForm: try row["exploitation_form"].decode(String?.self),
            region: try row["region"].decode(String?.self),
            digest: try row["digest"].decode(String.self),
            size: try row["size"].decode(Int.self),
            acceptedAt: try required(date("accepted_at"), "accepted_at"),
            expiresAt: try required(date("expires_at"), "expires_at"),
            // Only this type writes `state`; an unknown value would mean a newer schema, so fail safe as final.
            state: MessageState(rawValue: state) ?? .deadLettered,
            attempts: try row["attempts"].decode(Int.self),
            leaseToken: try row["lease_token"].decode(String?.self),
            leaseUntil: try date("lease_until"),
            firstDeliveredAt: try date("first_delivered_at"),
            lastDeliveredAt: try date("last_delivered_at"),
            completedAt: try date("completed_at"),
            acceptanceReceipt: try row["acceptance_receipt"].decode(Data.self),
            recipientReceipt: try row["recipient_receipt"].decode(Data?.self),
            reasonCode: try row["reason_code"].decode(String?.self),
            bodyPurgedAt: try date("body_purged_at"),
            sequence: try row["sequence"].decode(Int64.self)
        )
    }

    static func key(_ id: UUID) -> String { id.uuidString.lowercased() }
    static func seconds(_ date: Date) -> Double { date.timeIntervalSince1970 }

    /// 128 random bits as 32 lowercase hex characters.
    private static func token(using generator: inout SystemRandomNumberGenerator) -> String {
        (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    // MARK: - Notifications

    static let inboxChannel = "ketenpost_inbox"
    static let directoryChannel = "ketenpost_directory"

    /// LISTENs on both channels on a connection of its own (held from the pool) and returns once
    /// the server confirmed it, so every change committed after this returns is heard.
    /// If that connection breaks, it reconnects; what was sent in between is lost (so the
    /// relay keeps a slow fallback poll), and a `.directory` is yielded so that it reloads.
    public func notifications() async throws -> AsyncStream<StoreNotification>? {
        let (stream, continuation) = AsyncStream<StoreNotification>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        let (ready, readyContinuation) = AsyncStream<Result<Void, any Error>>.makeStream()
        let client = self.client
        let logger = self.logger
        let task = try listeners.add(continuation) {
            Task.detached { await Self.listen(client: client, logger: logger, into: continuation, ready: readyContinuation) }
        }
        var outcome: Result<Void, any Error> = .failure(StoreError(.closed, "notifications() ended: the store stopped"))
        for await result in ready {
            outcome = result
            break
        }
        do { try outcome.get() } catch {
            task.cancel()
            continuation.finish()
            throw error
        }
        return stream
    }

    private static func listen(
        client: PostgresClient,
        logger: Logger,
        into continuation: AsyncStream<StoreNotification>.Continuation,
        ready: AsyncStream<Result<Void, any Error>>.Continuation
    ) async {
        var listening = false
        while !Task.isCancelled {
            do {
                try await client.withConnection { connection in
                    try await connection.listen(on: inboxChannel) { inbox in
                        try await connection.listen(on: directoryChannel) { directory in
                            if listening {
                                // Reconnected: changes in between went unheard.
                                continuation.yield(.directory)
                            } else {
                                listening = true
                                ready.yield(.success(()))
                                ready.finish()
                            }
                            try await withThrowingTaskGroup(of: Void.self) { group in
                                group.addTask { for try await note in inbox { continuation.yield(.inbox(recipient: note.payload)) } }
                                group.addTask { for try await _ in directory { continuation.yield(.directory) } }
                                // Either ends: the connection is gone (or we are cancelled); listen anew.
                                try await group.next()
                                group.cancelAll()
                            }
                        }
                    }
                }
            } catch {
                if !listening {
                    ready.yield(.failure(error))
                    ready.finish()
                    return
                }
                if Task.isCancelled { break }
                logger.warning("store.notifications.reconnect", metadata: ["error.type": "\(type(of: error))"])
            }
            if Task.isCancelled { break }
            try? await Task.sleep(for: .seconds(1))
        }
        ready.finish()
        continuation.finish()
    }
}

/// The running `notifications()` streams, so that the end of `run()` ends them.
private final class ListenerRegistry: Sendable {
    private struct State {
        var closed = false
        var next = 0
        var active: [Int: (task: Task<Void, Never>, continuation: AsyncStream<StoreNotification>.Continuation)] = [:]
    }

    private let state = Mutex(State())

    func add(
        _ continuation: AsyncStream<StoreNotification>.Continuation,
        start: () -> Task<Void, Never>
    ) throws -> Task<Void, Never> {
        let (task, id) = try state.withLock { state in
            guard !state.closed else { throw StoreError(.closed, "notifications() after the store stopped") }
            let task = start()
            state.next += 1
            state.active[state.next] = (task, continuation)
            return (task, state.next)
        }
        continuation.onTermination = { [weak self] _ in
            task.cancel()
            self?.state.withLock { _ = $0.active.removeValue(forKey: id) }
        }
        return task
    }

    /// Stops every stream and refuses new ones; returns the tasks to wait for.
    @discardableResult
    func closeAll() -> [Task<Void, Never>] {
        let active = state.withLock { state in
            state.closed = true
            defer { state.active = [:] }
            return Array(state.active.values)
        }
        for entry in active {
            entry.task.cancel()
            entry.continuation.finish()
        }
        return active.map(\.task)
    }
}

/// The lease statement (`PostgresMessageStore.take`), as a prepared statement. Its columns are
/// listed, and migrations only add, so a plan a running instance cached keeps its result type.
struct LeaseTake: PostgresPreparedStatement {
    static var name: String { PostgresMessageStore.preparedName("lease") }
    static let sql = PostgresMessageStore.takeSQL
    // The parameters' types as the binds send them (the server would infer integer for $3).
    static let bindingDataTypes: [PostgresDataType] = [.text, .float8, .int8, .int8, .float8, .textArray, .int8]
    typealias Row = PostgresRow

    var recipient: String
    var now: Double
    var maxAttempts: Int
    var limit: Int
    /// The byte bound ($7): the batch stops before the message that would pass it (never before the first).
    var maxBytes: Int64
    var until: Double
    var tokens: [String]

    func makeBindings() -> PostgresBindings {
        var binds = PostgresBindings()
        binds.append(recipient)
        binds.append(now)
        binds.append(maxAttempts)
        binds.append(limit)
        binds.append(until)
        binds.append(tokens)
        binds.append(maxBytes)
        return binds
    }

    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}
