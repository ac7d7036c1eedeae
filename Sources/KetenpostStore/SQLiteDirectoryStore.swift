import Foundation
import GRDB

/// The directory tables of the SQLite backend, in the same file as the queue.
extension SQLiteMessageStore {  // DirectoryStore
    static let directorySchema = """
        CREATE TABLE directory_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
        INSERT INTO directory_version (id, version) VALUES (1, 0);
        CREATE TABLE partners (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            oin TEXT NOT NULL,
            state TEXT NOT NULL
        );
        CREATE TABLE certificates (
            fingerprint TEXT PRIMARY KEY,
            partner_id TEXT NOT NULL REFERENCES partners(id),
            der BLOB NOT NULL,
            uses TEXT NOT NULL,
            serial TEXT NOT NULL,
            not_before REAL NOT NULL,
            not_after REAL NOT NULL,
            activates_at REAL NOT NULL,
            retires_at REAL,
            revoked_at REAL,
            revocation_reason TEXT,
            added_at REAL NOT NULL
        );
        CREATE INDEX certificates_partner ON certificates(partner_id);
        -- The audit trail: every state change of messages and of the directory, metadata only,
        -- hash-chained (AuditRecord). Sequences are assigned in the write transaction: no gaps.
        CREATE TABLE audit_log (
            sequence INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            action TEXT NOT NULL,
            actor TEXT NOT NULL,
            message_id TEXT,
            partner_id TEXT,
            fingerprint TEXT,
            detail TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        -- The relay's signatures over the chain head.
        CREATE TABLE audit_checkpoints (
            sequence INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            at INTEGER NOT NULL,
            signature BLOB NOT NULL
        );
        """

