import COpenSSL
import Foundation
import Synchronization

/// Trust anchors plus optional CRLs, and chain verification against them.
///
/// Successful verifications are cached per certificate for a short while, because the same
/// few partner certificates sign every message (chain building costs more than a signature).
/// A new set of CRLs means a new `TrustStore`, and so a new cache.
public final class TrustStore: @unchecked Sendable {
    public enum Purpose: Sendable, Hashable {
        /// Signing CMS content (S/MIME signing purpose: emailProtection EKU, digitalSignature).
        case contentSigning
        /// A TLS client certificate.
        case tlsClient
        /// A TLS server certificate.
        case tlsServer
        /// Receiving encrypted CMS content: emailProtection EKU (if any) and keyAgreement (EC)
        /// or keyEncipherment (RSA) key usage. OpenSSL's S/MIME-encrypt purpose would demand
        /// keyEncipherment from EC keys too, so the key usage is checked here.
        case contentEncryption
    }

    public let anchors: [Certificate]
    public let intermediates: [Certificate]
    public let revocationLists: [RevocationList]
    /// How long a successful verification is reused.
    public let cacheLifetime: TimeInterval
    /// Whether revocation is checked (there are CRLs, or it was asked for without any).
    public let checksRevocation: Bool

    let store: OpaquePointer
    private struct CacheKey: Hashable {
        let der: Data
        let purpose: Purpose
    }
    private let cache = Mutex<[CacheKey: Date]>([:])
    private static let cacheLimit = 10_000

