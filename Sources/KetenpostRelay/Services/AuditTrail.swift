import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostStore

/// Signed checkpoints of the audit trail and its verification (`ketenpost audit verify`).
///
/// The hash chain shows a record changed, removed or moved, unless somebody with write access
/// to the store recomputed every later hash; the checkpoints close that gap: the relay signs
/// the chain head at intervals, and a recomputed chain no longer matches what it signed.
/// (Records after the last checkpoint can be cut off unnoticed; the checkpoint interval bounds
/// that window, and the relay writes a checkpoint when it stops.)
public enum AuditTrail {
    /// What a checkpoint signs.
    public struct Statement: Codable, Sendable, Equatable {
        public var relay: String
        public var sequence: Int64
        public var hash: String
        /// Milliseconds since 1970.
        public var at: Int64
    }

    /// Signs the current head, unless it is already covered by the last checkpoint.
    /// - Returns: the new checkpoint, or nil when there was nothing new.
    @discardableResult
    public static func checkpoint(store: any AuditStore, identity: Identity, at date: Date) async throws -> AuditCheckpoint? {
        guard let head = try await store.auditHead() else { return nil }
        if let last = try await store.auditCheckpoints().last, last.sequence >= head.sequence { return nil }
        let at = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let statement = Statement(relay: identity.partnerID, sequence: head.sequence, hash: head.hash, at: at)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let signature = try CMS.sign(
            try encoder.encode(statement),
            signer: identity.certificate,
            key: identity.key,
            extraCertificates: identity.chain
        )
        let checkpoint = AuditCheckpoint(sequence: head.sequence, hash: head.hash, at: at, signature: signature)
        try await store.addAuditCheckpoint(checkpoint)
        return checkpoint
    }

