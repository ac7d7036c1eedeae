import COpenSSL
import Foundation

/// The CMS (RFC 5652) operations Ketenpost needs, over the system OpenSSL.
///
/// Every function is synchronous and builds its own OpenSSL objects, so that the per-thread
/// error queue is read on the thread that filled it and no mutable state is shared.
public enum CMS {
    private static let binary = UInt32(CMS_BINARY)

    /// Owns a `CMS_ContentInfo*`.
    final class ContentInfo {
        let pointer: OpaquePointer
        init(owning pointer: OpaquePointer) { self.pointer = pointer }
        deinit { CMS_ContentInfo_free(pointer) }

        static func parse(_ der: some DataProtocol) throws(CryptoError) -> ContentInfo {
            OpenSSLErrorQueue.clear()
            guard let cms = DER.decode(der, with: { d2i_CMS_ContentInfo(nil, $0, $1) }, free: { CMS_ContentInfo_free($0) }) else {
                throw .fromQueue(.malformed, "The input is not a well-formed CMS structure.")
            }
            return ContentInfo(owning: cms)
        }

        var typeNID: Int32 { OBJ_obj2nid(CMS_get0_type(pointer)) }

        func der() throws(CryptoError) -> Data {
            try DER.encode { i2d_CMS_ContentInfo(pointer, $0) }
        }
    }

    /// Signs `content` (attached, SHA-256, signed attributes) and returns the SignedData as DER.
    ///
    /// EC keys are signed from a template (`CMS.Signer`: the same bytes `CMS_sign` makes, at a
    /// third of its cost); other keys by `CMS_sign`.
    public static func sign(
        _ content: some DataProtocol,
        signer: Certificate,
        key: PrivateKey,
        extraCertificates: [Certificate] = []
    ) throws(CryptoError) -> Data {
        try Self.signer(certificate: signer, key: key, extraCertificates: extraCertificates).sign(content)
    }

    /// Signs with OpenSSL's `CMS_sign`: the reference the template is tested against.
    public static func signWithOpenSSL(
        _ content: some DataProtocol,
        signer: Certificate,
        key: PrivateKey,
        extraCertificates: [Certificate] = []
    ) throws(CryptoError) -> Data {
        OpenSSLErrorQueue.clear()
        let extra = copenssl_sk_X509_new_null()
        defer { if let extra { copenssl_sk_X509_free(extra) } }
        for certificate in extraCertificates { _ = copenssl_sk_X509_push(extra, certificate.pointer) }
        let flags = binary | UInt32(CMS_PARTIAL) | UInt32(CMS_NOSMIMECAP)
        guard let raw = CMS_sign(signer.pointer, key.pointer, extraCertificates.isEmpty ? nil : extra, nil, flags) else {
            // CMS_sign checks that the key fits the certificate itself; asked only on failure, so
            // that the check runs once per signature, not twice.
            if !key.matches(signer) { throw CryptoError(.keyMismatch, "The signing key does not belong to the signing certificate.") }
            throw .fromQueue(.internalError, "Could not start a CMS signature.")
        }
        let cms = ContentInfo(owning: raw)
        let input = try OwnedBIO(copying: content)
        guard CMS_final(cms.pointer, input.pointer, nil, binary) == 1 else {
            throw .fromQueue(.internalError, "Could not complete a CMS signature.")
        }
        return try cms.der()
    }

    /// The result of checking a SignedData: its content, the one certificate that signed it, and
    /// the other certificates it carried (intermediates, untrusted until a `TrustStore` says so).
    public struct Signed: Sendable {
        public let content: Data
        public let signer: Certificate
        public let intermediates: [Certificate]
    }

