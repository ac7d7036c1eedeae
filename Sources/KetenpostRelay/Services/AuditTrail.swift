import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostStore

/// Signed checkpoints of the audit trail and its verification (`ketenpost audit verify`).
///
/// The hash chain shows a record changed, removed or moved, unless somebody with write access
/// to the store recomputed every later hash; the checkpoints close that gap: the relay signs
/// the chain head at intervals, and a recomputed chain no longer matches what it signed.
/// Deleting checkpoints does not hide a rewrite either: checkpoints are numbered in what they
/// sign, so one removed from the middle leaves a gap, and records older than the checkpoint
/// interval (plus a minute) that no checkpoint signs are reported, so removing the newest
/// checkpoints shows. An auditor who keeps the last checkpoint they saw (`--save-checkpoint`)
/// can pin it (`--since-checkpoint`): the trail must still hold exactly what it signed.
public enum AuditTrail {
    /// What a checkpoint signs.
    public struct Statement: Codable, Sendable, Equatable {
        public var relay: String
        public var sequence: Int64
        public var hash: String
        /// Milliseconds since 1970.
        public var at: Int64
        /// 1, 2, 3 … in the order of signing (absent in checkpoints from before numbering); a
        /// second relay instance signing at the same moment may repeat a number, never skip one.
        public var number: Int64?
    }

    /// How recent the unsigned end of the trail may be: records older than `interval` plus a
    /// minute before `now` must be signed by a checkpoint.
    public struct Freshness: Sendable {
        public var interval: TimeInterval
        public var now: Date
        public static let slack: TimeInterval = 60
        public init(interval: TimeInterval, now: Date) {
            self.interval = interval
            self.now = now
        }
    }

    /// Signs the current head, unless it is already covered by the last checkpoint.
    /// - Returns: the new checkpoint, or nil when there was nothing new.
    @discardableResult
    public static func checkpoint(store: any AuditStore, identity: Identity, at date: Date) async throws -> AuditCheckpoint? {
        guard let head = try await store.auditHead() else { return nil }
        let checkpoints = try await store.auditCheckpoints()
        if let last = checkpoints.last, last.sequence >= head.sequence { return nil }
        let at = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        // The number after the last checkpoint's (its signature is checked by verify; only its number is needed here).
        let previous = checkpoints.last.flatMap { try? CMS.verifySignature($0.signature) }.flatMap {
            try? JSONDecoder().decode(Statement.self, from: $0.content)
        }
        let number = (previous?.number ?? Int64(checkpoints.count)) + 1
        let statement = Statement(relay: identity.partnerID, sequence: head.sequence, hash: head.hash, at: at, number: number)
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
            /// Checkpoints were deleted: a gap in their numbers, or the pinned checkpoint is gone.
            case checkpointRemoved = "checkpoint-removed"
            /// Records older than the checkpoint interval that no checkpoint signs.
            case unsigned
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
    /// - Parameters:
    ///   - freshness: when given, records older than its interval that no checkpoint signs are a problem.
    ///   - pinned: a checkpoint the auditor saw before: it must still be in the store and the trail
    ///     must still hold what it signed.
    public static func verify(
        store: any AuditStore,
        trust: TrustStore,
        relayID: String,
        freshness: Freshness? = nil,
        pinned: AuditCheckpoint? = nil
    ) async throws -> Report {
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
        var lastNumber: Int64?
        var all = checkpoints
        if let pinned, !checkpoints.contains(where: { $0.sequence == pinned.sequence && $0.signature == pinned.signature }) {
            problems.append(
                Problem(
                    kind: .checkpointRemoved,
                    sequence: pinned.sequence,
                    message: "The pinned checkpoint for record \(pinned.sequence) is no longer in the store: checkpoints were removed."
                )
            )
            all.append(pinned)
            all.sort { $0.sequence < $1.sequence }
        }
        for checkpoint in all {
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
            if let number = statement.number {
                if let lastNumber, number > lastNumber + 1 {
                    problems.append(
                        Problem(
                            kind: .checkpointRemoved,
                            sequence: lastVouched + 1,
                            message:
                                """
                                Checkpoints \(lastNumber + 1)…\(number - 1) are missing (between records \(lastVouched) and \
                                \(statement.sequence)): checkpoints were removed.
                                """
                        )
                    )
                }
                lastNumber = max(lastNumber ?? 0, number)
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
        if let freshness, !chainBroken {
            // The newest records wait up to one interval for their checkpoint; older ones must have one.
            let limit = freshness.now.addingTimeInterval(-(freshness.interval + Freshness.slack))
            if let unsigned = try await store.auditRecords(after: lastGood ?? 0, limit: 1).first, unsigned.date < limit {
                problems.append(
                    Problem(
                        kind: .unsigned,
                        sequence: unsigned.sequence,
                        message:
                            """
                            Records from \(unsigned.sequence) on are older than the checkpoint interval and no checkpoint signs \
                            them: later checkpoints were removed (or the relay stopped without its last checkpoint; a running \
                            relay signs them within its interval).
                            """
                    )
                )
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
        // The relay's certificate: a TLS server certificate, not one for S/MIME signing (a partner's).
        guard (try? trust.verify(signed.signer, chain: signed.intermediates, for: .tlsServer, at: time)) != nil else { return nil }
        return statement
    }
}
