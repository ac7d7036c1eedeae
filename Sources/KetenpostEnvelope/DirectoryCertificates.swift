import Foundation
import KetenpostAPI
import KetenpostCrypto

extension API.DirectoryEntry {
    /// The certificates to seal to, and the intermediates to check their chains with.
    ///
    /// A CA certificate among `certificates` (an older relay's chain file) is taken as an
    /// intermediate, never as a recipient. Nothing here is trusted: `Envelope.seal` checks every
    /// recipient certificate against the trust anchors.
    public func sealingCertificates() throws(KetenpostError) -> (recipients: [Certificate], intermediates: [Certificate]) {
        do throws(CryptoError) {
            var all: [Certificate] = []
            for pem in certificates { all += try Certificate.all(pem: Data(pem.utf8)) }
            var chain: [Certificate] = []
            for pem in self.chain ?? [] { chain += try Certificate.all(pem: Data(pem.utf8)) }
            return (all.filter { !$0.isCA }, chain + all.filter(\.isCA))
        } catch {
            throw KetenpostError(
                .recipientCertificateMismatch,
                "The directory entry for \(id) holds a certificate that cannot be read.",
                detail: error.detail
            )
        }
    }
}