    public init(
        anchors: [Certificate],
        intermediates: [Certificate] = [],
        revocationLists: [RevocationList] = [],
        acceptExpiredCRLs: Bool = false,
        checkRevocation: Bool? = nil,
        cacheLifetime: TimeInterval = 60
    ) throws(CryptoError) {
        guard !anchors.isEmpty else { throw CryptoError(.certificateUntrusted, "A trust store needs at least one trust anchor.") }
        OpenSSLErrorQueue.clear()
        guard let store = X509_STORE_new() else { throw .fromQueue(.internalError, "Could not create a trust store.") }
        self.store = store
        self.anchors = anchors
        self.intermediates = intermediates
        self.revocationLists = revocationLists
        self.cacheLifetime = cacheLifetime
        for anchor in anchors where X509_STORE_add_cert(store, anchor.pointer) != 1 {
            throw .fromQueue(.internalError, "Could not add a trust anchor.")
        }
        for crl in revocationLists where X509_STORE_add_crl(store, crl.pointer) != 1 {
            throw .fromQueue(.internalError, "Could not add a revocation list.")
        }
        self.checksRevocation = checkRevocation ?? !revocationLists.isEmpty
        if checksRevocation {
            // With CRLs given (or asked for), a certificate whose issuer has no current CRL fails
            // (fail closed). CRL_CHECK_ALL: a revoked intermediate CA must fail too, not only a leaf.
            X509_STORE_set_flags(store, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
            if acceptExpiredCRLs {
                // Only "the CRL is past its next update" and "there is no CRL for the issuer" are
                // forgiven; a listed serial, or a CRL with a bad signature, still fails.
                X509_STORE_set_verify_cb(store) { ok, ctx in
                    let error = X509_STORE_CTX_get_error(ctx)
                    return ok == 0 && (error == X509_V_ERR_CRL_HAS_EXPIRED || error == X509_V_ERR_UNABLE_TO_GET_CRL) ? 1 : ok
                }
            }
        }
    }

    deinit { X509_STORE_free(store) }

    /// Verifies the chain of `certificate` to an anchor, for `purpose`, at `time` (now if nil).
    ///
    /// `chain` holds intermediates that came with the certificate (in a SignedData, a TLS
    /// handshake or the directory). They are only used to build the path for this one call and
    /// never become trusted: the path must still end at one of the `anchors`.
    public func verify(
        _ certificate: Certificate,
        chain: [Certificate] = [],
        for purpose: Purpose,
        at time: Date? = nil
    ) throws(CryptoError) {
        let key = CacheKey(der: certificate.der, purpose: purpose)
        let now = Date()
        // A cached success stands whatever chain is given now: the leaf was shown to chain to an
        // anchor under these CRLs, and a new set of CRLs means a new store.
        if time == nil, let until = cache.withLock({ $0[key] }), until > now { return }
        let path = try verifyUncached(certificate, chain: chain, purpose: purpose, at: time)
        // The leaf and the intermediates of its path chain to an anchor: the certificate cache may keep them.
        CertificateCache.admit(certificate)
        for intermediate in chain where path.contains(intermediate) { CertificateCache.admit(intermediate) }
        if time == nil {
            let until = min(now.addingTimeInterval(cacheLifetime), certificate.notAfter)
            cache.withLock { cache in
                if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
                cache[key] = until
            }
        }
    }

    /// Verifies like `verify` (without the cache) and returns the intermediates of the path that
    /// was built: the certificates between `certificate` and its anchor, in order. Used to keep
    /// exactly the chain a certificate needs when it is registered.
    public func path(
        for certificate: Certificate,
        chain: [Certificate] = [],
        purpose: Purpose,
        at time: Date? = nil
    ) throws(CryptoError) -> [Certificate] {
        try verifyUncached(certificate, chain: chain, purpose: purpose, at: time)
    }

    private func verifyUncached(
        _ certificate: Certificate,
        chain: [Certificate],
        purpose: Purpose,
        at time: Date?
    ) throws(CryptoError) -> [Certificate] {
        OpenSSLErrorQueue.clear()
        guard let ctx = X509_STORE_CTX_new() else { throw .fromQueue(.internalError, "Could not allocate a verification context.") }
        defer { X509_STORE_CTX_free(ctx) }
        let untrusted = copenssl_sk_X509_new_null()
        defer { if let untrusted { copenssl_sk_X509_free(untrusted) } }
        for certificate in intermediates + chain { _ = copenssl_sk_X509_push(untrusted, certificate.pointer) }
        guard X509_STORE_CTX_init(ctx, store, certificate.pointer, untrusted) == 1 else {
            throw .fromQueue(.internalError, "Could not start a chain verification.")
        }
        let purposeID: Int32
        switch purpose {
        case .contentSigning: purposeID = X509_PURPOSE_SMIME_SIGN
        case .tlsClient: purposeID = X509_PURPOSE_SSL_CLIENT
        case .tlsServer: purposeID = X509_PURPOSE_SSL_SERVER
        case .contentEncryption: purposeID = X509_PURPOSE_ANY
        }
        X509_STORE_CTX_set_purpose(ctx, purposeID)
        if let time {
            X509_STORE_CTX_set_time(ctx, 0, time_t(time.timeIntervalSince1970))
        }
        if X509_verify_cert(ctx) == 1 {
            OpenSSLErrorQueue.clear()
            if purpose == .contentEncryption { try Self.checkEncryptionUsage(certificate) }
            // The path: leaf first, anchor last; what lies between are the intermediates.
            var path: [Certificate] = []
            if let built = X509_STORE_CTX_get0_chain(ctx) {
                let count = copenssl_sk_X509_num(built)
                for index in stride(from: 1, to: count - 1, by: 1) {
                    if let pointer = copenssl_sk_X509_value(built, index) { path.append(try Certificate(borrowing: pointer)) }
                }
            }
            return path
        }
        let error = X509_STORE_CTX_get_error(ctx)
        let reason = String(cString: X509_verify_cert_error_string(Int(error)))
        OpenSSLErrorQueue.clear()
        throw Self.classify(error, reason: reason)
    }

    private static func checkEncryptionUsage(_ certificate: Certificate) throws(CryptoError) {
        let keyUsage = X509_get_key_usage(certificate.pointer)  // UINT32_MAX when absent
        let extendedUsage = X509_get_extended_key_usage(certificate.pointer)  // UINT32_MAX when absent
        let needed: UInt32
        switch certificate.keyAlgorithm {
        case .ec: needed = UInt32(KU_KEY_AGREEMENT)
        case .rsa: needed = UInt32(KU_KEY_ENCIPHERMENT)
        case .other: throw CryptoError(.certificatePurpose, "The certificate's key type cannot receive encrypted messages.")
        }
        guard keyUsage & needed != 0, extendedUsage & UInt32(XKU_SMIME) != 0 else {
            throw CryptoError(
                .certificatePurpose,
                "The certificate may not be used to receive encrypted messages (key usage or extended key usage)."
            )
        }
    }

    static func classify(_ error: Int32, reason: String) -> CryptoError {
        let detail = [reason]
        switch error {
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return CryptoError(.certificateExpired, "A certificate in the chain has expired.", detail: detail)
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return CryptoError(.certificateNotYetValid, "A certificate in the chain is not valid yet.", detail: detail)
        case X509_V_ERR_CERT_REVOKED:
            return CryptoError(.certificateRevoked, "The certificate has been revoked.", detail: detail)
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
            X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
            X509_V_ERR_CERT_UNTRUSTED, X509_V_ERR_CERT_SIGNATURE_FAILURE,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return CryptoError(.certificateUntrusted, "The certificate was not issued by a trusted certificate authority.", detail: detail)
        case X509_V_ERR_INVALID_PURPOSE, X509_V_ERR_KEYUSAGE_NO_CERTSIGN, X509_V_ERR_INVALID_CA:
            return CryptoError(.certificatePurpose, "The certificate may not be used for this purpose.", detail: detail)
        case X509_V_ERR_UNABLE_TO_GET_CRL, X509_V_ERR_CRL_HAS_EXPIRED, X509_V_ERR_CRL_NOT_YET_VALID,
            X509_V_ERR_CRL_SIGNATURE_FAILURE, X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
            return CryptoError(.crlUnavailable, "Revocation could not be checked: no current, valid CRL for the issuer.", detail: detail)
        default:
            return CryptoError(.certificateInvalid, "The certificate chain is not valid.", detail: detail)
        }
    }
}
