import Foundation
import Ketenpost
import KetenpostCrypto
import KetenpostModel
import KetenpostStore
import Logging
import NIOSSL
import Synchronization

/// The relay's rules, independent of HTTP: who may submit what, lease, acknowledge and see.
/// Every method takes the TLS client certificate of the caller.
public final class RelayCore: Sendable {
    public let configuration: RelayConfiguration
    public let policy: Policy
    public let store: any RelayStore
    let notifier = InboxNotifier()
    let rateLimiter: RateLimiter
    let clock: @Sendable () -> Date
    let logger: Logger
    /// Gauges for certificate expiry and CRL freshness (`/metrics`).
    public let metrics: RelayMetrics

    /// What changes without a restart, swapped as a whole: directory snapshots, trust anchors
    /// with CRLs, the relay's own certificate and key, the administrators.
    struct Live: Sendable {
        var directory: PartnerDirectory
        var credentials: RelayCredentials
    }
    let live: Mutex<Live>
    /// Serialises reloads (a SIGHUP during a scheduled check does one after the other).
    let crlAlarm = Mutex<(files: Set<String>, loggedAt: Date)>(([], .distantPast))

    public var directory: PartnerDirectory { live.withLock { $0.directory } }
    public var trust: TrustStore { live.withLock { $0.credentials.trust } }
    public var identity: Identity { live.withLock { $0.credentials.identity } }
    var credentials: RelayCredentials { live.withLock { $0.credentials } }

