import Foundation
import PostgresNIO

/// The directory tables of the PostgreSQL backend: the same tables and rules as SQLite's.
extension PostgresMessageStore {  // DirectoryStore
    public func directoryVersion() async throws -> Int64 {
        try await client.query("SELECT version FROM directory_version WHERE id = 1", logger: logger)
            .collect().first.map { try $0.decode(Int64.self) } ?? 0
    }

    public func directorySnapshot() async throws -> DirectorySnapshot {
        // One snapshot for the three reads: version, partners and certificates are consistent.
        try await transaction(level: "REPEATABLE READ READ ONLY") { connection in
            let version =
                try await self.rows(connection, "SELECT version FROM directory_version WHERE id = 1")
                .first.map { try $0.decode(Int64.self) } ?? 0
            let partners = try await self.rows(connection, #"SELECT id, name, role, oin, state FROM partners ORDER BY id COLLATE "C""#)
                .map { row in
                    let (id, name, role, oin, state) = try row.decode((String, String, String, String, String).self)
                    return DirectoryPartner(id: id, name: name, role: role, oin: oin, state: state)
                }
            let certificates = try await self.rows(
                connection,
                """
                SELECT fingerprint, partner_id, der, chain, uses, serial, not_before, not_after, activates_at, retires_at, revoked_at,
                    revocation_reason, added_at
                FROM certificates ORDER BY partner_id COLLATE "C", added_at, fingerprint COLLATE "C"
                """
            ).map(Self.certificate)
            return DirectorySnapshot(version: version, partners: partners, certificates: certificates)
        }
    }

    @discardableResult
    public func applyDirectory(_ changes: [DirectoryChange], actor: String, at: Date) async throws -> Int64 {
        try await transaction { connection in
            // Directory batches one at a time (across instances): each check below sees the batches before it.
            try await self.run(connection, "SELECT version FROM directory_version WHERE id = 1 FOR UPDATE")
            var events: [(AuditEvent, Date)] = []
            for change in changes {
                var partnerID: String?
                var fingerprint: String?
                switch change {
                case .addPartner(let p):
                    guard try await !self.exists(connection, "SELECT 1 FROM partners WHERE id = \(p.id)") else {
                        throw StoreError(.partnerExists, subject: p.id)
                    }
                    try await self.run(
                        connection,
                        """
                        INSERT INTO partners (id, name, role, oin, state) VALUES (\(p.id), \(p.name), \(p.role), \(p.oin), \(p.state))
                        """
                    )
                    partnerID = p.id
                case .setPartnerState(let id, let state):
                    guard try await self.exists(connection, "UPDATE partners SET state = \(state) WHERE id = \(id) RETURNING id") else {
                        throw StoreError(.partnerNotFound, subject: id)
                    }
                    partnerID = id
                case .addCertificate(let c):
                    guard try await self.exists(connection, "SELECT 1 FROM partners WHERE id = \(c.partnerID)") else {
                        throw StoreError(.partnerNotFound, subject: c.partnerID)
                    }
                    guard try await !self.exists(connection, "SELECT 1 FROM certificates WHERE fingerprint = \(c.fingerprint)") else {
                        throw StoreError(.certificateExists, subject: c.fingerprint)
                    }
                    let uses = c.uses.map(\.rawValue).joined(separator: ",")
                    try await self.run(
                        connection,
                        """
                        INSERT INTO certificates (fingerprint, partner_id, der, chain, uses, serial, not_before, not_after,
                            activates_at, retires_at, revoked_at, revocation_reason, added_at)
                        VALUES (\(c.fingerprint), \(c.partnerID), \(c.der), \(c.chainText), \(uses), \(c.serial), \
                        \(Self.seconds(c.notBefore)),
                            \(Self.seconds(c.notAfter)), \(Self.seconds(c.activatesAt)), \(c.retiresAt.map(Self.seconds)),
                            \(c.revokedAt.map(Self.seconds)), \(c.revocationReason), \(Self.seconds(c.addedAt)))
                        """
                    )
                    partnerID = c.partnerID
                    fingerprint = c.fingerprint
                case .retireCertificate(let fp, let until):
                    partnerID = try await self.livePartner(connection, fingerprint: fp)
                    // Only ever earlier: a second rotation cannot extend an overlap already running.
                    try await self.run(
                        connection,
                        """
                        UPDATE certificates SET retires_at = LEAST(COALESCE(retires_at, \(Self.seconds(until))), \(Self.seconds(until)))
                        WHERE fingerprint = \(fp)
                        """
                    )
                    fingerprint = fp
                case .revokeCertificate(let fp, let when, let reason):
                    partnerID = try await self.livePartner(connection, fingerprint: fp)
                    try await self.run(
                        connection,
                        """
                        UPDATE certificates SET revoked_at = \(Self.seconds(when)), revocation_reason = \(reason) WHERE fingerprint = \(fp)
                        """
                    )
                    fingerprint = fp
                }
                events.append(
                    (
                        AuditEvent(
                            action: change.action,
                            actor: actor,
                            partnerId: partnerID,
                            fingerprint: fingerprint,
                            detail: change.auditDetail
                        ), at
                    )
                )
            }
            try await self.appendAudit(connection, events)
            let version =
                try await self.rows(connection, "UPDATE directory_version SET version = version + 1 WHERE id = 1 RETURNING version")
                .first.map { try $0.decode(Int64.self) } ?? 0
            // Heard by every instance on commit: they reload the snapshot.
            try await self.run(connection, "SELECT pg_notify(\(Self.directoryChannel), '')")
            return version
        }
    }

    /// The partner of a certificate that is not revoked (a revoked certificate never changes again).
    private func livePartner(_ connection: PostgresConnection, fingerprint: String) async throws -> String {
        guard
            let row = try await rows(
                connection,
                """
                SELECT partner_id, revoked_at FROM certificates WHERE fingerprint = \(fingerprint) FOR UPDATE
                """
            ).first
        else {
            throw StoreError(.certificateNotFound, subject: fingerprint)
        }
        let (partnerID, revokedAt) = try row.decode((String, Double?).self)
        guard revokedAt == nil else { throw StoreError(.certificateRevoked, subject: fingerprint) }
        return partnerID
    }

    private func exists(_ connection: PostgresConnection, _ query: PostgresQuery) async throws -> Bool {
        try await !rows(connection, query).isEmpty
    }

    private static func certificate(_ row: PostgresRow) throws -> DirectoryCertificate {
        let row = row.makeRandomAccess()
        func date(_ column: String) throws -> Date? { try row[column].decode(Double?.self).map(Date.init(timeIntervalSince1970:)) }
        func required(_ column: String) throws -> Date {
            guard let value = try date(column) else { throw StoreError(.unexpectedResult, "certificates.\(column) is NULL") }
            return value
        }
        let uses = try row["uses"].decode(String.self).split(separator: ",").compactMap { CertificateUse(rawValue: String($0)) }
        return DirectoryCertificate(
            fingerprint: try row["fingerprint"].decode(String.self),
            partnerID: try row["partner_id"].decode(String.self),
            der: try row["der"].decode(Data.self),
            chain: DirectoryCertificate.chain(fromText: try row["chain"].decode(String.self)),
            uses: uses,
            serial: try row["serial"].decode(String.self),
            notBefore: try required("not_before"),
            notAfter: try required("not_after"),
            activatesAt: try required("activates_at"),
            retiresAt: try date("retires_at"),
            revokedAt: try date("revoked_at"),
            revocationReason: try row["revocation_reason"].decode(String?.self),
            addedAt: try required("added_at")
        )
    }
}

extension PostgresMessageStore {  // AuditStore
    /// Locks the chain head for the rest of the transaction: every writer on every instance
    /// appends after the head it read here. Always the last lock a transaction takes (but in
    /// `submit`, which takes no other), so waiting for it never closes a cycle.
    func lockAuditHead(_ connection: PostgresConnection) async throws -> (sequence: Int64, hash: String) {
        guard let row = try await rows(connection, "SELECT sequence, hash FROM audit_head WHERE id = 1 FOR UPDATE").first else {
            throw StoreError(.unexpectedResult, "audit_head has no row; was migrate() run?")
        }
        let (sequence, hash) = try row.decode((Int64, String).self)
        return (sequence, hash)
    }

