import Foundation
import KetenpostAPI
import KetenpostCrypto

/// A partner's (or the relay's) own certificate and private key.
///
/// On disk an identity is a directory with `cert.pem`, `key.pem` and optionally `chain.pem`
/// (intermediate certificates sent along with signatures). Certificates after the first in
/// `cert.pem` (a "full chain" file, as TLS servers take it) count as chain too.
public struct Identity: Sendable {
    public let certificate: Certificate
    public let key: PrivateKey
    public let chain: [Certificate]

    public init(certificate: Certificate, key: PrivateKey, chain: [Certificate] = []) throws(KetenpostError) {
        guard key.matches(certificate) else {
            throw KetenpostError(
                .identityInvalid,
                "The private key does not belong to the certificate; check that key.pem and cert.pem are a pair."
            )
        }
        guard let commonName = certificate.commonName, !commonName.isEmpty else {
            throw KetenpostError(.identityInvalid, "The certificate has no commonName; Ketenpost certificates carry the partner id there.")
        }
        self.certificate = certificate
        self.key = key
        self.chain = chain
    }

    /// The partner id: the subject's commonName.
    public var partnerID: String { certificate.commonName ?? "" }

    public static func load(directory: String) throws(KetenpostError) -> Identity {
        let base = URL(fileURLWithPath: directory)
        func read(_ name: String) throws(KetenpostError) -> Data {
            do { return try Data(contentsOf: base.appendingPathComponent(name)) } catch {
                throw KetenpostError(
                    .identityInvalid,
                    """
                    Cannot read \(base.appendingPathComponent(name).path); an identity directory holds cert.pem and key.pem (create \
                    them with `ketenpost pki init`).
                    """
                )
            }
        }
        let certificate: Certificate
        let key: PrivateKey
        var chain: [Certificate] = []
        do {
            let certificates = try Certificate.all(pem: try read("cert.pem"))
            certificate = certificates[0]
            chain = Array(certificates.dropFirst())
            key = try PrivateKey(pem: try read("key.pem"))
        } catch let error as KetenpostError {
            throw error
        } catch {
            throw KetenpostError(.identityInvalid, "The identity in \(directory) could not be read: \(error)")
        }
        let chainURL = base.appendingPathComponent("chain.pem")
        if FileManager.default.fileExists(atPath: chainURL.path) {
            do { chain += try Certificate.all(pem: try Data(contentsOf: chainURL)) } catch {
                throw KetenpostError(.identityInvalid, "\(chainURL.path) holds no readable PEM certificates.")
            }
        }
        return try Identity(certificate: certificate, key: key, chain: chain)
    }
}

extension TrustStore {
    /// Loads trust anchors (and optionally CRLs) from PEM files. `intermediates` help build
    /// paths to the anchors (never trusted themselves).
    public static func load(
        anchorsFile: String,
        crlFiles: [String] = [],
        intermediates: [Certificate] = [],
        acceptExpiredCRLs: Bool = false
    ) throws(KetenpostError) -> TrustStore {
        do {
            let anchors = try Certificate.load(pemFile: anchorsFile)
            let crls = try crlFiles.flatMap { try RevocationList.loadAll(pemFile: $0) }
            return try TrustStore(
                anchors: anchors,
                intermediates: intermediates,
                revocationLists: crls,
                acceptExpiredCRLs: acceptExpiredCRLs
            )
        } catch {
            throw KetenpostError(
                .configInvalid,
                "The trust anchors (\(anchorsFile)) or CRLs (\(crlFiles.joined(separator: ", "))) could not be read: \(error)"
            )
        }
    }
}
