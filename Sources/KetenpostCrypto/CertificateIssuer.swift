import COpenSSL
import Foundation

/// What a new certificate says about its subject and its use.
public struct CertificateProfile: Sendable {
    public var commonName: String
    public var organization: String?
    /// Stored in the subject's serialNumber attribute (PKIoverheid puts the OIN there).
    public var subjectSerialNumber: String?
    public var notBefore: Date
    public var notAfter: Date
    public var isCA: Bool
    /// OpenSSL `keyUsage` extension value, e.g. "critical,digitalSignature,keyAgreement".
    public var keyUsage: String
    /// OpenSSL `extendedKeyUsage` value, e.g. "clientAuth,emailProtection"; nil for none.
    public var extendedKeyUsage: String?
    /// OpenSSL `subjectAltName` value, e.g. "DNS:localhost,IP:127.0.0.1"; nil for none.
    public var subjectAltName: String?
    /// Where the issuer publishes the CRL that covers this certificate (http URLs); empty for none.
    public var crlDistributionPoints: [String]
    /// Where an OCSP responder for this certificate answers; nil for none.
    public var ocspResponder: String?

    public init(
        commonName: String,
        organization: String? = nil,
        subjectSerialNumber: String? = nil,
        notBefore: Date,
        notAfter: Date,
        isCA: Bool = false,
        keyUsage: String,
        extendedKeyUsage: String? = nil,
        subjectAltName: String? = nil,
        crlDistributionPoints: [String] = [],
        ocspResponder: String? = nil
    ) {
        self.commonName = commonName
        self.organization = organization
        self.subjectSerialNumber = subjectSerialNumber
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.isCA = isCA
        self.keyUsage = keyUsage
        self.extendedKeyUsage = extendedKeyUsage
        self.subjectAltName = subjectAltName
        self.crlDistributionPoints = crlDistributionPoints
        self.ocspResponder = ocspResponder
    }
}

/// Issues certificates and CRLs: the development PKI and the tests use it.
public struct CertificateIssuer: Sendable {
    public let certificate: Certificate
    public let key: PrivateKey

    public init(certificate: Certificate, key: PrivateKey) throws(CryptoError) {
        guard key.matches(certificate) else { throw CryptoError(.keyMismatch, "The CA key does not belong to the CA certificate.") }
        self.certificate = certificate
        self.key = key
    }

    /// Makes a self-signed CA.
    public static func selfSigned(_ profile: CertificateProfile, key: PrivateKey) throws(CryptoError) -> CertificateIssuer {
        let certificate = try build(profile, subjectKey: key, issuer: nil, issuerKey: key)
        return try CertificateIssuer(certificate: certificate, key: key)
    }

    /// Issues a certificate for `subjectKey`'s public key.
    public func issue(_ profile: CertificateProfile, for subjectKey: PrivateKey) throws(CryptoError) -> Certificate {
        try Self.build(profile, subjectKey: subjectKey, issuer: certificate, issuerKey: key)
    }

    /// A CRL (v2) listing the given serial numbers (hex) as revoked.
    public func revocationList(revokedSerials: [String], lastUpdate: Date, nextUpdate: Date) throws(CryptoError) -> RevocationList {
        OpenSSLErrorQueue.clear()
        guard let raw = X509_CRL_new() else { throw .fromQueue(.internalError, "Could not allocate a CRL.") }
        var owned: OpaquePointer? = raw
        defer { if let owned { X509_CRL_free(owned) } }
        guard X509_CRL_set_version(raw, 1) == 1,
            X509_CRL_set_issuer_name(raw, X509_get_subject_name(certificate.pointer)) == 1
        else { throw .fromQueue(.internalError, "Could not set the CRL issuer.") }
        try Self.withTime(lastUpdate) { time throws(CryptoError) in
            guard X509_CRL_set1_lastUpdate(raw, time) == 1 else { throw .fromQueue(.internalError, "Could not set the CRL time.") }
        }
        try Self.withTime(nextUpdate) { time throws(CryptoError) in
            guard X509_CRL_set1_nextUpdate(raw, time) == 1 else { throw .fromQueue(.internalError, "Could not set the CRL time.") }
        }
        for serial in revokedSerials {
            guard let revoked = X509_REVOKED_new() else { throw .fromQueue(.internalError, "Could not allocate a CRL entry.") }
            var bn: OpaquePointer?
            // BN_hex2bn reads a prefix: "0A:1B" would revoke 0x0A. Demand the whole string.
            let digits = BN_hex2bn(&bn, serial)
            let integer = (digits == Int32(serial.utf8.count) && digits > 0) ? bn.flatMap { BN_to_ASN1_INTEGER($0, nil) } : nil
            if let bn { BN_free(bn) }
            guard let integer else {
                X509_REVOKED_free(revoked)
                throw CryptoError(.malformed, "A serial number to revoke is not hexadecimal.")
            }
            defer { ASN1_INTEGER_free(integer) }
            var ok = X509_REVOKED_set_serialNumber(revoked, integer) == 1
            try Self.withTime(lastUpdate) { time throws(CryptoError) in
                ok = ok && X509_REVOKED_set_revocationDate(revoked, time) == 1
            }
            guard ok, X509_CRL_add0_revoked(raw, revoked) == 1 else {
                X509_REVOKED_free(revoked)
                throw .fromQueue(.internalError, "Could not add a CRL entry.")
            }
        }
        guard X509_CRL_sort(raw) == 1, X509_CRL_sign(raw, key.pointer, EVP_sha256()) > 0 else {
            throw .fromQueue(.internalError, "Could not sign the CRL.")
        }
        owned = nil
        return try RevocationList(owning: raw)
    }

