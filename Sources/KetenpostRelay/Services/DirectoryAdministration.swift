import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostStore
import Logging

/// Directory administration for holders of an administrator certificate (`admin.certificates`):
/// partners, their states and certificates, expiry, the audit trail. Every change goes through
/// the store in one transaction with its audit event, then applies on this instance at once
/// (other instances within `directory.refreshInterval`). Callers authenticate the administrator
/// first and pass its audit actor.
public struct DirectoryAdministration: Sendable {
    let configuration: RelayConfiguration
    let store: any RelayStore
    let credentials: LiveCredentials
    let directory: LiveDirectory
    let notifier: InboxNotifier
    let revocation: RevocationService
    let clock: @Sendable () -> Date

    /// PKIoverheid has two CA levels below the root; five leaves room and bounds the work.
    static let maximumIntermediates = 5

    public func partners() -> API.AdminPartnerList {
        let directory = self.directory.snapshot
        return API.AdminPartnerList(
            version: directory.version,
            partners: directory.partners.values.sorted { $0.id < $1.id }.map(view)
        )
    }

    public func partner(_ id: String) throws(KetenpostError) -> API.AdminPartner {
        guard let partner = directory.snapshot.partner(id) else { throw notFound(id) }
        return view(partner)
    }

    public func addPartner(_ request: API.AdminNewPartner, actor: String, logger: Logger) async throws(KetenpostError) -> API.AdminPartner {
        guard PartnerID.isValid(request.id) else {
            throw KetenpostError(.requestInvalid, "id must be lowercase letters, digits and dashes (2 to 63 characters).")
        }
        guard request.id != configuration.relay.id else { throw KetenpostError(.requestInvalid, "id may not be the relay's own id.") }
        guard let role = PartnerRole(rawValue: request.role) else {
            throw KetenpostError(.requestInvalid, "role must be one of \(PartnerRole.allCases.map(\.rawValue).joined(separator: ", ")).")
        }
        let name = request.name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty, name.count <= 200 else { throw KetenpostError(.requestInvalid, "name must be 1 to 200 characters.") }
        guard Identifiers.isValidOIN(request.oin) else { throw KetenpostError(.requestInvalid, "oin must be exactly 20 digits.") }
        let now = clock()
        var changes: [DirectoryChange] = [
            .addPartner(
                DirectoryPartner(
                    id: request.id,
                    name: name,
                    role: role.rawValue,
                    oin: request.oin,
                    state: PartnerState.active.rawValue
                )
            )
        ]
        for input in request.certificates {
            changes.append(
                .addCertificate(try await checkedCertificateFetchingCRLs(input, partner: request.id, oin: request.oin, now: now))
            )
        }
        try await apply(changes, actor: actor, at: now, logger: logger)
        guard let partner = directory.snapshot.partner(request.id) else { throw notFound(request.id) }
        return view(partner)
    }

    public func setState(
        _ id: String,
        _ state: PartnerState,
        actor: String,
        logger: Logger
    ) async throws(KetenpostError) -> API.AdminPartner {
        guard directory.snapshot.partner(id) != nil else { throw notFound(id) }
        try await apply([.setPartnerState(id: id, state: state.rawValue)], actor: actor, at: clock(), logger: logger)
        if state == .active { await notifier.notify(id) }
        guard let partner = directory.snapshot.partner(id) else { throw notFound(id) }
        return view(partner)
    }

    /// Registers another certificate, active from `activatesAt` (default now); nothing retires.
    public func addCertificate(
        _ id: String,
        _ input: API.AdminCertificateInput,
        actor: String,
        logger: Logger
    ) async throws(KetenpostError) -> API.AdminPartner {
        guard let partner = directory.snapshot.partner(id) else { throw notFound(id) }
        let now = clock()
        try await apply(
            [.addCertificate(try await checkedCertificateFetchingCRLs(input, partner: id, oin: partner.oin, now: now))],
            actor: actor,
            at: now,
            logger: logger
        )
        guard let updated = directory.snapshot.partner(id) else { throw notFound(id) }
        return view(updated)
    }