    /// A core from values in memory (no files, no administrators): for harnesses such as the fuzz targets.
    public convenience init(configuration: RelayConfiguration, directory: PartnerDirectory, policy: Policy, trust: TrustStore,
                            identity: Identity, store: any RelayStore, logger: Logger) throws {
        let credentials = RelayCredentials(
            trust: trust, identity: identity, tlsChain: [], tlsKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(try identity.key.pem().utf8), format: .pem)),
            administrators: [], crls: [], digest: "")
        self.init(configuration: configuration, directory: directory, policy: policy, credentials: credentials, store: store, logger: logger)
    }

    init(configuration: RelayConfiguration, directory: PartnerDirectory, policy: Policy, credentials: RelayCredentials,
         store: any RelayStore, logger: Logger, clock: @escaping @Sendable () -> Date = { Date() }) {
        self.configuration = configuration
        self.policy = policy
        self.store = store
        self.logger = logger
        self.clock = clock
        live = Mutex(Live(directory: directory, credentials: credentials))
        rateLimiter = RateLimiter(rate: configuration.ratePerSecond, burst: configuration.rateBurst)
        metrics = RelayMetrics()
    }

    // MARK: Authentication

    /// The partner behind a TLS client certificate: registered and usable for TLS now, partner
    /// active, chain and revocation valid.
    public func authenticate(_ peer: Certificate?) throws(KetenpostError) -> Partner {
        guard let peer else {
            throw KetenpostError(.unknownPartner, "A client certificate is required.")
        }
        let (directory, trust) = live.withLock { ($0.directory, $0.credentials.trust) }
        guard let (partner, registered) = directory.registration(of: peer) else {
            throw KetenpostError(.unknownPartner, "The client certificate is not registered for any partner in the directory.")
        }
        try checkUsable(registered, for: .tlsClient, partner: partner.id)
        guard partner.state == .active else {
            throw KetenpostError(.partnerSuspended, "Partner \(partner.id) is suspended; contact the relay administrators.")
        }
        do {
            try trust.verify(peer, for: .tlsClient)
        } catch {
            throw .certificate(error, role: "client")
        }
        return partner
    }

    /// Refuses a registered certificate that is revoked, pending, retired or expired in the
    /// directory, or not registered for this use.
    func checkUsable(_ registered: RegisteredCertificate, for use: CertificateUse, partner: String) throws(KetenpostError) {
        let state = registered.state(at: clock())
        switch state {
        case .revoked:
            throw KetenpostError(.certificateRevoked, "This certificate of \(partner) was revoked by the relay administrators; use its replacement.")
        case .active, .retiring:
            guard registered.record.uses.contains(use) else {
                throw KetenpostError(.certificateInactive, "This certificate of \(partner) is not registered for \(use.rawValue); ask the relay administrators to register it for that use.")
            }
        case .pending, .retired, .expired:
            throw KetenpostError(.certificateInactive, "This certificate of \(partner) is \(state.rawValue) in the directory; use the partner's current certificate.")
        }
    }

    func checkRate(_ partner: Partner) throws(KetenpostError) {
        if let wait = rateLimiter.take(partner.id) {
            // Clamped: a wait that is not a sane number of seconds must not trap the conversion.
            let seconds = wait.isFinite ? max(1, Int(min(wait, 86_400).rounded(.up))) : 86_400
            throw KetenpostError(.rateLimited, "Too many requests from \(partner.id); retry after \(seconds) second(s).",
                                 detail: ["retry-after=\(seconds)"])
        }
    }

    // MARK: Submit

    public struct Submitted: Sendable {
        public let response: API.SubmitResponse
        public let duplicate: Bool
    }

    /// Authentication and rate limit, for callers that check them before reading a body:
    /// an unknown or throttled partner does not get to upload megabytes first.
    public func admit(_ peer: Certificate?) throws(KetenpostError) -> Partner {
        let partner = try authenticate(peer)
        try checkRate(partner)
        return partner
    }

    /// Checks and stores a sealed message; answers with the relay's signed acceptance receipt.
    public func submit(_ body: Data, peer: Certificate?) async throws(KetenpostError) -> Submitted {
        try await submit(body, as: try admit(peer))
    }

    /// `submit` for a partner already admitted (`admit`).
    public func submit(_ body: Data, as partner: Partner) async throws(KetenpostError) -> Submitted {
        let started = ContinuousClock.now
        let outer = try Envelope.readOuter(body, trust: trust)
        let header = outer.header
        guard header.from == partner.id else {
            throw KetenpostError(.senderMismatch, "The header's \"from\" (\(header.from)) is not the partner of the client certificate (\(partner.id)).")
        }
        let directory = self.directory
        guard let (owner, signer) = directory.registration(of: outer.signer), owner.id == partner.id else {
            throw KetenpostError(.signerUnregistered, "The message is signed with a certificate that is not registered for \(partner.id).")
        }
        let now = clock()
        do {
            try await checkAcceptable(header, partner: partner, signer: signer, directory: directory, now: now)
        } catch {
            // A resubmission of what was accepted before gets the original receipt, whatever changed
            // since (expiry passed, recipient suspended): the sender's first answer may have been lost.
            // Looked up only here: on the way to acceptance the store itself answers duplicates.
            let stored: StoredMessage?
            do { stored = try await store.message(id: header.id) } catch let failure { throw storeFailure(failure) }
            if let stored, stored.digest == outer.digest, stored.sender == partner.id {
                logger.info("duplicate submission answered with the original receipt", metadata: metadata(stored))
                return Submitted(response: response(stored, duplicate: true), duplicate: true)
            }
            throw error
        }
        let acceptedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let limit = configuration.maxLifetime[header.type] ?? Drafting.defaultLifetime(for: header.type)
        let expiresAt = min(header.expiresAt, acceptedAt.addingTimeInterval(limit))
        let identity = self.identity
        let receipt = Receipt(kind: .acceptance, messageId: header.id, messageDigest: outer.digest, from: header.from,
                              to: header.to, issuer: identity.partnerID, disposition: .accepted, time: acceptedAt)
        let signedReceipt = try SignedReceipt.sign(receipt, as: identity)
        let outcome: SubmitOutcome
        do {
            outcome = try await store.submit(NewMessage(
                id: header.id, sender: header.from, recipient: header.to, type: header.type.rawValue,
                priority: header.priority.rawValue, correlationId: header.correlationId,
                exploitationForm: header.exploitationForm?.rawValue, region: header.region, digest: outer.digest,
                body: body, acceptedAt: acceptedAt, expiresAt: expiresAt, acceptanceReceipt: signedReceipt))
        } catch {
            throw storeFailure(error)
        }
        switch outcome {
        case .accepted(let stored):
            logger.info("message accepted", metadata: metadata(stored))
            metrics.count("accepted", type: stored.type)
            metrics.submitted(after: ContinuousClock.now - started)
            await notifier.notify(stored.recipient)
            return Submitted(response: response(stored, duplicate: false), duplicate: false)
        case .duplicate(let stored):
            logger.info("duplicate submission answered with the original receipt", metadata: metadata(stored))
            return Submitted(response: response(stored, duplicate: true), duplicate: true)
        case .conflict:
            logger.notice("submission refused: id already used", metadata: ["message.id": "\(header.id)", "partner.from": "\(header.from)"])
            throw KetenpostError(.messageConflict, "Message id \(header.id.uuidString.lowercased()) was already accepted with other content; a new message needs a new id.")
        }
    }

    /// Everything a new submission must satisfy besides its signatures: signer usable, recipient
    /// known and active, policy, lifetime, clock skew, and an intake-response's correlation.
    private func checkAcceptable(_ header: RoutingHeader, partner: Partner, signer: RegisteredCertificate,
                                 directory: PartnerDirectory, now: Date) async throws(KetenpostError) {
        try checkUsable(signer, for: .signing, partner: partner.id)
        guard let recipient = directory.partner(header.to) else {
            throw KetenpostError(.recipientUnknown, "There is no partner \(header.to) in the directory.")
        }
        guard recipient.state == .active else {
            throw KetenpostError(.recipientSuspended, "Partner \(recipient.id) is suspended and cannot receive messages now.")
        }
        // The conformance echo exchanges signals with everybody; otherwise the policy decides.
        let echo = configuration.conformanceEcho.map { $0 == partner.id || $0 == recipient.id } ?? false
        guard echo ? header.type == .signal : policy.allows(header.type, from: partner.role, to: recipient.role) else {
            throw KetenpostError(.policyForbidden, "The policy does not allow a \(partner.role.rawValue) to send \(header.type.rawValue) to a \(recipient.role.rawValue).")
        }
        guard header.expiresAt > now else {
            throw KetenpostError(.messageExpired, "The message expired at its expiresAt; seal it again with a later expiry.")
        }
        guard header.createdAt <= now.addingTimeInterval(300) else {
            throw KetenpostError(.createdInFuture, "The header's createdAt is more than five minutes ahead of the relay's clock; check the sender's clock.")
        }
        if header.type == .intakeResponse {
            try await checkCorrelation(header)
        }
    }

    private func checkCorrelation(_ header: RoutingHeader) async throws(KetenpostError) {
        guard let correlationId = header.correlationId else { return }   // the header schema requires it
        let original: StoredMessage?
        do { original = try await store.message(id: correlationId) } catch { throw storeFailure(error) }
        guard let original, original.type == MessageType.intakeNotice.rawValue,
              original.sender == header.to, original.recipient == header.from else {
            throw KetenpostError(.correlationMismatch, "An intake-response must answer an intake-notice that \(header.to) sent to \(header.from); correlationId names none.")
        }
    }

    private func response(_ stored: StoredMessage, duplicate: Bool) -> API.SubmitResponse {
        API.SubmitResponse(id: stored.id, state: stored.state.rawValue, acceptedAt: stored.acceptedAt, digest: stored.digest,
                           receipt: stored.acceptanceReceipt.base64EncodedString(), duplicate: duplicate)
    }

    // MARK: Inbox

    /// Leases up to `limit` of the caller's messages, waiting up to `wait` for one to arrive.
    /// - Parameter isConnected: whether the caller is still there; nothing is leased to a closed connection.
    public func inbox(peer: Certificate?, limit: Int, wait: TimeInterval,
                      isConnected: @Sendable () -> Bool = { true }) async throws(KetenpostError) -> API.InboxResponse {
        let partner = try authenticate(peer)
        try checkRate(partner)
        let limit = max(1, min(limit, 100))
        let deadline = ContinuousClock.now + .milliseconds(Int64(max(0, min(wait, configuration.maxLongPoll)) * 1000))
        while true {
            if !isConnected() || Task.isCancelled { return API.InboxResponse(messages: []) }
            let seen = await notifier.generation(for: partner.id)
            let leases: [Lease]
            do {
                leases = try await store.lease(recipient: partner.id, limit: limit, duration: configuration.leaseDuration,
                                               maxAttempts: configuration.maxAttempts, now: clock())
            } catch {
                throw storeFailure(error)
            }
            if !leases.isEmpty {
                for lease in leases {
                    logger.info("message leased", metadata: metadata(lease.message))
                    metrics.count("delivered", type: lease.message.type)
                }
                return API.InboxResponse(messages: leases.map {
                    API.InboxMessage(id: $0.message.id, from: $0.message.sender, type: $0.message.type,
                                     leaseToken: $0.message.leaseToken ?? "",
                                     leaseExpiresAt: $0.message.leaseUntil ?? clock(), attempt: $0.message.attempts,
                                     message: $0.body.base64EncodedString())
                })
            }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero || Task.isCancelled { return API.InboxResponse(messages: []) }
            await notifier.wait(for: partner.id, since: seen, timeout: remaining)
            if await notifier.isClosed { return API.InboxResponse(messages: []) }
        }
    }

    // MARK: Acknowledge

    /// Completes a leased message with the recipient's signed receipt.
    public func acknowledge(id: UUID, leaseToken: String, receipt body: Data, peer: Certificate?) async throws(KetenpostError) -> API.AcknowledgeResponse {
        let partner = try authenticate(peer)
        try checkRate(partner)
        let verified = try SignedReceipt.verify(body, trust: trust)
        let receipt = verified.receipt
        guard receipt.issuer == partner.id, let (owner, signer) = directory.registration(of: verified.signer), owner.id == partner.id else {
            throw KetenpostError(.receiptSignerMismatch, "The receipt must be signed with a registered certificate of \(partner.id), the recipient.")
        }
        try checkUsable(signer, for: .signing, partner: partner.id)
        // The receipt's claims are compared with the stored message inside the acknowledging
        // transaction (no read first), after "not found": a partner learns nothing of others' messages.
        let names = receipt.kind == .acknowledgement && receipt.messageId == id
            && (receipt.disposition == .processed || receipt.disposition == .rejected)
        let claims = ReceiptClaims(messageDigest: names ? receipt.messageDigest : nil, sender: receipt.from, recipient: receipt.to)
        let outcome: AcknowledgeOutcome
        do {
            outcome = try await store.acknowledge(id: id, recipient: partner.id, leaseToken: leaseToken, receipt: body,
                                                  rejected: receipt.disposition == .rejected, reasonCode: receipt.reasonCode,
                                                  claims: claims, now: clock())
        } catch {
            throw storeFailure(error)
        }
        switch outcome {
        case .completed(let message):
            logger.info("message acknowledged", metadata: metadata(message))
            metrics.count(message.state == .rejected ? "rejected" : "acknowledged", type: message.type)
            metrics.endToEnd(seconds: clock().timeIntervalSince(message.acceptedAt), type: message.type)
            return API.AcknowledgeResponse(id: id, state: message.state.rawValue)
        case .alreadyCompleted(let message):
            return API.AcknowledgeResponse(id: id, state: message.state.rawValue)
        case .notFound:
            throw KetenpostError(.messageNotFound, "There is no message \(id.uuidString.lowercased()) for \(partner.id).")
        case .receiptMismatch:
            throw KetenpostError(.receiptMismatch, "The receipt does not name this message as accepted (kind acknowledgement, its id, its digest, its sender and recipient).")
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
    public func status(id: UUID, peer: Certificate?) async throws(KetenpostError) -> API.StatusResponse {
        let partner = try authenticate(peer)
        try checkRate(partner)
        let stored: StoredMessage?
        do { stored = try await store.message(id: id) } catch { throw storeFailure(error) }
        guard let stored, stored.sender == partner.id else {
            throw KetenpostError(.messageNotFound, "There is no message \(id.uuidString.lowercased()) sent by \(partner.id).")
        }
        return API.StatusResponse(
            id: stored.id, type: stored.type, from: stored.sender, to: stored.recipient, state: stored.state.rawValue,
            digest: stored.digest, acceptedAt: stored.acceptedAt, expiresAt: stored.expiresAt, attempts: stored.attempts,
            firstDeliveredAt: stored.firstDeliveredAt, lastDeliveredAt: stored.lastDeliveredAt, completedAt: stored.completedAt,
            reasonCode: stored.reasonCode, acceptanceReceipt: stored.acceptanceReceipt.base64EncodedString(),
            recipientReceipt: stored.recipientReceipt?.base64EncodedString())
    }

    /// What a partner needs to seal for another: its currently valid certificates.
    public func directoryEntry(_ id: String, peer: Certificate?) throws(KetenpostError) -> API.DirectoryEntry {
        let caller = try authenticate(peer)
        try checkRate(caller)
        guard let partner = directory.partner(id) else {
            throw KetenpostError(.recipientUnknown, "There is no partner \(id) in the directory.")
        }
        // Only certificates that are valid now, unrevoked and meant for receiving encrypted content.
        // During a rotation's overlap that is the old and the new one: seal to both.
        let trust = self.trust
        let valid = partner.usable(for: .encryption, at: clock()).map(\.certificate)
            .filter { (try? trust.verify($0, for: .contentEncryption)) != nil }
        return API.DirectoryEntry(id: partner.id, name: partner.name, role: partner.role.rawValue, oin: partner.oin,
                                  state: partner.state.rawValue, certificates: valid.map(\.pem))
    }

    /// Whether the store answers.
    public func ready() async -> Bool {
        (try? await store.pendingCount(recipient: configuration.relayID)) != nil
    }

    // MARK: Housekeeping

    public func sweep() async throws -> SweepCounts {
        let counts = try await store.sweep(now: clock(), maxAttempts: configuration.maxAttempts, retention: configuration.retention)
        if counts != SweepCounts() {
            logger.info("sweep", metadata: ["sweep.expired": "\(counts.expired)", "sweep.dead_lettered": "\(counts.deadLettered)",
                                            "sweep.purged": "\(counts.purged)"])
        }
        return counts
    }

    func shutdown() async { await notifier.close() }

    func storeFailure(_ error: any Error) -> KetenpostError {
        logger.error("store failure", metadata: ["error.type": "\(type(of: error))"])
        return KetenpostError(.storeUnavailable, "The relay's store is unavailable; nothing was changed. Retry shortly.")
    }

    private func metadata(_ message: StoredMessage) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "message.id": "\(message.id)", "message.type": "\(message.type)", "partner.from": "\(message.sender)",
            "partner.to": "\(message.recipient)", "message.state": "\(message.state.rawValue)", "message.attempts": "\(message.attempts)"]
        if let id = RequestScope.id { metadata["request.id"] = "\(id)" }
        return metadata
    }
}

extension InboxNotifier {
    var isClosed: Bool { closedState }
}
