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
    /// The anchors with the CRLs in effect: the files' merged with those fetched into the store
    /// (`LiveCredentials.install(fetched:)`), the newest per CA.
    var trust: TrustStore
    /// The CRLs read from `tls.crls` (the fallback for CAs whose lists cannot be fetched).
    var fileRevocationLists: [RevocationList] = []
    let identity: Identity
    let tlsChain: [NIOSSLCertificateSource]
    let tlsKey: NIOSSLPrivateKeySource
    /// Fingerprints of the administrators' certificates.
    let administrators: Set<String>
    /// CA certificates in the administrators' files: intermediates for their chains.
    let administratorChain: [Certificate]
    let crls: [(file: String, lastUpdate: Date, nextUpdate: Date?, der: Data)]
    /// SHA-256 over every file read: a change to any of them is a new set.
    let digest: String

    /// The files' bytes as read, not yet parsed, and the digest `load` gives a set made from them.
    struct Files {
        var certificate: Data
        var key: Data
        var anchors: Data
        var crls: [(String, Data)]
        var administrators: [(String, Data)]
        let digest: String
    }

    /// Reads the files the configuration names. Cheap next to `load`, whose PEM and key
    /// decoding (OpenSSL's decoders) is what a periodic check would otherwise repeat.
    static func read(_ configuration: RelayConfiguration) throws(KetenpostError) -> Files {
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
        let certificate = try read(configuration.tls.certificate, "tls.certificate")
        let key = try read(configuration.tls.key, "tls.key")
        let anchors = try read(configuration.tls.trustAnchors, "tls.trustAnchors")
        var crls: [(String, Data)] = []
        for path in configuration.tls.crls { crls.append((path, try read(path, "tls.crls"))) }
        var administrators: [(String, Data)] = []
        for path in configuration.admin.certificates { administrators.append((path, try read(path, "admin.certificates"))) }
        var all = Data()
        for path in files.keys.sorted() {
            all.append(Data(path.utf8))
            all.append(files[path]!)
        }
        return Files(
            certificate: certificate,
            key: key,
            anchors: anchors,
            crls: crls,
            administrators: administrators,
            digest: Digest.sha256(all).hexString
        )
    }

    static func load(_ configuration: RelayConfiguration) throws(KetenpostError) -> RelayCredentials {
        try load(configuration, files: try read(configuration))
    }

    /// The set made from files already read (`read`): nothing in it depends on the time or on
    /// anything but these bytes and the configuration.
    static func load(_ configuration: RelayConfiguration, files: Files) throws(KetenpostError) -> RelayCredentials {
        let certificatePEM = files.certificate
        let keyPEM = files.key
        let anchorsPEM = files.anchors
        let crlData = files.crls
        let adminPEM = files.administrators

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
        var fileLists: [RevocationList] = []
        var crls: [(file: String, lastUpdate: Date, nextUpdate: Date?, der: Data)] = []
        do {
            let anchors = try Certificate.all(pem: anchorsPEM)
            var lists: [RevocationList] = []
            for (file, data) in crlData {
                // A file may hold several CRLs (one per CA of a chain, as the development PKI's crl.pem).
                for list in try RevocationList.all(pem: data) {
                    lists.append(list)
                    crls.append((file, list.lastUpdate, list.nextUpdate, list.der))
                }
            }
            trust = try TrustStore(anchors: anchors, revocationLists: lists, acceptExpiredCRLs: configuration.tls.acceptStaleCRL)
            fileLists = lists
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
        var administratorChain: [Certificate] = []
        for (path, data) in adminPEM {
            guard let certificates = try? Certificate.all(pem: data), certificates.contains(where: { !$0.isCA }) else {
                throw KetenpostError(.configInvalid, "admin.certificates \(path): holds no readable PEM certificate.")
            }
            // A CA certificate in the file is an intermediate, never an administrator.
            administrators.formUnion(certificates.filter { !$0.isCA }.map(\.fingerprint))
            administratorChain += certificates.filter(\.isCA)
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
        return RelayCredentials(
            trust: trust,
            fileRevocationLists: fileLists,
            identity: identity,
            tlsChain: tlsChain,
            tlsKey: tlsKey,
            administrators: administrators,
            administratorChain: administratorChain,
            crls: crls,
            digest: files.digest
        )
    }

    /// The same credentials with the fetched CRLs merged in: per CA (issuer name) the list with
    /// the latest `lastUpdate` counts, from a file or from the store. With `required`, revocation
    /// is checked even while no list is held (a CA whose list could never be fetched then fails
    /// closed, or passes with the alarm under `tls.staleCRL: accept`).
    func merging(fetched: [RevocationList], required: Bool, acceptStale: Bool) throws(KetenpostError) -> RelayCredentials {
        var newest: [String: RevocationList] = [:]
        for list in fileRevocationLists + fetched {
            if let held = newest[list.issuer], held.lastUpdate >= list.lastUpdate { continue }
            newest[list.issuer] = list
        }
        var merged = self
        do {
            merged.trust = try TrustStore(
                anchors: trust.anchors,
                revocationLists: newest.keys.sorted().compactMap { newest[$0] },
                acceptExpiredCRLs: acceptStale,
                checkRevocation: required || !newest.isEmpty
            )
        } catch {
            throw KetenpostError(.configInvalid, "The CRLs could not be combined into a trust store: \(error)")
        }
        return merged
    }
}
