import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostStore

/// Who is calling, established once per request from the TLS client certificate.
public enum Caller: Sendable {
    /// A registered partner whose certificate is usable for TLS now, with that certificate (a
    /// long request checks it again before it commits anything).
    case partner(Partner, certificate: Certificate, trust: TrustStore)
    /// A holder of an administrator certificate; `actor` is the name in the audit trail.
    case administrator(actor: String)
}

/// A partner as authenticated at the start of a request, to be checked again before a long
/// request commits (`Authenticator.recheck`).
public struct Authenticated: Sendable {
    public let partner: Partner
    let certificate: Certificate
    let trust: TrustStore
}

/// The rules that turn a client certificate into a caller: registration, directory state,
/// chain and revocation, and the per-partner rate limit. HTTP-independent.
public struct Authenticator: Sendable {
    let credentials: LiveCredentials
    let directory: LiveDirectory
    let rateLimiter: RateLimiter
    let clock: @Sendable () -> Date

    /// The partner behind a TLS client certificate: registered and usable for TLS now, partner
    /// active, chain and revocation valid.
    public func partner(_ peer: Certificate?) throws(KetenpostError) -> Partner {
        try caller(peer).partner
    }

    /// `partner(_:)`, with what a later `recheck` needs.
    func caller(_ peer: Certificate?) throws(KetenpostError) -> (partner: Partner, certificate: Certificate, trust: TrustStore) {
        guard let peer else {
            throw KetenpostError(.unknownPartner, "A client certificate is required.")
        }
        let (directory, trust) = (self.directory.snapshot, credentials.trust)
        guard let (partner, registered) = directory.registration(of: peer) else {
            throw KetenpostError(.unknownPartner, "The client certificate is not registered for any partner in the directory.")
        }
        try checkUsable(registered, for: .tlsClient, partner: partner.id)
        guard partner.state == .active else {
            throw KetenpostError(.partnerSuspended, "Partner \(partner.id) is suspended; contact the relay administrators.")
        }
        do {
            try trust.verify(peer, chain: registered.intermediates, for: .tlsClient)
        } catch {
            throw .certificate(error, role: "client")
        }
        return (partner, peer, trust)
    }

    /// The same checks again for a request that has been running a while (a long poll, a slow
    /// upload): the partner must still be active and its certificate usable now, so a suspension
    /// or revocation made meanwhile stops it before anything is leased or stored. The chain is
    /// verified again only when the trust anchors or CRLs changed since `trust` was used.
    public func recheck(_ partner: Partner, certificate: Certificate, trust: TrustStore) throws(KetenpostError) -> Partner {
        guard credentials.trust === trust else { return try self.partner(certificate) }
        guard let (current, registered) = directory.snapshot.registration(of: certificate), current.id == partner.id else {
            throw KetenpostError(.unknownPartner, "The client certificate is not registered for any partner in the directory.")
        }
        try checkUsable(registered, for: .tlsClient, partner: current.id)
        guard current.state == .active else {
            throw KetenpostError(.partnerSuspended, "Partner \(current.id) is suspended; contact the relay administrators.")
        }
        return current
    }

    /// The administrator behind a TLS client certificate, as its audit actor (`admin:` and its
    /// commonName).
    public func administrator(_ peer: Certificate?) throws(KetenpostError) -> String {
        let credentials = self.credentials.value
        guard let peer, credentials.administrators.contains(peer.fingerprint) else {
            throw KetenpostError(.notAdministrator, "Only holders of an administrator certificate (admin.certificates) may do this.")
        }
        do {
            // Intermediates from the administrators' files, and the relay's own (a common issuer).
            try credentials.trust.verify(peer, chain: credentials.administratorChain + credentials.identity.chain, for: .tlsClient)
        } catch {
            throw .certificate(error, role: "administrator")
        }
        return "admin:" + (peer.commonName ?? String(peer.fingerprint.prefix(16)))
    }

    /// Refuses a registered certificate that is revoked, pending, retired or expired in the
    /// directory, or not registered for this use.
    func checkUsable(_ registered: RegisteredCertificate, for use: CertificateUse, partner: String) throws(KetenpostError) {
        let state = registered.state(at: clock())
        switch state {
        case .revoked:
            throw KetenpostError(
                .certificateRevoked,
                "This certificate of \(partner) was revoked by the relay administrators; use its replacement."
            )
        case .active, .retiring:
            guard registered.record.uses.contains(use) else {
                throw KetenpostError(
                    .certificateInactive,
                    """
                    This certificate of \(partner) is not registered for \(use.rawValue); ask the relay administrators to register it \
                    for that use.
                    """
                )
            }
        case .pending, .retired, .expired:
            throw KetenpostError(
                .certificateInactive,
                "This certificate of \(partner) is \(state.rawValue) in the directory; use the partner's current certificate."
            )
        }
    }

    /// Takes one request from the partner's token bucket, or refuses with the seconds to wait.
    public func checkRate(_ partner: Partner) throws(KetenpostError) {
        if let wait = rateLimiter.take(partner.id) {
            // Clamped: a wait that is not a sane number of seconds must not trap the conversion.
            let seconds = wait.isFinite ? max(1, Int(min(wait, 86_400).rounded(.up))) : 86_400
            throw KetenpostError(
                .rateLimited,
                "Too many requests from \(partner.id); retry after \(seconds) second(s).",
                detail: ["retry-after=\(seconds)"]
            )
        }
    }
}