    /// The new certificate is active at once; every active certificate of the partner that shares
    /// a use with it keeps working for the overlap, then retires by itself.
    public func rotate(
        _ id: String,
        _ rotation: API.AdminRotation,
        actor: String,
        logger: Logger
    ) async throws(KetenpostError) -> API.AdminPartner {
        guard let partner = directory.snapshot.partner(id) else { throw notFound(id) }
        guard rotation.overlapSeconds >= 0, rotation.overlapSeconds <= 366 * 86_400 else {
            throw KetenpostError(.requestInvalid, "overlapSeconds must be between 0 and one year.")
        }
        guard rotation.certificate.activatesAt == nil else {
            throw KetenpostError(.requestInvalid, "A rotation starts now; to schedule a certificate, add it with an activation time.")
        }
        let now = clock()
        let new = try await checkedCertificateFetchingCRLs(rotation.certificate, partner: id, oin: partner.oin, now: now)
        let until = DirectoryImport.wholeSeconds(now.addingTimeInterval(rotation.overlapSeconds))
        var changes: [DirectoryChange] = [.addCertificate(new)]
        for old in partner.certificates where old.state(at: now) == .active || old.state(at: now) == .pending {
            if !Set(old.record.uses).isDisjoint(with: new.uses) {
                changes.append(.retireCertificate(fingerprint: old.fingerprint, at: until))
            }
        }
        try await apply(changes, actor: actor, at: now, logger: logger)
        guard let updated = directory.snapshot.partner(id) else { throw notFound(id) }
        return view(updated)
    }