    /// Checks the signature of an attached SignedData made by exactly one signer whose
    /// certificate is inside the structure, and returns the content.
    ///
    /// The signer's chain is *not* checked here: callers check it with a `TrustStore`, which
    /// gives distinct errors (expired, revoked, untrusted) and caches results per certificate.
    /// - Parameter fastPath: take the certificates out before OpenSSL parses the structure
    ///   (`SignedDataCertificates`), and check Ketenpost's own shape without OpenSSL's CMS layer
    ///   (`DirectSignedData`); false lets OpenSSL parse everything: the reference that the
    ///   differential fuzz target and tests compare the fast path with.
    public static func verifySignature(_ der: some DataProtocol, fastPath: Bool = true) throws(CryptoError) -> Signed {
        // The usual shape: certificates from the cache, the rest parsed by OpenSSL.
        var supplied: [Certificate] = []
        let cms: ContentInfo
        let split = fastPath ? SignedDataCertificates.split(der) : nil
        if let split {
            // Bounded before anything is decoded: a partner's message cannot make the relay hold
            // many or large certificates (issue 20).
            guard split.certificates.count <= Certificate.maximumPerSignedData else {
                throw CryptoError(
                    .malformed,
                    """
                    The SignedData carries \(split.certificates.count) certificates; at most \(Certificate.maximumPerSignedData) are \
                    allowed.
                    """
                )
            }
            for certificate in split.certificates {
                do {
                    supplied.append(try CertificateCache.decode(der: certificate))
                } catch {
                    throw CryptoError(.malformed, "The input is not a well-formed CMS structure.", detail: [error.message] + error.detail)
                }
            }
            // Ketenpost's own shape is checked without the CMS layer; anything else, or anything
            // that does not verify, is for OpenSSL to decide.
            if let signed = DirectSignedData.verify(split.withoutCertificates, certificates: supplied) { return signed }
            cms = try ContentInfo.parse(split.withoutCertificates)
        } else {
            cms = try ContentInfo.parse(der)
        }
        guard cms.typeNID == NID_pkcs7_signed else {
            throw CryptoError(.unexpectedStructure, "The CMS structure is not SignedData.")
        }
        guard let infos = CMS_get0_SignerInfos(cms.pointer), copenssl_sk_CMS_SignerInfo_num(infos) == 1 else {
            throw CryptoError(.unexpectedStructure, "The SignedData must have exactly one signer.")
        }
        guard let store = X509_STORE_new() else { throw .fromQueue(.internalError, "Could not allocate a store.") }
        defer { X509_STORE_free(store) }
        let certificates = copenssl_sk_X509_new_null()
        defer { if let certificates { copenssl_sk_X509_free(certificates) } }
        for certificate in supplied { _ = copenssl_sk_X509_push(certificates, certificate.pointer) }
        let output = try OwnedBIO()
        OpenSSLErrorQueue.clear()
        let flags = binary | UInt32(CMS_NO_SIGNER_CERT_VERIFY)
        guard CMS_verify(cms.pointer, supplied.isEmpty ? nil : certificates, store, nil, output.pointer, flags) == 1 else {
            let (texts, reasons) = OpenSSLErrorQueue.drainWithReasons()
            if reasons.contains(CMS_R_NO_CONTENT) || reasons.contains(CMS_R_SIGNER_CERTIFICATE_NOT_FOUND) {
                throw CryptoError(
                    .unexpectedStructure,
                    "The SignedData must carry its content and its signer's certificate.",
                    detail: texts
                )
            }
            throw CryptoError(.signatureInvalid, "The signature does not match the signed content.", detail: texts)
        }
        guard let signers = CMS_get0_signers(cms.pointer) else {
            throw .fromQueue(.unexpectedStructure, "The signer's certificate is missing.")
        }
        defer { copenssl_sk_X509_free(signers) }
        guard copenssl_sk_X509_num(signers) == 1, let x509 = copenssl_sk_X509_value(signers, 0) else {
            throw CryptoError(.unexpectedStructure, "The SignedData must have exactly one signer.")
        }
        let signer: Certificate
        if let cached = supplied.first(where: { $0.pointer == x509 }) { signer = cached } else { signer = try Certificate(borrowing: x509) }
        if split == nil, let all = CMS_get1_certs(cms.pointer) {
            // The uncommon shape OpenSSL parsed itself: its certificates are read from the structure.
            defer { copenssl_sk_X509_pop_free(all) }
            guard copenssl_sk_X509_num(all) <= Int32(Certificate.maximumPerSignedData) else {
                throw CryptoError(.malformed, "The SignedData carries more than \(Certificate.maximumPerSignedData) certificates.")
            }
            for index in 0..<copenssl_sk_X509_num(all) {
                guard let pointer = copenssl_sk_X509_value(all, index) else { continue }
                let certificate = try Certificate(borrowing: pointer)
                guard certificate.der.count <= Certificate.maximumSize else {
                    throw CryptoError(
                        .malformed,
                        "The input is not a well-formed CMS structure.",
                        detail: ["a certificate above 16384 bytes"]
                    )
                }
                supplied.append(certificate)
            }
        }
        return Signed(content: output.contents, signer: signer, intermediates: supplied.filter { $0 != signer })
    }