    /// Appends hash-chained records, in order, inside the caller's transaction; `head` is what
    /// `lockAuditHead` returned if the caller took the lock already in this transaction.
    func appendAudit(
        _ connection: PostgresConnection,
        _ events: [(AuditEvent, Date)],
        head: (sequence: Int64, hash: String)? = nil
    ) async throws {
        guard !events.isEmpty else { return }
        var (sequence, previous): (Int64, String)
        if let head { (sequence, previous) = head } else { (sequence, previous) = try await lockAuditHead(connection) }
        var records: [AuditRecord] = []
        for (event, date) in events {
            sequence += 1
            let record = AuditRecord(sequence: sequence, at: AuditRecord.milliseconds(date), event: event, prevHash: previous)
            records.append(record)
            previous = record.hash
        }
        // Multi-row INSERTs, well under the protocol's 65,535 parameters each.
        for start in stride(from: 0, to: records.count, by: 1000) {
            var bindings = PostgresBindings()
            var values: [String] = []
            for record in records[start..<min(start + 1000, records.count)] {
                let n = bindings.count
                values.append("(" + (1...10).map { "$\(n + $0)" }.joined(separator: ", ") + ")")
                bindings.append(record.sequence)
                bindings.append(record.at)
                bindings.append(record.action)
                bindings.append(record.actor)
                bindings.append(record.messageId)
                bindings.append(record.partnerId)
                bindings.append(record.fingerprint)
                bindings.append(record.detail)
                bindings.append(record.prevHash)
                bindings.append(record.hash)
            }
            try await run(
                connection,
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO audit_log (sequence, at, action, actor, message_id, partner_id, fingerprint, detail, prev_hash, hash)
                        VALUES \(values.joined(separator: ", "))
                        """,
                    binds: bindings
                )
            )
        }
        try await run(connection, "UPDATE audit_head SET sequence = \(sequence), hash = \(previous) WHERE id = 1")
    }

    public func auditHead() async throws -> (sequence: Int64, hash: String)? {
        try await client.query("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1", logger: logger)
            .collect().first.map { row in
                let (sequence, hash) = try row.decode((Int64, String).self)
                return (sequence, hash)
            }
    }

    public func auditRecords(after sequence: Int64, limit: Int) async throws -> [AuditRecord] {
        try await client.query(
            """
            SELECT sequence, at, action, actor, message_id, partner_id, fingerprint, detail, prev_hash, hash
            FROM audit_log WHERE sequence > \(sequence) ORDER BY sequence LIMIT \(limit)
            """,
            logger: logger
        ).collect().map { row in
            let (sequence, at, action, actor, messageID, partnerID, fingerprint, detail, prevHash, hash) =
                try row.decode((Int64, Int64, String, String, String?, String?, String?, String?, String, String).self)
            return AuditRecord(
                sequence: sequence,
                at: at,
                action: action,
                actor: actor,
                messageId: messageID,
                partnerId: partnerID,
                fingerprint: fingerprint,
                detail: detail,
                prevHash: prevHash,
                hash: hash
            )
        }
    }

    public func addAuditCheckpoint(_ checkpoint: AuditCheckpoint) async throws {
        _ = try await client.query(
            """
            INSERT INTO audit_checkpoints (sequence, hash, at, signature)
            VALUES (\(checkpoint.sequence), \(checkpoint.hash), \(checkpoint.at), \(checkpoint.signature))
            ON CONFLICT (sequence) DO NOTHING
            """,
            logger: logger
        ).collect()
    }

    public func auditCheckpoints() async throws -> [AuditCheckpoint] {
        try await client.query("SELECT sequence, hash, at, signature FROM audit_checkpoints ORDER BY sequence", logger: logger)
            .collect().map { row in
                let (sequence, hash, at, signature) = try row.decode((Int64, String, Int64, Data).self)
                return AuditCheckpoint(sequence: sequence, hash: hash, at: at, signature: signature)
            }
    }
}

extension PostgresMessageStore {  // RevocationStore
    public func revocationLists() async throws -> [StoredRevocationList] {
        try await client.query(
            """
            SELECT issuer_fingerprint, issuer, source, der, this_update, next_update, revoked_count, fetched_at, last_error,
                last_attempt_at
            FROM revocation_lists ORDER BY issuer_fingerprint COLLATE "C"
            """,
            logger: logger
        ).collect().map { row in
            let row = row.makeRandomAccess()
            func date(_ column: String) throws -> Date? { try row[column].decode(Double?.self).map(Date.init(timeIntervalSince1970:)) }
            return StoredRevocationList(
                issuerFingerprint: try row["issuer_fingerprint"].decode(String.self),
                issuer: try row["issuer"].decode(String.self),
                source: try row["source"].decode(String.self),
                der: try row["der"].decode(Data.self),
                thisUpdate: try date("this_update"),
                nextUpdate: try date("next_update"),
                revokedCount: Int(try row["revoked_count"].decode(Int64.self)),
                fetchedAt: try date("fetched_at"),
                lastError: try row["last_error"].decode(String?.self),
                lastAttemptAt: try date("last_attempt_at")
            )
        }
    }

    @discardableResult
    public func saveRevocationList(_ list: StoredRevocationList) async throws -> Bool {
        // The WHERE keeps a newer list: the row is only replaced by one at least as recent.
        try await !client.query(
            """
            INSERT INTO revocation_lists (issuer_fingerprint, issuer, source, der, this_update, next_update, revoked_count,
                fetched_at, last_error, last_attempt_at)
            VALUES (\(list.issuerFingerprint), \(list.issuer), \(list.source), \(list.der), \(list.thisUpdate.map(Self.seconds)),
                \(list.nextUpdate.map(Self.seconds)), \(Int64(list.revokedCount)), \(list.fetchedAt.map(Self.seconds)), NULL,
                \(list.lastAttemptAt.map(Self.seconds)))
            ON CONFLICT (issuer_fingerprint) DO UPDATE SET issuer = excluded.issuer, source = excluded.source, der = excluded.der,
                this_update = excluded.this_update, next_update = excluded.next_update, revoked_count = excluded.revoked_count,
                fetched_at = excluded.fetched_at, last_error = NULL, last_attempt_at = excluded.last_attempt_at
            WHERE revocation_lists.this_update IS NULL OR excluded.this_update IS NULL
                OR revocation_lists.this_update <= excluded.this_update
            RETURNING 1
            """,
            logger: logger
        ).collect().isEmpty
    }

    public func recordRevocationFailure(issuerFingerprint: String, issuer: String, source: String, error: String, at: Date) async throws {
        _ = try await client.query(
            """
            INSERT INTO revocation_lists (issuer_fingerprint, issuer, source, der, revoked_count, last_error, last_attempt_at)
            VALUES (\(issuerFingerprint), \(issuer), \(source), \(Data()), 0, \(error), \(Self.seconds(at)))
            ON CONFLICT (issuer_fingerprint) DO UPDATE SET last_error = excluded.last_error, last_attempt_at = excluded.last_attempt_at
            """,
            logger: logger
        ).collect()
    }
}