    public struct Problem: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable {
            /// A record's content does not match its hash.
            case changed
            /// Sequence numbers are missing.
            case removed
            /// A record stands at another place than the one its hash was made for.
            case reordered
            /// A record does not link to the one before it.
            case brokenLink = "broken-link"
            /// A checkpoint's signature does not verify, or is not the relay's.
            case checkpointInvalid = "checkpoint-invalid"
            /// The chain up to a checkpoint is not what the relay signed (recomputed after a change).
            case checkpointMismatch = "checkpoint-mismatch"
            /// Records a checkpoint vouches for are gone from the end.
            case truncated
        }
        public var kind: Kind
        /// The first record concerned.
        public var sequence: Int64
        public var message: String
    }

    public struct Report: Codable, Sendable {
        public var records: Int64
        public var checkpoints: Int
        /// The highest sequence a valid checkpoint vouches for.
        public var lastCheckpoint: Int64?
        /// Sorted by sequence: the first one is the first record that was tampered with.
        public var problems: [Problem]
        public var ok: Bool { problems.isEmpty }
    }

    /// Walks the whole chain and checks every checkpoint (signature by `relayID`, chained to
    /// `trust` at the checkpoint's time).
    public static func verify(store: any AuditStore, trust: TrustStore, relayID: String) async throws -> Report {
        // Checkpoints first: each one vouches for records committed before it, so on a live store
        // (a relay still writing) a checkpoint added during the walk cannot look like a truncation.
        let checkpoints = try await store.auditCheckpoints()
        var problems: [Problem] = []
        var expected: Int64 = 1
        var previous = AuditRecord.genesis
        var hashes: [Int64: String] = [:]
        var sequences: [Int64] = []
        var chainBroken = false
        var after: Int64 = 0
        var count: Int64 = 0
        while true {
            let batch = try await store.auditRecords(after: after, limit: 5000)
            if batch.isEmpty { break }
            for record in batch {
                count += 1
                hashes[record.sequence] = record.hash
                sequences.append(record.sequence)
                after = record.sequence
                guard !chainBroken else { continue }  // report the first break; later links follow from it
                if record.sequence != expected {
                    problems.append(
                        Problem(
                            kind: .removed,
                            sequence: expected,
                            message: "Records \(expected)…\(record.sequence - 1) are missing: removed from the trail."
                        )
                    )
                    chainBroken = true
                    continue
                }
                if record.computedHash() != record.hash {
                    // Content that hashes correctly at another sequence number was moved here.
                    let window = max(1, record.sequence - 1000)...(record.sequence + 1000)
                    let moved = window.first { $0 != record.sequence && record.computedHash(sequence: $0) == record.hash }
                    if let moved {
                        problems.append(
                            Problem(
                                kind: .reordered,
                                sequence: record.sequence,
                                message: "Record \(record.sequence) holds the content of record \(moved): records were reordered."
                            )
                        )
                    } else {
                        problems.append(
                            Problem(
                                kind: .changed,
                                sequence: record.sequence,
                                message: "Record \(record.sequence) was changed: its content does not match its hash."
                            )
                        )
                    }
                    chainBroken = true
                    continue
                }
                if record.prevHash != previous {
                    problems.append(
                        Problem(
                            kind: .brokenLink,
                            sequence: record.sequence,
                            message:
                                """
                                Record \(record.sequence) does not follow record \(record.sequence - 1): a record before it was \
                                replaced or removed.
                                """
                        )
                    )
                    chainBroken = true
                    continue
                }
                previous = record.hash
                expected += 1
            }
        }
        var lastGood: Int64?
        var lastVouched: Int64 = 0
        for checkpoint in checkpoints {
            guard let statement = verifySignature(checkpoint, trust: trust, relayID: relayID) else {
                problems.append(
                    Problem(
                        kind: .checkpointInvalid,
                        sequence: checkpoint.sequence,
                        message: "The checkpoint for record \(checkpoint.sequence) is not validly signed by \(relayID)."
                    )
                )
                continue
            }
            guard let hash = hashes[statement.sequence] else {
                if statement.sequence > (sequences.last ?? 0) {
                    problems.append(
                        Problem(
                            kind: .truncated,
                            sequence: (sequences.last ?? 0) + 1,
                            message:
                                """
                                Records \((sequences.last ?? 0) + 1)…\(statement.sequence) were removed from the end: the relay \
                                signed a trail of \(statement.sequence) records.
                                """
                        )
                    )
                }
                continue
            }
            if hash != statement.hash {
                problems.append(
                    Problem(
                        kind: .checkpointMismatch,
                        sequence: lastVouched + 1,
                        message:
                            """
                            The trail up to record \(statement.sequence) is not what the relay signed: a record after \(lastVouched) \
                            and at or before \(statement.sequence) was changed and the chain recomputed.
                            """
                    )
                )
            } else {
                lastGood = statement.sequence
                lastVouched = statement.sequence
            }
        }
        problems.sort { ($0.sequence, $0.kind.rawValue) < ($1.sequence, $1.kind.rawValue) }
        return Report(records: count, checkpoints: checkpoints.count, lastCheckpoint: lastGood, problems: problems)
    }

    /// The signed statement, if the signature verifies, the signer is the relay and the
    /// statement matches the checkpoint's columns.
    static func verifySignature(_ checkpoint: AuditCheckpoint, trust: TrustStore, relayID: String) -> Statement? {
        guard let signed = try? CMS.verifySignature(checkpoint.signature),
            signed.signer.commonName == relayID,
            let statement = try? JSONDecoder().decode(Statement.self, from: signed.content),
            statement.relay == relayID, statement.sequence == checkpoint.sequence, statement.hash == checkpoint.hash,
            statement.at == checkpoint.at
        else { return nil }
        let time = Date(timeIntervalSince1970: Double(statement.at) / 1000)
        guard (try? trust.verify(signed.signer, chain: signed.intermediates, for: .contentSigning, at: time)) != nil else { return nil }
        return statement
    }
}