    public func directoryVersion() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT version FROM directory_version WHERE id = 1") ?? 0 }
    }

    public func directorySnapshot() async throws -> DirectorySnapshot {
        // One read transaction: version, partners and certificates are consistent.
        try await pool.read { db in
            let version = try Int64.fetchOne(db, sql: "SELECT version FROM directory_version WHERE id = 1") ?? 0
            let partners = try Row.fetchAll(db, sql: "SELECT id, name, role, oin, state FROM partners ORDER BY id").map {
                DirectoryPartner(id: $0["id"], name: $0["name"], role: $0["role"], oin: $0["oin"], state: $0["state"])
            }
            let certificates = try Row.fetchAll(db, sql: "SELECT * FROM certificates ORDER BY partner_id, added_at, fingerprint")
                .map(Self.certificate)
            return DirectorySnapshot(version: version, partners: partners, certificates: certificates)
        }
    }

    @discardableResult
    public func applyDirectory(_ changes: [DirectoryChange], actor: String, at: Date) async throws -> Int64 {
        try await transaction { db in
            var events: [AuditEvent] = []
            for change in changes {
                var partnerID: String?
                var fingerprint: String?
                switch change {
                case .addPartner(let p):
                    guard try !Bool.exists(db, "SELECT 1 FROM partners WHERE id = ?", [p.id]) else {
                        throw StoreError(.partnerExists, subject: p.id)
                    }
                    try db.execute(
                        sql: "INSERT INTO partners (id, name, role, oin, state) VALUES (?, ?, ?, ?, ?)",
                        arguments: [p.id, p.name, p.role, p.oin, p.state]
                    )
                    partnerID = p.id
                case .setPartnerState(let id, let state):
                    try db.execute(sql: "UPDATE partners SET state = ? WHERE id = ?", arguments: [state, id])
                    guard db.changesCount == 1 else { throw StoreError(.partnerNotFound, subject: id) }
                    partnerID = id
                case .addCertificate(let c):
                    guard try Bool.exists(db, "SELECT 1 FROM partners WHERE id = ?", [c.partnerID]) else {
                        throw StoreError(.partnerNotFound, subject: c.partnerID)
                    }
                    guard try !Bool.exists(db, "SELECT 1 FROM certificates WHERE fingerprint = ?", [c.fingerprint]) else {
                        throw StoreError(.certificateExists, subject: c.fingerprint)
                    }
                    try db.execute(
                        sql: """
                            INSERT INTO certificates (fingerprint, partner_id, der, chain, uses, serial, not_before, not_after,
                                activates_at, retires_at, revoked_at, revocation_reason, added_at)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: [
                            c.fingerprint, c.partnerID, c.der, c.chainText, c.uses.map(\.rawValue).joined(separator: ","), c.serial,
                            c.notBefore.timeIntervalSince1970, c.notAfter.timeIntervalSince1970,
                            c.activatesAt.timeIntervalSince1970, c.retiresAt?.timeIntervalSince1970,
                            c.revokedAt?.timeIntervalSince1970, c.revocationReason, c.addedAt.timeIntervalSince1970,
                        ]
                    )
                    partnerID = c.partnerID
                    fingerprint = c.fingerprint
                case .retireCertificate(let fp, let until):
                    partnerID = try Self.livePartner(db, fingerprint: fp)
                    // Only ever earlier: a second rotation cannot extend an overlap already running.
                    try db.execute(
                        sql: "UPDATE certificates SET retires_at = MIN(COALESCE(retires_at, ?), ?) WHERE fingerprint = ?",
                        arguments: [until.timeIntervalSince1970, until.timeIntervalSince1970, fp]
                    )
                    fingerprint = fp
                case .revokeCertificate(let fp, let when, let reason):
                    partnerID = try Self.livePartner(db, fingerprint: fp)
                    try db.execute(
                        sql: "UPDATE certificates SET revoked_at = ?, revocation_reason = ? WHERE fingerprint = ?",
                        arguments: [when.timeIntervalSince1970, reason, fp]
                    )
                    fingerprint = fp
                }
                events.append(
                    AuditEvent(
                        action: change.action,
                        actor: actor,
                        partnerId: partnerID,
                        fingerprint: fingerprint,
                        detail: change.auditDetail
                    )
                )
            }
            try Self.appendAudit(db, events, at: at)
            try db.execute(sql: "UPDATE directory_version SET version = version + 1 WHERE id = 1")
            return try Int64.fetchOne(db, sql: "SELECT version FROM directory_version WHERE id = 1") ?? 0
        }
    }

    /// The partner of a certificate that is not revoked (a revoked certificate never changes again).
    private static func livePartner(_ db: Database, fingerprint: String) throws -> String {
        guard
            let row = try Row.fetchOne(
                db,
                sql: "SELECT partner_id, revoked_at FROM certificates WHERE fingerprint = ?",
                arguments: [fingerprint]
            )
        else {
            throw StoreError(.certificateNotFound, subject: fingerprint)
        }
        guard (row["revoked_at"] as Double?) == nil else { throw StoreError(.certificateRevoked, subject: fingerprint) }
        return row["partner_id"]
    }

    private static func certificate(_ row: Row) -> DirectoryCertificate {
        func date(_ column: String) -> Date? { (row[column] as Double?).map(Date.init(timeIntervalSince1970:)) }
        let uses = (row["uses"] as String).split(separator: ",").compactMap { CertificateUse(rawValue: String($0)) }
        return DirectoryCertificate(
            fingerprint: row["fingerprint"],
            partnerID: row["partner_id"],
            der: row["der"],
            chain: DirectoryCertificate.chain(fromText: row["chain"]),
            uses: uses,
            serial: row["serial"],
            notBefore: date("not_before")!,
            notAfter: date("not_after")!,
            activatesAt: date("activates_at")!,
            retiresAt: date("retires_at"),
            revokedAt: date("revoked_at"),
            revocationReason: row["revocation_reason"],
            addedAt: date("added_at")!
        )
    }
}

extension SQLiteMessageStore {  // AuditStore
    /// Appends hash-chained records inside the caller's write transaction (which holds the
    /// write lock, so the head read here is the head the new records follow).
    static func appendAudit(_ db: Database, _ events: [AuditEvent], at date: Date) throws {
        guard !events.isEmpty else { return }
        let head = try Row.fetchOne(db.cachedStatement(sql: "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1"))
        var sequence: Int64 = head?["sequence"] ?? 0
        var previous: String = head?["hash"] ?? AuditRecord.genesis
        let at = AuditRecord.milliseconds(date)
        for event in events {
            sequence += 1
            let record = AuditRecord(sequence: sequence, at: at, event: event, prevHash: previous)
            try db.cachedStatement(
                sql: """
                    INSERT INTO audit_log (sequence, at, action, actor, message_id, partner_id, fingerprint, detail, prev_hash, hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(arguments: [
                record.sequence, record.at, record.action, record.actor, record.messageId, record.partnerId,
                record.fingerprint, record.detail, record.prevHash, record.hash,
            ])
            previous = record.hash
        }
    }

    public func auditHead() async throws -> (sequence: Int64, hash: String)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
                .map { (sequence: $0["sequence"] as Int64, hash: $0["hash"] as String) }
        }
    }

    public func auditRecords(after sequence: Int64, limit: Int) async throws -> [AuditRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM audit_log WHERE sequence > ? ORDER BY sequence LIMIT ?",
                arguments: [sequence, limit]
            ).map {
                AuditRecord(
                    sequence: $0["sequence"],
                    at: $0["at"],
                    action: $0["action"],
                    actor: $0["actor"],
                    messageId: $0["message_id"],
                    partnerId: $0["partner_id"],
                    fingerprint: $0["fingerprint"],
                    detail: $0["detail"],
                    prevHash: $0["prev_hash"],
                    hash: $0["hash"]
                )
            }
        }
    }

    public func addAuditCheckpoint(_ checkpoint: AuditCheckpoint) async throws {
        try await transaction { db in
            try db.execute(
                sql: "INSERT OR IGNORE INTO audit_checkpoints (sequence, hash, at, signature) VALUES (?, ?, ?, ?)",
                arguments: [checkpoint.sequence, checkpoint.hash, checkpoint.at, checkpoint.signature]
            )
        }
    }

    public func auditCheckpoints() async throws -> [AuditCheckpoint] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit_checkpoints ORDER BY sequence").map {
                AuditCheckpoint(sequence: $0["sequence"], hash: $0["hash"], at: $0["at"], signature: $0["signature"])
            }
        }
    }
}