    /// Revokes at once: refused for new handshakes, requests on open connections, signatures on
    /// submissions and receipts, and no longer handed out for sealing.
    public func revoke(fingerprint: String, reason: String, actor: String, logger: Logger) async throws(KetenpostError) -> API.AdminPartner
    {
        let fingerprint = fingerprint.lowercased()
        guard let registered = directory.snapshot.registration(fingerprint: fingerprint) else {
            throw KetenpostError(
                .certificateNotFound,
                "No certificate with fingerprint \(fingerprint) is registered; list them with `ketenpost admin partners show ID`."
            )
        }
        guard reason.count <= 64, !reason.isEmpty, reason.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw KetenpostError(.requestInvalid, "reason must be a short code of letters, digits and dashes, such as key-compromise.")
        }
        try await apply(
            [.revokeCertificate(fingerprint: fingerprint, at: clock(), reason: reason)],
            actor: actor,
            at: clock(),
            logger: logger
        )
        logger.notice(
            "certificate revoked",
            metadata: [
                "partner.id": "\(registered.record.partnerID)",
                "certificate.fingerprint": "\(fingerprint.prefix(16))", "revocation.reason": "\(reason)",
            ]
        )
        guard let updated = directory.snapshot.partner(registered.record.partnerID) else { throw notFound(registered.record.partnerID) }
        return view(updated)
    }

    /// Every CRL the relay holds, per CA: fetched ones (with their last error) and `tls.crls` files.
    public func revocationLists(logger: Logger) async throws(KetenpostError) -> API.AdminRevocationLists {
        let now = Date()  // the system time, by which OpenSSL judges a CRL's nextUpdate
        let stored: [StoredRevocationList]
        do { stored = try await store.revocationLists() } catch { throw .storeUnavailable(error, logger: logger) }
        let inEffect = Set(credentials.revocationLists.map(\.der))
        func state(_ next: Date?, held: Bool) -> String {
            guard held else { return "missing" }
            return next.map { $0 <= now } == true ? "stale" : "current"
        }
        var lists = stored.map { row in
            API.AdminRevocationList(
                ca: LiveCredentials.commonName(row.issuer),
                issuer: row.issuer,
                source: row.source,
                state: state(row.nextUpdate, held: !row.der.isEmpty),
                inEffect: !row.der.isEmpty && inEffect.contains(row.der),
                thisUpdate: row.thisUpdate,
                nextUpdate: row.nextUpdate,
                revokedCount: row.revokedCount,
                fetchedAt: row.fetchedAt,
                lastError: row.lastError,
                lastAttemptAt: row.lastAttemptAt
            )
        }
        for (file, _, _, der) in credentials.value.crls {
            guard let list = try? RevocationList(der: der) else { continue }
            lists.append(
                API.AdminRevocationList(
                    ca: LiveCredentials.commonName(list.issuer),
                    issuer: list.issuer,
                    source: "file:\(file)",
                    state: state(list.nextUpdate, held: true),
                    inEffect: inEffect.contains(der),
                    thisUpdate: list.lastUpdate,
                    nextUpdate: list.nextUpdate,
                    revokedCount: list.revokedCount,
                    fetchedAt: nil,
                    lastError: nil,
                    lastAttemptAt: nil
                )
            )
        }
        return API.AdminRevocationLists(
            staleCRL: configuration.tls.acceptStaleCRL ? "accept" : "refuse",
            lists: lists.sorted { ($0.ca, $0.source) < ($1.ca, $1.source) }
        )
    }

    public func expiring(within: TimeInterval) -> API.AdminExpiring {
        let now = clock()
        return API.AdminExpiring(
            withinDays: Int(within / 86_400),
            certificates: directory.expiring(within: within, at: now).map {
                API.AdminExpiring.Item(partner: $0.partner, certificate: view($0.certificate, now: now))
            }
        )
    }

    public func events(after: Int64, limit: Int, logger: Logger) async throws(KetenpostError) -> API.AdminEvents {
        do {
            return API.AdminEvents(
                events: try await store.auditRecords(after: after, limit: max(1, min(limit, 1000))).map {
                    API.AdminEvent(
                        sequence: $0.sequence,
                        at: $0.date,
                        actor: $0.actor,
                        action: $0.action,
                        messageId: $0.messageId,
                        partner: $0.partnerId,
                        fingerprint: $0.fingerprint,
                        detail: $0.detail,
                        hash: $0.hash
                    )
                }
            )
        } catch {
            throw .storeUnavailable(error, logger: logger)
        }
    }

    // MARK: Helpers

    /// Applies in the store, then reloads this instance's directory before answering.
    func apply(_ changes: [DirectoryChange], actor: String, at now: Date, logger: Logger) async throws(KetenpostError) {
        do {
            try await store.applyDirectory(changes, actor: actor, at: now)
        } catch let error as StoreError {
            switch error.code {
            case .partnerExists: throw KetenpostError(.partnerExists, "Partner \(error.subject) exists already.")
            case .partnerNotFound: throw notFound(error.subject)
            case .certificateExists:
                throw KetenpostError(.certificateExists, "This certificate is registered already (\(error.subject.prefix(16))…).")
            case .certificateNotFound:
                throw KetenpostError(.certificateNotFound, "No certificate \(error.subject.prefix(16))… is registered.")
            case .certificateRevoked:
                throw KetenpostError(
                    .certificateRevoked,
                    "Certificate \(error.subject.prefix(16))… is revoked; a revoked certificate does not change again."
                )
            default: throw .storeUnavailable(error, logger: logger)
            }
        } catch {
            throw .storeUnavailable(error, logger: logger)
        }
        for change in changes {
            logger.notice("directory changed", metadata: ["directory.action": "\(Self.action(change))", "audit.actor": "\(actor)"])
        }
        do { try await directory.refresh() } catch { throw .storeUnavailable(error, logger: logger) }
    }

    private static func action(_ change: DirectoryChange) -> String {
        switch change {
        case .addPartner: return "partner.added"
        case .setPartnerState(_, let state): return "partner.state=\(state)"
        case .addCertificate: return "certificate.added"
        case .retireCertificate: return "certificate.retiring"
        case .revokeCertificate: return "certificate.revoked"
        }
    }

    /// One PEM certificate for this partner (commonName = id, OIN if present), optionally followed
    /// by its intermediate CA certificates, chaining to the trust anchors for every use asked for,
    /// not expired.
    /// `checkedCertificate` after fetching the CRLs of CAs in its chain that the relay does not
    /// hold yet (a partner from a new CA), so that its revocation is checked at registration.
    func checkedCertificateFetchingCRLs(
        _ input: API.AdminCertificateInput,
        partner: String,
        oin: String,
        now: Date
    ) async throws(KetenpostError) -> DirectoryCertificate {
        await revocation.ensureLists(for: input.pem)
        let record = try checkedCertificate(input, partner: partner, oin: oin, now: now)
        // With `revocation.ocsp: on`, the responder the certificate names has its say too.
        guard let certificate = try? Certificate(der: record.der) else { return record }
        let chain = record.chain.compactMap { try? Certificate(der: $0) }
        switch await revocation.ocspStatus(of: certificate, chain: chain) {
        case nil, .success(.good)?:
            return record
        case .success(.revoked)?:
            throw KetenpostError(.certificateRevoked, "The new certificate was refused: its CA's OCSP responder says it is revoked.")
        case .success(.unknown)?:
            guard configuration.tls.acceptStaleCRL else {
                throw KetenpostError(
                    .certificateCRLUnavailable,
                    "The new certificate was refused: its CA's OCSP responder does not know it (tls.staleCRL: refuse)."
                )
            }
            return record
        case .failure(let failure)?:
            guard configuration.tls.acceptStaleCRL else {
                throw KetenpostError(
                    .certificateCRLUnavailable,
                    """
                    The new certificate was refused: its revocation could not be checked with its CA's OCSP responder \
                    (\(failure.sentence)); try again when the responder answers (tls.staleCRL: refuse).
                    """
                )
            }
            return record
        }
    }

    func checkedCertificate(
        _ input: API.AdminCertificateInput,
        partner: String,
        oin: String,
        now: Date
    ) throws(KetenpostError) -> DirectoryCertificate {
        let certificates: [Certificate]
        do { certificates = try Certificate.all(pem: Data(input.pem.utf8)) } catch {
            throw KetenpostError(.requestInvalid, "pem must hold one PEM certificate.")
        }
        guard let certificate = certificates.first, !certificate.isCA else {
            throw KetenpostError(
                .requestInvalid,
                "pem must start with the partner's own certificate (not a CA certificate), followed by its intermediates if any."
            )
        }
        let chain = Array(certificates.dropFirst())
        guard chain.allSatisfy(\.isCA), chain.count <= Self.maximumIntermediates else {
            throw KetenpostError(
                .requestInvalid,
                """
                After the partner's certificate, pem may only hold its intermediate CA certificates (at most \
                \(Self.maximumIntermediates)); leave out other certificates.
                """
            )
        }
        guard certificate.commonName == partner else {
            throw KetenpostError(.requestInvalid, "The certificate's commonName must be the partner id \(partner).")
        }
        // Recipients accept a sender's signature only with the sender's OIN in it (a national CA
        // checks the OIN; the commonName is the subscriber's choice), so every certificate needs it.
        guard certificate.subjectSerialNumber == oin else {
            throw KetenpostError(
                .requestInvalid,
                certificate.subjectSerialNumber == nil
                    ? "The certificate's subject has no serialNumber; it must carry the partner's OIN (\(oin))."
                    : "The certificate's subject serialNumber (OIN) is not the partner's OIN (\(oin))."
            )
        }
        var uses: [CertificateUse] = []
        for name in input.uses ?? CertificateUse.allCases.map(\.rawValue) {
            guard let use = CertificateUse(rawValue: name) else {
                throw KetenpostError(.requestInvalid, "uses may hold signing, encryption and tls-client.")
            }
            if !uses.contains(use) { uses.append(use) }
        }
        guard !uses.isEmpty else { throw KetenpostError(.requestInvalid, "uses must name at least one use.") }
        let activatesAt = input.activatesAt ?? now
        guard certificate.notAfter > max(now, activatesAt) else {
            throw KetenpostError(.certificateExpired, "The certificate expires before it would become active.")
        }
        // Checked where it will be used: a not-yet-valid certificate at its own start. The path may
        // run through intermediates the relay knows already (other partners', its own); the ones
        // on the path are stored with the certificate, so that others can check it too.
        let at = certificate.notBefore > now ? certificate.notBefore : nil
        let known = chain + directory.snapshot.intermediates + credentials.identity.chain
        var path: [Certificate] = []
        for use in uses {
            let purpose: TrustStore.Purpose
            switch use {
            case .signing: purpose = .contentSigning
            case .encryption: purpose = .contentEncryption
            case .tlsClient: purpose = .tlsClient
            }
            do { path = try credentials.trust.path(for: certificate, chain: known, purpose: purpose, at: at) } catch {
                throw .certificate(error, role: "new")
            }
        }
        return DirectoryImport.record(certificate, chain: path, partner: partner, uses: uses, activatesAt: activatesAt, now: now)
    }

    private func notFound(_ id: String) -> KetenpostError {
        KetenpostError(.partnerNotFound, "There is no partner \(id) in the directory.")
    }

    private func view(_ partner: Partner) -> API.AdminPartner {
        let now = clock()
        return API.AdminPartner(
            id: partner.id,
            name: partner.name,
            role: partner.role.rawValue,
            oin: partner.oin,
            state: partner.state.rawValue,
            certificates: partner.certificates.map { view($0, now: now) }
        )
    }

    private func view(_ certificate: RegisteredCertificate, now: Date) -> API.AdminCertificate {
        let r = certificate.record
        return API.AdminCertificate(
            fingerprint: r.fingerprint,
            serial: r.serial,
            uses: r.uses.map(\.rawValue),
            state: r.state(at: now).rawValue,
            notBefore: r.notBefore,
            notAfter: r.notAfter,
            activatesAt: r.activatesAt,
            retiresAt: r.retiresAt,
            revokedAt: r.revokedAt,
            revocationReason: r.revocationReason,
            daysLeft: Int((r.notAfter.timeIntervalSince(now) / 86_400).rounded(.down))
        )
    }
}
