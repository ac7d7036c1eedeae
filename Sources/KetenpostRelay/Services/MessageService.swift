import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostStore
import Logging

/// The message rules, independent of HTTP: what an authenticated partner may submit, lease,
/// acknowledge and see. Callers authenticate first (`Authenticator`); every method takes the
/// partner it acts for and the logger of the request (its metadata carries the request id).
public struct MessageService: Sendable {
    let configuration: RelayConfiguration
    let policy: Policy
    let store: any RelayStore
    let credentials: LiveCredentials
    let directory: LiveDirectory
    let authenticator: Authenticator
    let notifier: InboxNotifier
    let metrics: RelayMetrics
    let clock: @Sendable () -> Date
    let quota: SenderQuota

    // MARK: Submit

    public struct Submitted: Sendable {
        public let response: API.SubmitResponse
        public let duplicate: Bool
    }

    /// Checks and stores a sealed message; answers with the relay's signed acceptance receipt.
    public func submit(_ body: Data, as caller: Authenticated, logger: Logger) async throws(KetenpostError) -> Submitted {
        let started = ContinuousClock.now
        // The body may have taken up to limits.bodyTimeout to arrive: the partner and its
        // certificate are checked again before anything is decided or stored.
        let partner = try authenticator.recheck(caller.partner, certificate: caller.certificate, trust: caller.trust)
        // The message must carry its sender's intermediates itself (openssl: -certfile): the
        // recipient checks it with nothing but the trust anchors.
        let outer = try Envelope.readOuter(body, trust: credentials.trust)
        let header = outer.header
        guard header.from == partner.id else {
            throw KetenpostError(
                .senderMismatch,
                "The header's \"from\" (\(header.from)) is not the partner of the client certificate (\(partner.id))."
            )
        }
        let directory = self.directory.snapshot
        guard let (owner, signer) = directory.registration(of: outer.signer), owner.id == partner.id else {
            throw KetenpostError(.signerUnregistered, "The message is signed with a certificate that is not registered for \(partner.id).")
        }
        let now = clock()
        do {
            try await checkAcceptable(header, partner: partner, signer: signer, directory: directory, now: now, logger: logger)
            try await quota.admit(sender: partner.id, bytes: body.count, logger: logger)
        } catch {
            // A resubmission of what was accepted before gets the original receipt, whatever changed
            // since (expiry passed, recipient suspended): the sender's first answer may have been lost.
            // Looked up only here: on the way to acceptance the store itself answers duplicates.
            let stored: StoredMessage?
            do { stored = try await store.message(id: header.id) } catch let failure { throw .storeUnavailable(failure, logger: logger) }
            if let stored, stored.digest == outer.digest, stored.sender == partner.id {
                logger.info("duplicate submission answered with the original receipt", metadata: Self.metadata(stored))
                return Submitted(response: response(stored, duplicate: true), duplicate: true)
            }
            throw error
        }
        let acceptedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let limit = configuration.queue.maxLifetime[header.type] ?? Drafting.defaultLifetime(for: header.type)
        let expiresAt = min(header.expiresAt, acceptedAt.addingTimeInterval(limit))
        let identity = credentials.identity
        let receipt = Receipt(
            kind: .acceptance,
            messageId: header.id,
            messageDigest: outer.digest,
            from: header.from,
            to: header.to,
            issuer: identity.partnerID,
            disposition: .accepted,
            time: acceptedAt
        )
        let signedReceipt = try SignedReceipt.sign(receipt, as: identity)
        let outcome: SubmitOutcome
        do {
            outcome = try await store.submit(
                NewMessage(
                    id: header.id,
                    sender: header.from,
                    recipient: header.to,
                    type: header.type.rawValue,
                    priority: header.priority.rawValue,
                    correlationId: header.correlationId,
                    exploitationForm: header.exploitationForm?.rawValue,
                    region: header.region,
                    digest: outer.digest,
                    body: body,
                    acceptedAt: acceptedAt,
                    expiresAt: expiresAt,
                    acceptanceReceipt: signedReceipt
                )
            )
        } catch {
            throw .storeUnavailable(error, logger: logger)
        }
        switch outcome {
        case .accepted(let stored):
            logger.info("message accepted", metadata: Self.metadata(stored))
            metrics.count("accepted", type: stored.type)
            metrics.submitted(after: ContinuousClock.now - started)
            await notifier.notify(stored.recipient)
            return Submitted(response: response(stored, duplicate: false), duplicate: false)
        case .duplicate(let stored):
            logger.info("duplicate submission answered with the original receipt", metadata: Self.metadata(stored))
            return Submitted(response: response(stored, duplicate: true), duplicate: true)
        case .conflict:
            logger.notice(
                "submission refused: id already used",
                metadata: ["message.id": "\(header.id)", "partner.from": "\(header.from)"]
            )
            throw KetenpostError(
                .messageConflict,
                "Message id \(header.id.uuidString.lowercased()) was already accepted with other content; a new message needs a new id."
            )
        }
    }

