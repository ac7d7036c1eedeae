import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope

/// The desk's own copies (drafts, what was sent) are encrypted for the partner's own certificate
/// with the envelope's CMS encryption (AES-256-GCM), so that the desk's folder holds no plaintext:
/// a copied SQLite file without the partner's key reveals no content.
public struct Vault: Sendable {
    public let identity: Identity

    public init(identity: Identity) { self.identity = identity }

    public func seal(_ plaintext: Data) throws(KetenpostError) -> Data {
        do {
            return try CMS.encrypt(plaintext, for: [identity.certificate])
        } catch {
            throw KetenpostError(
                .internalError,
                """
                The desk could not encrypt its copy with the partner's certificate; check that the certificate can receive encrypted \
                messages.
                """
            )
        }
    }

    public func open(_ sealed: Data) throws(KetenpostError) -> Data {
        do {
            return try CMS.decrypt(sealed, certificate: identity.certificate, key: identity.key)
        } catch {
            throw KetenpostError(
                .decryptionFailed,
                "The desk's copy could not be decrypted with the current key; it was made with another key of this partner."
            )
        }
    }
}
