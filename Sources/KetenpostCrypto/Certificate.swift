import COpenSSL
import Foundation
import Synchronization

/// An X.509 certificate. Immutable once made, so it is safe to share between tasks
/// (OpenSSL allows concurrent read-only use of an `X509`).
public final class Certificate: @unchecked Sendable, Hashable, CustomStringConvertible {
    let pointer: OpaquePointer
    /// The DER encoding, kept because it is the identity used for equality and binding checks.
    public let der: Data
    /// Reused signature-check contexts for this certificate's key (EC only; `DirectSignedData`).
    let verifier: KeyContextPool?
    /// IssuerAndSerialNumber, worked out on first use (empty: not plain DER).
    let issuerAndSerial = Mutex<ArraySlice<UInt8>?>(nil)

    /// Takes ownership of an `X509*` (the caller's reference is consumed).
    init(owning pointer: OpaquePointer) throws(CryptoError) {
        self.pointer = pointer
        verifier = KeyContextPool(key: X509_get0_pubkey(pointer), operation: .verify)
        OpenSSLErrorQueue.clear()
        do {
            der = try DER.encode { X509_to_der(pointer, $0) }
        } catch {
            X509_free(pointer)
            throw error
        }
    }

    /// Takes a new reference to a borrowed `X509*`.
    convenience init(borrowing pointer: OpaquePointer) throws(CryptoError) {
        X509_up_ref(pointer)
        try self.init(owning: pointer)
    }

    public convenience init(der bytes: some DataProtocol) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        guard let x509 = DER.decode(bytes, with: { d2i_X509(nil, $0, $1) }, free: { X509_free($0) }) else {
            throw .fromQueue(.malformed, "The certificate is not valid DER.")
        }
        try self.init(owning: x509)
    }

    /// Reads every certificate of a PEM text (a chain file holds several).
    public static func all(pem text: some DataProtocol) throws(CryptoError) -> [Certificate] {
        OpenSSLErrorQueue.clear()
        let bio = try OwnedBIO(copying: text)
        var result: [Certificate] = []
        while let x509 = PEM_read_bio_X509(bio.pointer, nil, nil, nil) {
            result.append(try Certificate(owning: x509))
        }
        // The loop ends with a "no start line" error at end of input; that one is expected.
        OpenSSLErrorQueue.clear()
        if result.isEmpty { throw CryptoError(.malformed, "The file holds no PEM certificate.") }
        return result
    }

    public convenience init(pem text: some DataProtocol) throws(CryptoError) {
        let first = try Certificate.all(pem: text)[0]
        try self.init(borrowing: first.pointer)
    }

    public static func load(pemFile path: String) throws -> [Certificate] {
        try all(pem: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    deinit { X509_free(pointer) }

    public var pem: String {
        guard let bio = try? OwnedBIO(), PEM_write_bio_X509(bio.pointer, pointer) == 1 else { return "" }
        return String(decoding: bio.contents, as: UTF8.self)
    }

    public static func == (lhs: Certificate, rhs: Certificate) -> Bool { lhs.der == rhs.der }
    public func hash(into hasher: inout Hasher) { hasher.combine(der) }

    /// SHA-256 over the DER encoding, lowercase hex.
    public var fingerprint: String { Digest.sha256(der).hexString }

    /// The subject's commonName: the partner id in Ketenpost certificates.
    public var commonName: String? { subjectAttribute(NID_commonName) }
    /// The subject's serialNumber attribute: the OIN in Ketenpost (as in PKIoverheid) certificates.
    public var subjectSerialNumber: String? { subjectAttribute(NID_serialNumber) }
    public var organization: String? { subjectAttribute(NID_organizationName) }

    /// The subject as an RFC 2253 string.
    public var subject: String { Self.rfc2253(X509_get_subject_name(pointer)) }

    static func rfc2253(_ name: OpaquePointer?) -> String {
        guard let name, let bio = try? OwnedBIO(), X509_NAME_print_ex(bio.pointer, name, 0, copenssl_XN_FLAG_RFC2253()) >= 0 else {
            return ""
        }
        return String(decoding: bio.contents, as: UTF8.self)
    }

    /// The certificate serial number, uppercase hex as `openssl x509 -serial` prints it.
    public var serialNumberHex: String {
        guard let bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(pointer), nil) else { return "" }
        defer { BN_free(bn) }
        guard let hex = BN_bn2hex(bn) else { return "" }
        defer { copenssl_OPENSSL_free(hex) }
        return String(cString: hex)
    }

    /// The issuer as an RFC 2253 string.
    public var issuer: String { Self.rfc2253(X509_get_issuer_name(pointer)) }

    /// Whether `other` is this certificate's issuer: subject/issuer names match and `other`'s key
    /// verifies this certificate's signature.
    public func isIssued(by other: Certificate) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        return X509_check_issued(other.pointer, pointer) == X509_V_OK && X509_verify(pointer, X509_get0_pubkey(other.pointer)) == 1
    }

    /// The http(s) URIs of the CRL distribution points extension (full names only), in order.
    public var crlDistributionPoints: [String] {
        defer { OpenSSLErrorQueue.clear() }
        guard let points = X509_get_ext_d2i(pointer, NID_crl_distribution_points, nil, nil) else { return [] }
        let stack = OpaquePointer(points)
        defer { copenssl_sk_DIST_POINT_pop_free(stack) }
        var uris: [String] = []
        for index in 0..<copenssl_sk_DIST_POINT_num(stack) {
            guard let point = copenssl_sk_DIST_POINT_value(stack, index) else { continue }
            for nameIndex in 0..<copenssl_DIST_POINT_name_count(point) {
                var length: Int32 = 0
                guard let bytes = copenssl_DIST_POINT_uri(point, nameIndex, &length), length > 0 else { continue }
                uris.append(String(decoding: UnsafeBufferPointer(start: bytes, count: Int(length)), as: UTF8.self))
            }
        }
        return uris
    }

    public var notBefore: Date { Self.date(X509_get0_notBefore(pointer)) }
    public var notAfter: Date { Self.date(X509_get0_notAfter(pointer)) }

    public var isCA: Bool { X509_check_ca(pointer) != 0 }

    public enum KeyAlgorithm: String, Sendable { case ec, rsa, other }
    public var keyAlgorithm: KeyAlgorithm {
        guard let key = X509_get0_pubkey(pointer) else { return .other }
        switch EVP_PKEY_get_base_id(key) {
        case EVP_PKEY_EC: return .ec
        case EVP_PKEY_RSA: return .rsa
        default: return .other
        }
    }

    public var description: String { "Certificate(\(subject), serial \(serialNumberHex))" }

    private func subjectAttribute(_ nid: Int32) -> String? {
        guard let name = X509_get_subject_name(pointer) else { return nil }
        let index = X509_NAME_get_index_by_NID(name, nid, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(name, index),
            let value = X509_NAME_ENTRY_get_data(entry)
        else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&utf8, value)
        guard length >= 0, let utf8 else { return nil }
        defer { copenssl_OPENSSL_free(utf8) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }

    static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date {
        var tm = tm()
        guard let time, ASN1_TIME_to_tm(time, &tm) == 1 else { return .distantPast }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&tm)))
    }
}

/// `i2d_X509` takes a non-const pointer-to-pointer; this keeps the call sites uniform.
@inline(__always)
func X509_to_der(_ x509: OpaquePointer, _ out: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32 {
    i2d_X509(x509, out)
}