    /// Encrypts `content` for every recipient with AES-256-GCM (AuthEnvelopedData), and
    /// returns DER. EC recipients get ECDH with a SHA-256 KDF; RSA recipients get RSA-OAEP
    /// with SHA-256 (both stronger than OpenSSL's defaults of a SHA-1 KDF and PKCS#1 v1.5).
    public static func encrypt(_ content: some DataProtocol, for recipients: [Certificate]) throws(CryptoError) -> Data {
        guard !recipients.isEmpty else { throw CryptoError(.unexpectedStructure, "At least one recipient certificate is needed.") }
        OpenSSLErrorQueue.clear()
        let flags = binary | UInt32(CMS_PARTIAL)
        guard let raw = CMS_encrypt(nil, nil, EVP_aes_256_gcm(), flags) else {
            throw .fromQueue(.internalError, "Could not start a CMS encryption.")
        }
        let cms = ContentInfo(owning: raw)
        for recipient in recipients {
            guard let info = CMS_add1_recipient_cert(cms.pointer, recipient.pointer, UInt32(CMS_KEY_PARAM)) else {
                throw .fromQueue(.keyMismatch, "A recipient certificate has a key that cannot receive encrypted messages.")
            }
            let context = CMS_RecipientInfo_get0_pkey_ctx(info)
            switch CMS_RecipientInfo_type(info) {
            case CMS_RECIPINFO_AGREE:
                guard EVP_PKEY_CTX_set_ecdh_kdf_md(context, EVP_sha256()) == 1 else {
                    throw .fromQueue(.internalError, "Could not select the key agreement KDF.")
                }
            case CMS_RECIPINFO_TRANS:
                guard EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_OAEP_PADDING) == 1,
                    EVP_PKEY_CTX_set_rsa_oaep_md(context, EVP_sha256()) == 1
                else {
                    throw .fromQueue(.internalError, "Could not select RSA-OAEP.")
                }
            default:
                throw CryptoError(.keyMismatch, "A recipient certificate has an unsupported key type.")
            }
        }
        let input = try OwnedBIO(copying: content)
        guard CMS_final(cms.pointer, input.pointer, nil, binary) == 1 else {
            throw .fromQueue(.internalError, "Could not complete a CMS encryption.")
        }
        return try cms.der()
    }

    /// Decrypts an AuthEnvelopedData with the recipient's certificate and key.
    ///
    /// Unauthenticated EnvelopedData (AES-CBC) is refused unless `allowUnauthenticated`: with
    /// CBC, telling "bad padding" apart from "bad content" is a padding oracle.
    public static func decrypt(
        _ der: some DataProtocol,
        certificate: Certificate,
        key: PrivateKey,
        allowUnauthenticated: Bool = false
    ) throws(CryptoError) -> Data {
        let cms = try ContentInfo.parse(der)
        let type = cms.typeNID
        guard type == NID_id_smime_ct_authEnvelopedData || (allowUnauthenticated && type == NID_pkcs7_enveloped) else {
            throw CryptoError(.unexpectedStructure, "The CMS structure is not AuthEnvelopedData (AES-256-GCM).")
        }
        guard isRecipient(cms, certificate) else {
            throw CryptoError(.notARecipient, "The message is not encrypted for this certificate.")
        }
        let output = try OwnedBIO()
        OpenSSLErrorQueue.clear()
        guard CMS_decrypt(cms.pointer, key.pointer, certificate.pointer, nil, output.pointer, binary) == 1 else {
            // OpenSSL may fail here with an empty error queue (EC key agreement with a
            // non-matching key); the outcome is the same either way.
            throw .fromQueue(.decryptionFailed, "The message could not be decrypted: the key does not fit, or the ciphertext was changed.")
        }
        return output.contents
    }

    /// Whether one of the recipient entries names this certificate (issuer and serial, or key id).
    private static func isRecipient(_ cms: ContentInfo, _ certificate: Certificate) -> Bool {
        guard let infos = CMS_get0_RecipientInfos(cms.pointer) else { return false }
        let count = copenssl_sk_CMS_RecipientInfo_num(infos)
        for index in 0..<count {
            guard let info = OPENSSL_sk_value(infos, index) else { continue }
            let ri = OpaquePointer(info)
            switch CMS_RecipientInfo_type(ri) {
            case CMS_RECIPINFO_TRANS:
                if CMS_RecipientInfo_ktri_cert_cmp(ri, certificate.pointer) == 0 { return true }
            case CMS_RECIPINFO_AGREE:
                guard let encryptedKeys = CMS_RecipientInfo_kari_get0_reks(ri) else { continue }
                let keyCount = OPENSSL_sk_num(encryptedKeys)
                for keyIndex in 0..<keyCount {
                    guard let rek = OPENSSL_sk_value(encryptedKeys, keyIndex) else { continue }
                    if CMS_RecipientEncryptedKey_cert_cmp(OpaquePointer(rek), certificate.pointer) == 0 { return true }
                }
            default:
                continue
            }
        }
        OpenSSLErrorQueue.clear()
        return false
    }
}
