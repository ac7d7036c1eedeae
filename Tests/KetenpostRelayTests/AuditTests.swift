import Foundation
import GRDB
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostProvisioning
import KetenpostRelay
import KetenpostStore
import KetenpostTestSupport
import Testing

/// The tamper-evident audit trail: a relay's real trail verifies; every kind of tampering with
/// a copy of its store is caught and reported at the first record concerned.
@Suite struct AuditTests {
    /// A relay that accepted, delivered, acknowledged and rejected messages and had its directory
    /// changed, with a checkpoint signed halfway and one at the end; returns a consistent copy of
    /// its store file.
    func trail(_ h: Harness) async throws -> (copy: URL, records: [AuditRecord]) {
        try await history(h)
        // A consistent copy of the live database (WAL included).
        let copy = h.work.appendingPathComponent("audit-copy-\(UUID().uuidString.prefix(6)).sqlite")
        let live = try DatabaseQueue(path: h.configuration.store.path)
        try await live.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [copy.path]) }
        try live.close()
        let records = try await h.relay.core.store.auditRecords(after: 0, limit: 1000)
        return (copy, records)
    }

    /// The relay's history behind `trail`, in whichever store it runs on.
    func history(_ h: Harness) async throws {
        let sender = try h.client(municipality)
        let recipient = try h.client(coordinator)
        for _ in 0..<3 { _ = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator) }
        await h.relay.core.writeCheckpoint()
        for item in try await recipient.receive(max: 10) { try await recipient.acknowledge(item) }
        _ = try await h.admin().adminSuspend(shelter)
        for _ in 0..<2 { _ = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator) }
        await h.relay.core.writeCheckpoint()
    }

    func verify(_ file: URL, _ h: Harness) async throws -> AuditTrail.Report {
        let store = try SQLiteMessageStore(path: file.path, readOnly: true)
        return try await AuditTrail.verify(
            store: store,
            trust: try TrustStore.load(anchorsFile: h.shared.pki.caCertificatePath),
            relayID: DevelopmentPKI.relayID
        )
    }

    /// A fresh copy of `original`, changed by `sql`.
    func tampered(_ original: URL, _ sql: String) throws -> URL {
        let copy = original.deletingLastPathComponent().appendingPathComponent("tampered-\(UUID().uuidString.prefix(6)).sqlite")
        try FileManager.default.copyItem(at: original, to: copy)
        let queue = try DatabaseQueue(path: copy.path)
        try queue.write { db in try db.execute(sql: sql) }
        try queue.close()
        return copy
    }

    @Test func anUntouchedTrailVerifies() async throws {
        try await withRelay { h in
            let (copy, records) = try await trail(h)
            let actions = Set(records.map(\.action))
            #expect(
                actions.isSuperset(of: [
                    "partner.added", "certificate.added", "message.accepted", "message.leased",
                    "message.acknowledged", "partner.suspended",
                ])
            )
            let report = try await verify(copy, h)
            #expect(report.ok, "\(report.problems)")
            #expect(report.records == Int64(records.count) && report.checkpoints == 2 && report.lastCheckpoint == Int64(records.count))
            // The command line says the same, with exit status 0.
            let cli = try await shell(
                "'\(ServeProcessTests.binary)' audit verify --store '\(copy.path)' --trust '\(h.shared.pki.caCertificatePath)'"
            )
            #expect(cli.status == 0 && cli.stdout.contains("Audit trail intact"), "\(cli.stdout)\(cli.stderr)")
        }
    }

    @Test func everyKindOfTamperingIsCaughtAtItsRecord() async throws {
        try await withRelay { h in
            let (copy, records) = try await trail(h)
            let n = Int64(records.count)
            let firstCheckpoint = try await h.relay.core.store.auditCheckpoints()[0].sequence
            let k = firstCheckpoint + 2  // a record between the two checkpoints
            #expect(n > k + 3)

            // A field changed.
            var report = try await verify(try tampered(copy, "UPDATE audit_log SET actor = 'gemeente-maastricht' WHERE sequence = \(k)"), h)
            #expect(report.problems.first?.kind == .changed && report.problems.first?.sequence == k, "\(report.problems)")
            // A record removed.
            report = try await verify(try tampered(copy, "DELETE FROM audit_log WHERE sequence = \(k)"), h)
            #expect(report.problems.first?.kind == .removed && report.problems.first?.sequence == k, "\(report.problems)")
            // Two records swapped (content, links and hashes moved along).
            report = try await verify(
                try tampered(
                    copy,
                    """
                    UPDATE audit_log SET sequence = -1 WHERE sequence = \(k);
                    UPDATE audit_log SET sequence = \(k) WHERE sequence = \(k + 1);
                    UPDATE audit_log SET sequence = \(k + 1) WHERE sequence = -1;
                    """
                ),
                h
            )
            #expect(report.problems.first?.kind == .reordered && report.problems.first?.sequence == k, "\(report.problems)")
            // The tail cut off after the last checkpoint was signed.
            report = try await verify(try tampered(copy, "DELETE FROM audit_log WHERE sequence > \(n - 2)"), h)
            #expect(report.problems.contains { $0.kind == .truncated && $0.sequence == n - 1 }, "\(report.problems)")
            // A checkpoint altered.
            report = try await verify(
                try tampered(copy, "UPDATE audit_checkpoints SET hash = '\(AuditRecord.genesis)' WHERE sequence = \(n)"),
                h
            )
            #expect(report.problems.contains { $0.kind == .checkpointInvalid && $0.sequence == n }, "\(report.problems)")

            // A record changed and every later hash recomputed: the chain is consistent again, but
            // not what the relay signed.
            let forged = try tampered(copy, "SELECT 1")
            let queue = try DatabaseQueue(path: forged.path)
            try await queue.write { db in
                var previous = try String.fetchOne(db, sql: "SELECT hash FROM audit_log WHERE sequence = ?", arguments: [k - 1])!
                for record in records where record.sequence >= k {
                    var changed = record
                    if record.sequence == k { changed.actor = "gemeente-maastricht" }
                    changed.prevHash = previous
                    changed.hash = changed.computedHash()
                    try db.execute(
                        sql: "UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE sequence = ?",
                        arguments: [changed.actor, changed.prevHash, changed.hash, changed.sequence]
                    )
                    previous = changed.hash
                }
            }
            try queue.close()
            report = try await verify(forged, h)
            let mismatch = try #require(report.problems.first)
            #expect(mismatch.kind == .checkpointMismatch && mismatch.sequence == firstCheckpoint + 1, "\(report.problems)")
            #expect(!report.problems.contains { $0.kind == .changed || $0.kind == .brokenLink })

            // The command line reports it and exits 1.
            let cli = try await shell(
                "'\(ServeProcessTests.binary)' audit verify --store '\(forged.path)' --trust '\(h.shared.pki.caCertificatePath)'"
            )
            #expect(
                cli.status == 1 && cli.stdout.contains("TAMPERED") && cli.stdout.contains("checkpoint-mismatch"),
                "\(cli.stdout)\(cli.stderr)"
            )
        }
    }

    /// `audit verify --store-url` reads a PostgreSQL store in place: intact, then a record changed
    /// with psql is reported at its sequence; a URL's password never shows in the output.
    @Test func aPostgreSQLTrailIsVerifiedFromItsURL() async throws {
        try await withPostgresDatabase { server, database in
            let url = server.url(database: database)
            try await withRelay({ $0.store.url = url }) { h in
                try await history(h)
                let records = try await h.relay.core.store.auditRecords(after: 0, limit: 1000)
                let verify = "'\(ServeProcessTests.binary)' audit verify --trust '\(h.shared.pki.caCertificatePath)' --store-url"
                let intact = try await shell("\(verify) '\(url)'")
                #expect(
                    intact.status == 0 && intact.stdout.contains("Audit trail intact: \(records.count) records, 2 checkpoints"),
                    "\(intact.stdout)\(intact.stderr)"
                )

                let k = records[records.count / 2].sequence
                let psql =
                    "'\(server.binDirectory)/psql' -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p \(server.port) -U postgres -d \(database)"
                let update = try await shell("\(psql) -c \"UPDATE audit_log SET actor = 'someone-else' WHERE sequence = \(k)\"")
                #expect(update.status == 0, "\(update.stderr)")
                let tampered = try await shell("\(verify) '\(url)'")
                #expect(
                    tampered.status == 1 && tampered.stdout.contains("TAMPERED") && tampered.stdout.contains("record \(k): changed"),
                    "\(tampered.stdout)\(tampered.stderr)"
                )

                // A database without a relay's tables: an error naming the store, without the password.
                let wrong = try await shell(
                    "\(verify) 'postgres://postgres:pw-\(database)@127.0.0.1:\(server.port)/postgres?sslmode=disable'"
                )
                #expect(
                    wrong.status == 1 && wrong.stderr.contains("store.unavailable") && wrong.stderr.contains("127.0.0.1"),
                    "\(wrong.stderr)"
                )
                #expect(!wrong.stdout.contains("pw-\(database)") && !wrong.stderr.contains("pw-\(database)"))
            }
        }
    }

    @Test func checkpointsAreSignedByTheRelayAndWrittenOnStop() async throws {
        try await withRelay { h in
            _ = try await h.client(municipality).send(payload: try h.example(.signal), type: .signal, to: coordinator)
            await h.relay.core.writeCheckpoint()
            await h.relay.core.writeCheckpoint()  // nothing new: no second checkpoint
            let checkpoints = try await h.relay.core.store.auditCheckpoints()
            #expect(checkpoints.count == 1)
            // The signature is CMS SignedData that the stock openssl command verifies.
            let file = h.work.appendingPathComponent("checkpoint.der")
            try checkpoints[0].signature.write(to: file)
            let check = try await shell(
                "openssl cms -verify -binary -inform DER -in '\(file.path)' -CAfile '\(h.shared.pki.caCertificatePath)' -purpose any"
            )
            #expect(check.status == 0 && check.stdout.contains("\"hash\":\"\(checkpoints[0].hash)\""), "\(check.stderr)")
            // Stopping writes a final checkpoint over what happened since.
            _ = try await h.client(municipality).send(payload: try h.example(.signal), type: .signal, to: coordinator)
            try await h.restart()
            let head = try #require(try await h.relay.core.store.auditHead())
            #expect(try await h.relay.core.store.auditCheckpoints().last?.sequence == head.sequence)
        }
    }

    /// Issue 20: a record changed, the chain recomputed and the later checkpoints deleted. Without
    /// a freshness bound that passed; now the unsigned old records show, a checkpoint deleted from
    /// the middle leaves a gap in their numbers, and a pinned checkpoint must still hold.
    @Test func deletingCheckpointsDoesNotHideARewrite() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            for _ in 0..<3 {
                for _ in 0..<2 { _ = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator) }
                await h.relay.core.writeCheckpoint()
            }
            let checkpoints = try await h.relay.core.store.auditCheckpoints()
            #expect(checkpoints.count == 3)
            let (copy, records) = (try await copyStore(h), try await h.relay.core.store.auditRecords(after: 0, limit: 1000))
            let trust = try TrustStore.load(anchorsFile: h.shared.pki.caCertificatePath)
            func check(_ file: URL, now: Date, pinned: AuditCheckpoint? = nil) async throws -> AuditTrail.Report {
                try await AuditTrail.verify(
                    store: try SQLiteMessageStore(path: file.path, readOnly: true),
                    trust: trust,
                    relayID: DevelopmentPKI.relayID,
                    freshness: .init(interval: 300, now: now),
                    pinned: pinned
                )
            }
            let later = h.clock().addingTimeInterval(600)  // the auditor looks ten minutes later
            #expect(try await check(copy, now: later).ok)
            #expect(try await check(copy, now: later, pinned: checkpoints[2]).ok)

            // The middle checkpoint deleted: a gap in the numbers.
            var report = try await check(
                try tampered(copy, "DELETE FROM audit_checkpoints WHERE sequence = \(checkpoints[1].sequence)"),
                now: later
            )
            #expect(report.problems.map(\.kind) == [.checkpointRemoved], "\(report.problems)")

            // A record after the first checkpoint changed, the chain recomputed, later checkpoints deleted.
            let k = checkpoints[0].sequence + 1
            let forged = try forge(copy, records: records, at: k)
            let cut = try tampered(forged, "DELETE FROM audit_checkpoints WHERE sequence > \(checkpoints[0].sequence)")
            let unbounded = try await AuditTrail.verify(
                store: try SQLiteMessageStore(path: cut.path, readOnly: true),
                trust: trust,
                relayID: DevelopmentPKI.relayID
            )
            #expect(unbounded.ok, "without a freshness bound this is the hole the issue describes")
            report = try await check(cut, now: later)
            #expect(report.problems.first?.kind == .unsigned && report.problems.first?.sequence == k, "\(report.problems)")
            // Within the interval the rewrite is indistinguishable from records not yet signed ...
            #expect(try await check(cut, now: h.clock()).ok)
            // ... unless the auditor pinned a checkpoint they saw before.
            report = try await check(cut, now: h.clock(), pinned: checkpoints[2])
            #expect(report.problems.contains { $0.kind == .checkpointRemoved }, "\(report.problems)")
            #expect(report.problems.contains { $0.kind == .checkpointMismatch }, "\(report.problems)")
            // Truncation behind a pinned checkpoint.
            let truncated = try tampered(
                copy,
                """
                DELETE FROM audit_log WHERE sequence > \(checkpoints[1].sequence);
                DELETE FROM audit_checkpoints WHERE sequence > \(checkpoints[1].sequence);
                """
            )
            report = try await check(truncated, now: h.clock(), pinned: checkpoints[2])
            #expect(report.problems.contains { $0.kind == .truncated }, "\(report.problems)")

            // The command line: save the checkpoint, then check the rewritten copy against it.
            let saved = h.work.appendingPathComponent("seen.json").path
            let anchors = h.shared.pki.caCertificatePath
            let first = try await shell(
                "'\(ServeProcessTests.binary)' audit verify --store '\(copy.path)' --trust '\(anchors)' --save-checkpoint '\(saved)'"
            )
            #expect(first.status == 0 && FileManager.default.fileExists(atPath: saved), "\(first.stdout)\(first.stderr)")
            let second = try await shell(
                "'\(ServeProcessTests.binary)' audit verify --store '\(cut.path)' --trust '\(anchors)' --since-checkpoint '\(saved)'"
            )
            #expect(second.status == 1 && second.stdout.contains("checkpoint-removed"), "\(second.stdout)\(second.stderr)")
        }
    }

    /// A consistent copy of the relay's live store file.
    func copyStore(_ h: Harness) async throws -> URL {
        let copy = h.work.appendingPathComponent("audit-copy-\(UUID().uuidString.prefix(6)).sqlite")
        let live = try DatabaseQueue(path: h.configuration.store.path)
        try await live.writeWithoutTransaction { db in try db.execute(sql: "VACUUM INTO ?", arguments: [copy.path]) }
        try live.close()
        return copy
    }

    /// A copy with record `k`'s actor changed and every later hash recomputed.
    func forge(_ original: URL, records: [AuditRecord], at k: Int64) throws -> URL {
        let forged = try tampered(original, "SELECT 1")
        let queue = try DatabaseQueue(path: forged.path)
        try queue.write { db in
            var previous = try String.fetchOne(db, sql: "SELECT hash FROM audit_log WHERE sequence = ?", arguments: [k - 1])!
            for record in records where record.sequence >= k {
                var changed = record
                if record.sequence == k { changed.actor = "gemeente-maastricht" }
                changed.prevHash = previous
                changed.hash = changed.computedHash()
                try db.execute(
                    sql: "UPDATE audit_log SET actor = ?, prev_hash = ?, hash = ? WHERE sequence = ?",
                    arguments: [changed.actor, changed.prevHash, changed.hash, changed.sequence]
                )
                previous = changed.hash
            }
        }
        try queue.close()
        return forged
    }
}