    /// Everything a new submission must satisfy besides its signatures: signer usable, recipient
    /// known and active, policy, lifetime, clock skew, and an intake-response's correlation.
    private func checkAcceptable(
        _ header: RoutingHeader,
        partner: Partner,
        signer: RegisteredCertificate,
        directory: PartnerDirectory,
        now: Date,
        logger: Logger
    ) async throws(KetenpostError) {
        try authenticator.checkUsable(signer, for: .signing, partner: partner.id)
        guard let recipient = directory.partner(header.to) else {
            throw KetenpostError(.recipientUnknown, "There is no partner \(header.to) in the directory.")
        }
        guard recipient.state == .active else {
            throw KetenpostError(.recipientSuspended, "Partner \(recipient.id) is suspended and cannot receive messages now.")
        }
        // The conformance echo exchanges signals with everybody; otherwise the policy decides.
        let echo = configuration.conformance.echo.map { $0 == partner.id || $0 == recipient.id } ?? false
        guard echo ? header.type == .signal : policy.allows(header.type, from: partner.role, to: recipient.role) else {
            throw KetenpostError(
                .policyForbidden,
                "The policy does not allow a \(partner.role.rawValue) to send \(header.type.rawValue) to a \(recipient.role.rawValue)."
            )
        }
        guard header.expiresAt > now else {
            throw KetenpostError(.messageExpired, "The message expired at its expiresAt; seal it again with a later expiry.")
        }
        guard header.createdAt <= now.addingTimeInterval(300) else {
            throw KetenpostError(
                .createdInFuture,
                "The header's createdAt is more than five minutes ahead of the relay's clock; check the sender's clock."
            )
        }
        if let answered = header.type.answers, let correlationId = header.correlationId {  // the header schema requires it
            let original: StoredMessage?
            do { original = try await store.message(id: correlationId) } catch { throw .storeUnavailable(error, logger: logger) }
            guard let original, original.type == answered.rawValue, original.sender == header.to, original.recipient == header.from
            else {
                throw KetenpostError(
                    .correlationMismatch,
                    """
                    An \(header.type.rawValue) must answer an \(answered.rawValue) that \(header.to) sent to \(header.from); \
                    correlationId names none.
                    """
                )
            }
        }
    }

    private func response(_ stored: StoredMessage, duplicate: Bool) -> API.SubmitResponse {
        API.SubmitResponse(
            id: stored.id,
            state: stored.state.rawValue,
            acceptedAt: stored.acceptedAt,
            digest: stored.digest,
            receipt: stored.acceptanceReceipt.base64EncodedString(),
            duplicate: duplicate
        )
    }

    // MARK: Inbox

    /// Leases up to `limit` of the partner's messages, waiting up to `wait` for one to arrive.
    /// - Parameter isConnected: whether the caller is still there; nothing is leased to a closed connection.
    public func inbox(
        for caller: Authenticated,
        limit: Int,
        wait: TimeInterval,
        logger: Logger,
        isConnected: @Sendable () -> Bool = { true }
    ) async throws(KetenpostError) -> API.InboxResponse {
        API.InboxResponse(
            messages: try await leaseInbox(for: caller, limit: limit, wait: wait, logger: logger, isConnected: isConnected).map(
                inboxMessage
            )
        )
    }

    /// One leased message as the inbox answer carries it (the body in base64).
    public func inboxMessage(_ lease: Lease) -> API.InboxMessage { API.InboxMessage(inboxDelivery(lease)) }

    /// A lease in the binary inbox form: the sealed bytes as stored.
    public func inboxDelivery(_ lease: Lease) -> API.InboxDelivery {
        API.InboxDelivery(
            id: lease.message.id,
            from: lease.message.sender,
            type: lease.message.type,
            leaseToken: lease.message.leaseToken ?? "",
            leaseExpiresAt: lease.message.leaseUntil ?? clock(),
            attempt: lease.message.attempts,
            message: lease.body
        )
    }

