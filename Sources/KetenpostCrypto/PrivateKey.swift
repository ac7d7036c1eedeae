import COpenSSL
import Foundation

/// A private key. Read-only use from several tasks at once is safe.
///
/// Its `description` never shows key material.
public final class PrivateKey: @unchecked Sendable, CustomStringConvertible {
    let pointer: OpaquePointer

    init(owning pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }

    public enum Kind: Sendable, Equatable {
        case ecP256
        case rsa(bits: Int)
    }

    /// Generates a fresh key.
    public static func generate(_ kind: Kind) throws(CryptoError) -> PrivateKey {
        OpenSSLErrorQueue.clear()
        let key: OpaquePointer?
        switch kind {
        case .ecP256: key = copenssl_EVP_EC_gen_p256()
        case .rsa(let bits):
            guard bits >= 2048 else { throw CryptoError(.keyMismatch, "RSA keys must have at least 2048 bits.") }
            key = copenssl_EVP_RSA_gen(UInt32(bits))
        }
        guard let key else { throw .fromQueue(.internalError, "Could not generate a key.") }
        return PrivateKey(owning: key)
    }

    /// Reads a PEM private key (PKCS#8 or traditional, unencrypted).
    public convenience init(pem text: some DataProtocol) throws(CryptoError) {
        OpenSSLErrorQueue.clear()
        let bio = try OwnedBIO(copying: text)
        guard let key = PEM_read_bio_PrivateKey(bio.pointer, nil, nil, nil) else {
            // The detail is dropped on purpose: nothing about a key file belongs in a log.
            OpenSSLErrorQueue.clear()
            throw CryptoError(.malformed, "The file holds no readable unencrypted PEM private key.")
        }
        self.init(owning: key)
    }

    public static func load(pemFile path: String) throws -> PrivateKey {
        try PrivateKey(pem: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    /// PKCS#8 PEM. The caller is responsible for writing it with owner-only permissions.
    public func pem() throws(CryptoError) -> String {
        let bio = try OwnedBIO()
        guard PEM_write_bio_PrivateKey(bio.pointer, pointer, nil, nil, 0, nil, nil) == 1 else {
            throw .fromQueue(.internalError, "Could not encode the private key.")
        }
        return String(decoding: bio.contents, as: UTF8.self)
    }

    /// Whether this key is the private half of the certificate's public key.
    public func matches(_ certificate: Certificate) -> Bool {
        let result = X509_check_private_key(certificate.pointer, pointer) == 1
        OpenSSLErrorQueue.clear()
        return result
    }

    public var description: String { "PrivateKey(<redacted>)" }
}