extension Bool {
    fileprivate static func exists(_ db: Database, _ sql: String, _ arguments: StatementArguments) throws -> Bool {
        try Row.fetchOne(db, sql: sql, arguments: arguments) != nil
    }
}

extension SQLiteMessageStore {  // ReportStore
    public func labelCounts(from: Date, to: Date) async throws -> [LabelCount] {
        try await pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT strftime('%Y-%m', CAST(accepted_at AS INTEGER), 'unixepoch') AS month, type, exploitation_form, region,
                           count(*) AS n
                    FROM messages WHERE accepted_at >= ? AND accepted_at < ?
                    GROUP BY month, type, exploitation_form, region
                    ORDER BY month, type, exploitation_form, region
                    """,
                arguments: [from.timeIntervalSince1970, to.timeIntervalSince1970]
            ).map {
                LabelCount(month: $0["month"], type: $0["type"], form: $0["exploitation_form"], region: $0["region"], count: $0["n"])
            }
        }
    }
}

extension SQLiteMessageStore {  // StatsStore
    public func queueStats() async throws -> QueueStats {
        try await pool.read { db in
            // The pending index holds only rows not yet final, so this walks the backlog, not the
            // history, and reads nothing but the index. The oldest of each inbox is taken to be its
            // first row: sequence follows acceptance, but for requests accepted in the same moment
            // (their order in one group commit) or a step of the clock.
            let inboxes = try Row.fetchAll(
                db,
                sql: """
                    SELECT recipient, count(*) AS n, min(sequence) AS first FROM messages INDEXED BY messages_pending
                    WHERE completed_at IS NULL GROUP BY recipient ORDER BY recipient
                    """
            ).map { row in
                let oldest = try Double.fetchOne(
                    db.cachedStatement(sql: "SELECT accepted_at FROM messages WHERE sequence = ?"),
                    arguments: [row["first"] as Int64]
                )
                return QueueStats.Inbox(
                    recipient: row["recipient"],
                    pending: row["n"],
                    oldestAcceptedAt: oldest.map(Date.init(timeIntervalSince1970:))
                )
            }
            // Kept by triggers (migration v5); states whose messages all moved on read 0.
            let states = try Row.fetchAll(db, sql: "SELECT type, state, n FROM message_counts ORDER BY type, state").map {
                QueueStats.StateCount(type: $0["type"], state: $0["state"], count: $0["n"])
            }
            return QueueStats(inboxes: inboxes, byTypeAndState: states)
        }
    }

    public func pendingBytesBySender() async throws -> [String: Int] {
        try await pool.read { db in
            var bytes: [String: Int] = [:]
            // Kept by triggers (migration v7); senders with nothing waiting read 0.
            for row in try Row.fetchAll(db, sql: "SELECT sender, bytes AS n FROM sender_pending_bytes WHERE bytes != 0") {
                bytes[row["sender"]] = row["n"]
            }
            return bytes
        }
    }
}

extension SQLiteMessageStore {  // RevocationStore
    public func revocationLists() async throws -> [StoredRevocationList] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM revocation_lists ORDER BY issuer_fingerprint").map { row in
                func date(_ column: String) -> Date? { (row[column] as Double?).map(Date.init(timeIntervalSince1970:)) }
                return StoredRevocationList(
                    issuerFingerprint: row["issuer_fingerprint"],
                    issuer: row["issuer"],
                    source: row["source"],
                    der: row["der"],
                    thisUpdate: date("this_update"),
                    nextUpdate: date("next_update"),
                    revokedCount: row["revoked_count"],
                    fetchedAt: date("fetched_at"),
                    lastError: row["last_error"],
                    lastAttemptAt: date("last_attempt_at")
                )
            }
        }
    }

    @discardableResult
    public func saveRevocationList(_ list: StoredRevocationList) async throws -> Bool {
        try await transaction { db in
            let held = try Double.fetchOne(
                db,
                sql: "SELECT this_update FROM revocation_lists WHERE issuer_fingerprint = ?",
                arguments: [list.issuerFingerprint]
            )
            if let held, let new = list.thisUpdate?.timeIntervalSince1970, held > new { return false }
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO revocation_lists (issuer_fingerprint, issuer, source, der, this_update, next_update,
                        revoked_count, fetched_at, last_error, last_attempt_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
                    """,
                arguments: [
                    list.issuerFingerprint, list.issuer, list.source, list.der, list.thisUpdate?.timeIntervalSince1970,
                    list.nextUpdate?.timeIntervalSince1970, list.revokedCount, list.fetchedAt?.timeIntervalSince1970,
                    list.lastAttemptAt?.timeIntervalSince1970,
                ]
            )
            return true
        }
    }

    public func recordRevocationFailure(issuerFingerprint: String, issuer: String, source: String, error: String, at: Date) async throws {
        try await transaction { db in
            try db.execute(
                sql: """
                    INSERT INTO revocation_lists (issuer_fingerprint, issuer, source, der, revoked_count, last_error, last_attempt_at)
                    VALUES (?, ?, ?, x'', 0, ?, ?)
                    ON CONFLICT (issuer_fingerprint) DO UPDATE SET last_error = excluded.last_error,
                        last_attempt_at = excluded.last_attempt_at
                    """,
                arguments: [issuerFingerprint, issuer, source, error, at.timeIntervalSince1970]
            )
        }
    }
}