    /// `inbox` without building the answer: the leases, for a caller that streams them. A batch
    /// holds at most `limits.maxBatchBytes` of sealed messages, and always at least one.
    public func leaseInbox(
        for caller: Authenticated,
        limit: Int,
        wait: TimeInterval,
        logger: Logger,
        isConnected: @Sendable () -> Bool = { true }
    ) async throws(KetenpostError) -> [Lease] {
        let limit = max(1, min(limit, 100))
        let deadline = ContinuousClock.now + .milliseconds(Int64(max(0, min(wait, configuration.queue.maxLongPoll)) * 1000))
        while true {
            if !isConnected() || Task.isCancelled { return [] }
            // Before every lease: a partner suspended or a certificate revoked during the wait gets nothing.
            let partner = try authenticator.recheck(caller.partner, certificate: caller.certificate, trust: caller.trust)
            let seen = await notifier.generation(for: partner.id)
            let leases: [Lease]
            do {
                leases = try await store.lease(
                    recipient: partner.id,
                    limit: limit,
                    maxBytes: configuration.limits.maxBatchBytes,
                    duration: configuration.queue.leaseDuration,
                    maxAttempts: configuration.queue.maxAttempts,
                    now: clock()
                )
            } catch {
                throw .storeUnavailable(error, logger: logger)
            }
            if !leases.isEmpty {
                for lease in leases {
                    logger.info("message leased", metadata: Self.metadata(lease.message))
                    metrics.count("delivered", type: lease.message.type)
                }
                return leases
            }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero || Task.isCancelled { return [] }
            await notifier.wait(for: partner.id, since: seen, timeout: remaining)
            if await notifier.closedState { return [] }
        }
    }

    // MARK: Acknowledge

    /// Completes a leased message with the recipient's signed receipt.
    public func acknowledge(
        id: UUID,
        leaseToken: String,
        receipt body: Data,
        as partner: Partner,
        logger: Logger
    ) async throws(KetenpostError) -> API.AcknowledgeResponse {
        let verified = try SignedReceipt.verify(body, trust: credentials.trust)
        let receipt = verified.receipt
        guard receipt.issuer == partner.id, let (owner, signer) = directory.snapshot.registration(of: verified.signer),
            owner.id == partner.id
        else {
            throw KetenpostError(
                .receiptSignerMismatch,
                "The receipt must be signed with a registered certificate of \(partner.id), the recipient."
            )
        }
        try authenticator.checkUsable(signer, for: .signing, partner: partner.id)
        // The receipt's claims are compared with the stored message inside the acknowledging
        // transaction (no read first), after "not found": a partner learns nothing of others' messages.
        let names =
            receipt.kind == .acknowledgement && receipt.messageId == id
            && (receipt.disposition == .processed || receipt.disposition == .rejected)
        let claims = ReceiptClaims(messageDigest: names ? receipt.messageDigest : nil, sender: receipt.from, recipient: receipt.to)
        let outcome: AcknowledgeOutcome
        do {
            outcome = try await store.acknowledge(
                id: id,
                recipient: partner.id,
                leaseToken: leaseToken,
                receipt: body,
                rejected: receipt.disposition == .rejected,
                reasonCode: receipt.reasonCode,
                claims: claims,
                now: clock()
            )
        } catch {
            throw .storeUnavailable(error, logger: logger)
        }
        switch outcome {
        case .completed(let message):
            logger.info("message acknowledged", metadata: Self.metadata(message))
            metrics.count(message.state == .rejected ? "rejected" : "acknowledged", type: message.type)
            metrics.endToEnd(seconds: clock().timeIntervalSince(message.acceptedAt), type: message.type)
            return API.AcknowledgeResponse(id: id, state: message.state.rawValue)
        case .alreadyCompleted(let message):
            return API.AcknowledgeResponse(id: id, state: message.state.rawValue)
        case .notFound:
            throw KetenpostError(.messageNotFound, "There is no message \(id.uuidString.lowercased()) for \(partner.id).")
        case .receiptMismatch:
            throw KetenpostError(
                .receiptMismatch,
                "The receipt does not name this message as accepted (kind acknowledgement, its id, its digest, its sender and recipient)."
            )
        case .notLeased:
            throw KetenpostError(.leaseInvalid, "This lease token is not the message's current lease; poll the inbox again.")
        case .leaseExpired:
            throw KetenpostError(.leaseExpired, "The lease ran out before the acknowledgement; the message will be delivered again.")
        case .final(let message):
            throw KetenpostError(.messageFinal, "The message is already \(message.state.rawValue).")
        }
    }

    // MARK: Status and directory

