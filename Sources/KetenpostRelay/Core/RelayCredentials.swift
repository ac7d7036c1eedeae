import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import NIOSSL

/// The relay's own certificate and key, the trust anchors with their CRLs and the
/// administrators' certificates, read from the files the configuration names. The relay
/// re-reads them on SIGHUP and every `tls.reloadInterval`, and swaps in a new set only when
/// the bytes changed and the whole set is valid; until then the old set stays in use.
struct RelayCredentials: Sendable {
    let trust: TrustStore
    let identity: Identity
    let tlsChain: [NIOSSLCertificateSource]
    let tlsKey: NIOSSLPrivateKeySource
    /// Fingerprints of the administrators' certificates.
    let administrators: Set<String>
    let crls: [(file: String, lastUpdate: Date, nextUpdate: Date?)]
    /// SHA-256 over every file read: a change to any of them is a new set.
    let digest: String

    static func load(_ configuration: RelayConfiguration) throws(KetenpostError) -> RelayCredentials {
        var files: [String: Data] = [:]
        func read(_ path: String, _ key: String) throws(KetenpostError) -> Data {
            do {
                let data = try Data(contentsOf: URL(fileURLWithPath: path))
                files[path] = data
                return data
            } catch {
                throw KetenpostError(.configInvalid, "\(key) \(path): cannot be read (\(error.localizedDescription)).")
            }
        }
        let certificatePEM = try read(configuration.tls.certificate, "tls.certificate")
        let keyPEM = try read(configuration.tls.key, "tls.key")
        let anchorsPEM = try read(configuration.tls.trustAnchors, "tls.trustAnchors")
        var crlData: [(String, Data)] = []
        for path in configuration.tls.crls { crlData.append((path, try read(path, "tls.crls"))) }
        var adminPEM: [(String, Data)] = []
        for path in configuration.admin.certificates { adminPEM.append((path, try read(path, "admin.certificates"))) }

        let identity: Identity
        let chain: [Certificate]
        do {
            chain = try Certificate.all(pem: certificatePEM)
            guard let leaf = chain.first else { throw KetenpostError(.configInvalid, "no certificate") }
            identity = try Identity(certificate: leaf, key: try PrivateKey(pem: keyPEM), chain: Array(chain.dropFirst()))
        } catch {
            throw KetenpostError(
                .configInvalid,
                "tls.certificate/tls.key (\(configuration.tls.certificate)): cannot be read as the relay's identity: \(error)"
            )
        }
        guard identity.partnerID == configuration.relay.id else {
            throw KetenpostError(
                .configInvalid,
                "relay.id is \(configuration.relay.id) but the relay certificate is for \(identity.partnerID)."
            )
        }
        let trust: TrustStore
        var crls: [(file: String, lastUpdate: Date, nextUpdate: Date?)] = []
        do {
            let anchors = try Certificate.all(pem: anchorsPEM)
            let lists = try crlData.map { try RevocationList(pem: $0.1) }
            crls = zip(crlData, lists).map { ($0.0.0, $0.1.lastUpdate, $0.1.nextUpdate) }
            trust = try TrustStore(anchors: anchors, revocationLists: lists, acceptExpiredCRLs: configuration.tls.acceptStaleCRL)
        } catch {
            throw KetenpostError(
                .configInvalid,
                """
                tls.trustAnchors (\(configuration.tls.trustAnchors)) or tls.crls (\(configuration.tls.crls.joined(separator: ", "))): \
                cannot be read: \(error)
                """
            )
        }
        var administrators = Set<String>()
        for (path, data) in adminPEM {
            guard let certificates = try? Certificate.all(pem: data), !certificates.isEmpty else {
                throw KetenpostError(.configInvalid, "admin.certificates \(path): holds no readable PEM certificate.")
            }
            administrators.formUnion(certificates.map(\.fingerprint))
        }
        let tlsChain: [NIOSSLCertificateSource]
        let tlsKey: NIOSSLPrivateKeySource
        do {
            tlsChain = try chain.map { .certificate(try NIOSSLCertificate(bytes: Array($0.der), format: .der)) }
            tlsKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(keyPEM), format: .pem))
        } catch {
            throw KetenpostError(
                .configInvalid,
                "tls.certificate/tls.key (\(configuration.tls.certificate)): cannot be used for TLS: \(error)"
            )
        }
        var all = Data()
        for path in files.keys.sorted() {
            all.append(Data(path.utf8))
            all.append(files[path]!)
        }
        return RelayCredentials(
            trust: trust,
            identity: identity,
            tlsChain: tlsChain,
            tlsKey: tlsKey,
            administrators: administrators,
            crls: crls,
            digest: Digest.sha256(all).hexString
        )
    }

    /// CRL files past their next update at `now`.
    func staleCRLs(at now: Date) -> [String] {
        crls.filter { $0.nextUpdate.map { $0 <= now } ?? false }.map(\.file)
    }
}
