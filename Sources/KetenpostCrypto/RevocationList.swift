import COpenSSL
import Foundation

/// A certificate revocation list (X.509 CRL). Immutable and safe to share.
public final class RevocationList: @unchecked Sendable {
    let pointer: OpaquePointer
    /// The DER encoding, as fetched or read.
    public let der: Data

    init(owning pointer: OpaquePointer) throws(CryptoError) {
        self.pointer = pointer
        do {
            der = try DER.encode { i2d_X509_CRL(pointer, $0) }
        } catch {
            X509_CRL_free(pointer)
            throw error
        }
    }
    deinit { X509_CRL_free(pointer) }

    public convenience init(pem text: some DataProtocol) throws(CryptoError) {
        try self.init(borrowing: try RevocationList.all(pem: text)[0])
    }

    private convenience init(borrowing other: RevocationList) throws(CryptoError) {
        X509_CRL_up_ref(other.pointer)
        try self.init(owning: other.pointer)
    }

    public convenience init(der bytes: some DataProtocol) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        guard let crl = DER.decode(bytes, with: { d2i_X509_CRL(nil, $0, $1) }, free: { X509_CRL_free($0) }) else {
            throw .fromQueue(.malformed, "The input is not a DER certificate revocation list.")
        }
        try self.init(owning: crl)
    }

    /// A CRL as CAs publish it: DER, or PEM (as some do, and as files often hold it).
    public static func parse(_ bytes: Data) throws(CryptoError) -> RevocationList {
        if bytes.starts(with: Data("-----BEGIN".utf8)) { return try RevocationList(pem: bytes) }
        return try RevocationList(der: bytes)
    }

    /// Every CRL of a PEM text (a file may hold several, one per CA of a chain).
    public static func all(pem text: some DataProtocol) throws(CryptoError) -> [RevocationList] {
        OpenSSLErrorQueue.clear()
        let bio = try OwnedBIO(copying: text)
        var result: [RevocationList] = []
        while let crl = PEM_read_bio_X509_CRL(bio.pointer, nil, nil, nil) {
            result.append(try RevocationList(owning: crl))
        }
        OpenSSLErrorQueue.clear()  // the "no start line" at the end of input
        if result.isEmpty { throw CryptoError(.malformed, "The file holds no PEM certificate revocation list.") }
        return result
    }

    public static func load(pemFile path: String) throws -> RevocationList {
        try RevocationList(pem: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// Every CRL in a PEM file.
    public static func loadAll(pemFile path: String) throws -> [RevocationList] {
        try all(pem: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    public var pem: String {
        guard let bio = try? OwnedBIO(), PEM_write_bio_X509_CRL(bio.pointer, pointer) == 1 else { return "" }
        return String(decoding: bio.contents, as: UTF8.self)
    }

    public var lastUpdate: Date { Certificate.date(X509_CRL_get0_lastUpdate(pointer)) }
    /// When the issuer promises a newer list; nil if the list does not say.
    public var nextUpdate: Date? {
        guard let time = X509_CRL_get0_nextUpdate(pointer) else { return nil }
        return Certificate.date(time)
    }

    /// The issuer's name, RFC 2253.
    public var issuer: String { Certificate.rfc2253(X509_CRL_get_issuer(pointer)) }

    /// How many serial numbers the list revokes.
    public var revokedCount: Int {
        guard let revoked = X509_CRL_get_REVOKED(pointer) else { return 0 }
        return Int(copenssl_sk_X509_REVOKED_num(revoked))
    }

    /// Whether `certificate` (a CA) issued this list: its subject is the list's issuer and its
    /// key verifies the list's signature. A relay or a network path cannot forge one.
    public func isIssued(by certificate: Certificate) -> Bool {
        defer { OpenSSLErrorQueue.clear() }
        guard X509_NAME_cmp(X509_CRL_get_issuer(pointer), X509_get_subject_name(certificate.pointer)) == 0,
            let key = X509_get0_pubkey(certificate.pointer)
        else { return false }
        return X509_CRL_verify(pointer, key) == 1
    }
}