    /// The sender's view of its message; anybody else gets "not found".
    public func status(id: UUID, for partner: Partner, logger: Logger) async throws(KetenpostError) -> API.StatusResponse {
        let stored: StoredMessage?
        do { stored = try await store.message(id: id) } catch { throw .storeUnavailable(error, logger: logger) }
        guard let stored, stored.sender == partner.id else {
            throw KetenpostError(.messageNotFound, "There is no message \(id.uuidString.lowercased()) sent by \(partner.id).")
        }
        return API.StatusResponse(
            id: stored.id,
            type: stored.type,
            from: stored.sender,
            to: stored.recipient,
            state: stored.state.rawValue,
            digest: stored.digest,
            acceptedAt: stored.acceptedAt,
            expiresAt: stored.expiresAt,
            attempts: stored.attempts,
            firstDeliveredAt: stored.firstDeliveredAt,
            lastDeliveredAt: stored.lastDeliveredAt,
            completedAt: stored.completedAt,
            reasonCode: stored.reasonCode,
            acceptanceReceipt: stored.acceptanceReceipt.base64EncodedString(),
            recipientReceipt: stored.recipientReceipt?.base64EncodedString()
        )
    }

    /// What a partner needs to seal for another: its currently valid certificates.
    public func directoryEntry(_ id: String) throws(KetenpostError) -> API.DirectoryEntry {
        guard let partner = directory.snapshot.partner(id) else {
            throw KetenpostError(.recipientUnknown, "There is no partner \(id) in the directory.")
        }
        // Only certificates that are valid now, unrevoked and meant for receiving encrypted content.
        // During a rotation's overlap that is the old and the new one: seal to both.
        let trust = credentials.trust
        let valid = partner.usable(for: .encryption, at: clock())
            .filter { (try? trust.verify($0.certificate, chain: $0.intermediates, for: .contentEncryption)) != nil }
        var chain: [Certificate] = []
        for certificate in valid.flatMap(\.intermediates) where !chain.contains(certificate) { chain.append(certificate) }
        return API.DirectoryEntry(
            id: partner.id,
            name: partner.name,
            role: partner.role.rawValue,
            oin: partner.oin,
            state: partner.state.rawValue,
            certificates: valid.map(\.certificate.pem),
            chain: chain.map(\.pem),
            // Retired ones too: a message signed before a rotation is still opened after it.
            signers: partner.certificates.filter { $0.record.uses.contains(.signing) && $0.state(at: clock()) != .revoked }
                .map(\.certificate.fingerprint).sorted()
        )
    }

    /// The CRLs in effect, PEM: what recipients check senders with.
    public func revocationListsPEM() -> String {
        credentials.revocationLists.map(\.pem).joined()
    }

    /// Every partner of the directory, sorted by id (names and roles are public within the chain).
    public func directoryList() -> API.DirectoryList {
        API.DirectoryList(
            partners: directory.snapshot.partners.values.sorted { $0.id < $1.id }.map {
                API.DirectoryList.Partner(id: $0.id, name: $0.name, role: $0.role.rawValue, state: $0.state.rawValue)
            }
        )
    }

    /// Whether the store answers.
    public func ready() async -> Bool {
        (try? await store.pendingCount(recipient: configuration.relay.id)) != nil
    }

    // MARK: Housekeeping

    /// Applies expiry, dead-letters and retention once.
    public func sweep(logger: Logger) async throws -> SweepCounts {
        let counts = try await store.sweep(
            now: clock(),
            maxAttempts: configuration.queue.maxAttempts,
            retention: configuration.queue.retention
        )
        if counts != SweepCounts() {
            logger.info(
                "sweep",
                metadata: [
                    "sweep.expired": "\(counts.expired)", "sweep.dead_lettered": "\(counts.deadLettered)",
                    "sweep.purged": "\(counts.purged)",
                ]
            )
        }
        return counts
    }

    /// Ends every long poll now and every later one at once (graceful shutdown).
    func endLongPolls() async { await notifier.close() }

    static func metadata(_ message: StoredMessage) -> Logger.Metadata {
        [
            "message.id": "\(message.id)", "message.type": "\(message.type)", "partner.from": "\(message.sender)",
            "partner.to": "\(message.recipient)", "message.state": "\(message.state.rawValue)", "message.attempts": "\(message.attempts)",
        ]
    }
}

extension KetenpostError {
    /// A store failure as callers see it: retry later, nothing changed. Only the error's type is logged.
    static func storeUnavailable(_ error: any Error, logger: Logger) -> KetenpostError {
        logger.error("store failure", metadata: ["error.type": "\(type(of: error))"])
        return KetenpostError(.storeUnavailable, "The relay's store is unavailable; nothing was changed. Retry shortly.")
    }
}