    private static func withTime(_ date: Date, _ body: (UnsafeMutablePointer<ASN1_TIME>) throws(CryptoError) -> Void) throws(CryptoError) {
        guard let time = ASN1_TIME_set(nil, time_t(date.timeIntervalSince1970)) else {
            throw .fromQueue(.internalError, "Could not encode a time.")
        }
        defer { ASN1_TIME_free(time) }
        try body(time)
    }

    private static func build(
        _ profile: CertificateProfile,
        subjectKey: PrivateKey,
        issuer: Certificate?,
        issuerKey: PrivateKey
    ) throws(CryptoError) -> Certificate {
        OpenSSLErrorQueue.clear()
        guard let raw = X509_new() else { throw .fromQueue(.internalError, "Could not allocate a certificate.") }
        var owned: OpaquePointer? = raw
        defer { if let owned { X509_free(owned) } }
        guard X509_set_version(raw, 2) == 1 else { throw .fromQueue(.internalError, "Could not set the version.") }

        // A random positive 127-bit serial number, as RFC 5280 recommends for unpredictability.
        guard let bn = BN_new() else { throw .fromQueue(.internalError, "Could not allocate a serial number.") }
        defer { BN_free(bn) }
        guard BN_rand(bn, 127, -1, 0) == 1, BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(raw)) != nil else {
            throw .fromQueue(.internalError, "Could not make a serial number.")
        }
        guard ASN1_TIME_set(X509_getm_notBefore(raw), time_t(profile.notBefore.timeIntervalSince1970)) != nil,
            ASN1_TIME_set(X509_getm_notAfter(raw), time_t(profile.notAfter.timeIntervalSince1970)) != nil
        else { throw .fromQueue(.internalError, "Could not set the validity.") }

        guard let name = X509_get_subject_name(raw) else { throw .fromQueue(.internalError, "No subject name.") }
        var entries: [(String, String)] = []
        if let organization = profile.organization { entries.append(("O", organization)) }
        if let serial = profile.subjectSerialNumber { entries.append(("serialNumber", serial)) }
        entries.append(("CN", profile.commonName))
        for (field, value) in entries {
            guard X509_NAME_add_entry_by_txt(name, field, copenssl_MBSTRING_UTF8(), value, -1, -1, 0) == 1 else {
                throw .fromQueue(.malformed, "The subject field \(field) is not acceptable.")
            }
        }
        let issuerName = issuer.map { X509_get_subject_name($0.pointer) } ?? name
        guard X509_set_issuer_name(raw, issuerName) == 1, X509_set_pubkey(raw, subjectKey.pointer) == 1 else {
            throw .fromQueue(.internalError, "Could not set the issuer or the public key.")
        }

        var context = X509V3_CTX()
        copenssl_X509V3_set_ctx_nodb(&context)
        X509V3_set_ctx(&context, issuer?.pointer ?? raw, raw, nil, nil, 0)
        var extensions: [(Int32, String)] = [
            (NID_basic_constraints, profile.isCA ? "critical,CA:TRUE" : "critical,CA:FALSE"),
            (NID_key_usage, profile.keyUsage),
            (NID_subject_key_identifier, "hash"),
            (NID_authority_key_identifier, "keyid:always"),
        ]
        if let eku = profile.extendedKeyUsage { extensions.append((NID_ext_key_usage, eku)) }
        if let san = profile.subjectAltName { extensions.append((NID_subject_alt_name, san)) }
        if !profile.crlDistributionPoints.isEmpty {
            extensions.append((NID_crl_distribution_points, profile.crlDistributionPoints.map { "URI:\($0)" }.joined(separator: ",")))
        }
        if let ocsp = profile.ocspResponder { extensions.append((NID_info_access, "OCSP;URI:\(ocsp)")) }
        for (nid, value) in extensions {
            guard let ext = X509V3_EXT_conf_nid(nil, &context, nid, value) else {
                throw .fromQueue(.malformed, "The certificate extension \(String(cString: OBJ_nid2sn(nid))) is not acceptable.")
            }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(raw, ext, -1) == 1 else { throw .fromQueue(.internalError, "Could not add an extension.") }
        }
        guard X509_sign(raw, issuerKey.pointer, EVP_sha256()) > 0 else {
            throw .fromQueue(.internalError, "Could not sign the certificate.")
        }
        owned = nil
        return try Certificate(owning: raw)
    }
}
