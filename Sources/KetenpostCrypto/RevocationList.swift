import COpenSSL
import Foundation

/// A certificate revocation list (X.509 CRL). Immutable and safe to share.
public final class RevocationList: @unchecked Sendable {
    let pointer: OpaquePointer

    init(owning pointer: OpaquePointer) { self.pointer = pointer }
    deinit { X509_CRL_free(pointer) }

    public convenience init(pem text: some DataProtocol) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        let bio = try OwnedBIO(copying: text)
        guard let crl = PEM_read_bio_X509_CRL(bio.pointer, nil, nil, nil) else {
            throw .fromQueue(.malformed, "The file holds no PEM certificate revocation list.")
        }
        self.init(owning: crl)
    }

    public static func load(pemFile path: String) throws -> RevocationList {
        try RevocationList(pem: try Data(contentsOf: URL(fileURLWithPath: path)))
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
}
