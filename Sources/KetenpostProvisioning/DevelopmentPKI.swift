import Foundation
import KetenpostAPI
import KetenpostCrypto

/// The development PKI, in the shape of a real one: a root CA, an issuing (intermediate) CA
/// below it, and every identity issued by the intermediate, which publishes its CRL at a CRL
/// distribution point on loopback (`ketenpost serve` answers there; see `crlEndpoint`).
///
/// Layout under the directory (keys are written owner-only and never committed):
/// ```
/// ca/cert.pem  ca/key.pem          the root CA (the trust anchor is ca/cert.pem)
/// ca/crl.pem                       the root's CRL (revokes intermediates)
/// issuing/cert.pem issuing/key.pem the issuing CA, below the root
/// issuing/crl.pem                  the issuing CA's CRL (revokes partner certificates)
/// crl.pem                          both CRLs in one file (for --crl and tls.crls)
/// relay/cert.pem relay/key.pem     the relay (TLS server, receipt signing); cert.pem holds the chain
/// admin/cert.pem chain.pem key.pem an administrator (TLS client for `ketenpost admin`)
/// echo/…                           the conformance echo partner (`conformance.echo`)
/// partners/ID/cert.pem chain.pem key.pem  one identity per partner of partners.yaml
/// ```
/// `chain.pem` holds the issuing CA's certificate: send it along (`-certfile` for openssl).
/// Creation is idempotent: what exists is kept, what is missing is added.
public struct DevelopmentPKI: Sendable {
    public let directory: URL
    public static let relayID = "ketenpost-relay"
    public static let adminID = "ketenpost-admin"
    /// The conformance echo partner (`conformance.echo`), for `ketenpost conformance`.
    public static let echo = PartnerEntry(
        id: "ketenpost-echo",
        name: "Ketenpost conformance echo",
        role: .careCoordinator,
        oin: "00000009999999999999"
    )

    /// Where the CRL distribution points of new certificates point: `ketenpost serve` answers
    /// there (development only) with `root.crl` and `issuing.crl`.
    public static let defaultCRLEndpoint = "http://127.0.0.1:8480"
    public let crlEndpoint: String

    public init(directory: String, crlEndpoint: String = DevelopmentPKI.defaultCRLEndpoint) {
        self.directory = URL(fileURLWithPath: directory)
        self.crlEndpoint = crlEndpoint
    }

    public var caCertificatePath: String { directory.appendingPathComponent("ca/cert.pem").path }
    public var issuingDirectory: String { directory.appendingPathComponent("issuing").path }
    public var issuingCertificatePath: String { issuingDirectory + "/cert.pem" }
    /// Both CRLs (issuing CA first, then root) in one PEM file.
    public var crlPath: String { directory.appendingPathComponent("crl.pem").path }
    public var rootCRLPath: String { directory.appendingPathComponent("ca/crl.pem").path }
    public var issuingCRLPath: String { issuingDirectory + "/crl.pem" }
    public var relayDirectory: String { directory.appendingPathComponent("relay").path }
    public var adminDirectory: String { directory.appendingPathComponent("admin").path }
    public var echoDirectory: String { directory.appendingPathComponent("echo").path }
    public func partnerDirectory(_ id: String) -> String { directory.appendingPathComponent("partners/\(id)").path }

    public var exists: Bool { FileManager.default.fileExists(atPath: caCertificatePath) }

    public struct Summary: Sendable {
        public var created: [String] = []
        public var kept: [String] = []
    }

    /// Creates what is missing.
    @discardableResult
    public func create(partners: [PartnerEntry], now: Date = Date()) throws -> Summary {
        var summary = Summary()
        let root = try loadOrCreateCA(now: now, summary: &summary)
        let ca = try loadOrCreateIssuingCA(root: root, now: now, summary: &summary)
        if !FileManager.default.fileExists(atPath: rootCRLPath) || !FileManager.default.fileExists(atPath: issuingCRLPath) {
            try writeCRLs(root: root, issuing: ca, now: now, nextUpdate: 30 * 86_400)
        }
        if FileManager.default.fileExists(atPath: relayDirectory + "/cert.pem") {
            summary.kept.append(Self.relayID)
        } else {
            let key = try PrivateKey.generate(.ecP256)
            let certificate = try ca.issue(relayProfile(now: now), for: key)
            // The relay's TLS certificate file carries its chain: servers send what the file holds.
            try writeIdentity(certificate: certificate, key: key, directory: relayDirectory, chainInCertificateFile: true)
            summary.created.append(Self.relayID)
        }
        if FileManager.default.fileExists(atPath: adminDirectory + "/cert.pem") {
            summary.kept.append(Self.adminID)
        } else {
            let key = try PrivateKey.generate(.ecP256)
            let certificate = try ca.issue(withCRL(Self.adminProfile(now: now)), for: key)
            try writeIdentity(certificate: certificate, key: key, directory: adminDirectory)
            summary.created.append(Self.adminID)
        }
        if FileManager.default.fileExists(atPath: echoDirectory + "/cert.pem") {
            summary.kept.append(Self.echo.id)
        } else {
            let key = try PrivateKey.generate(.ecP256)
            let certificate = try ca.issue(withCRL(Self.partnerProfile(Self.echo, keyKind: .ecP256, now: now)), for: key)
            try writeIdentity(certificate: certificate, key: key, directory: echoDirectory)
            summary.created.append(Self.echo.id)
        }
        for partner in partners {
            let dir = partnerDirectory(partner.id)
            if FileManager.default.fileExists(atPath: dir + "/cert.pem") {
                summary.kept.append(partner.id)
                continue
            }
            let key = try PrivateKey.generate(partner.key?.kind ?? .ecP256)
            let profile = Self.partnerProfile(partner, keyKind: partner.key?.kind ?? .ecP256, now: now)
            let certificate = try ca.issue(withCRL(profile), for: key)
            try writeIdentity(certificate: certificate, key: key, directory: dir)
            summary.created.append(partner.id)
        }
        return summary
    }

    /// Issues a new relay certificate and key into `directory` (a rehearsal of the relay's own rotation).
    @discardableResult
    public func issueRelay(into directory: String, now: Date = Date()) throws -> Certificate {
        guard !FileManager.default.fileExists(atPath: directory + "/cert.pem") else {
            throw KetenpostError(.configInvalid, "\(directory) already holds an identity; choose another directory.")
        }
        let key = try PrivateKey.generate(.ecP256)
        let certificate = try loadCA().issue(relayProfile(now: now), for: key)
        try writeIdentity(certificate: certificate, key: key, directory: directory, chainInCertificateFile: true)
        return certificate
    }

    /// Issues another certificate and key for a partner (a rotation rehearsal) into `directory`.
    @discardableResult
    public func issue(
        for partner: PartnerEntry,
        key keyType: PartnerEntry.KeyType? = nil,
        notBefore: Date? = nil,
        validity: TimeInterval = 365 * 86_400,
        into directory: String,
        now: Date = Date()
    ) throws -> Certificate {
        guard !FileManager.default.fileExists(atPath: directory + "/cert.pem") else {
            throw KetenpostError(.configInvalid, "\(directory) already holds an identity; choose another directory.")
        }
        let ca = try loadCA()
        let kind = (keyType ?? partner.key ?? .ecP256).kind
        let key = try PrivateKey.generate(kind)
        let start = notBefore ?? now.addingTimeInterval(-300)
        let certificate = try ca.issue(
            withCRL(
                Self.partnerProfile(
                    partner,
                    keyKind: kind,
                    now: now,
                    notBefore: start,
                    notAfter: start.addingTimeInterval(validity)
                )
            ),
            for: key
        )
        try writeIdentity(certificate: certificate, key: key, directory: directory)
        return certificate
    }

    /// Adds serial numbers to the issuing CA's revocation list and writes fresh CRLs (both
    /// lists, so that `crl.pem` stays current). The revoked serials are kept in
    /// `issuing/revoked.txt`.
    @discardableResult
    public func revoke(serials: [String], nextUpdate: TimeInterval = 30 * 86_400, now: Date = Date()) throws -> RevocationList {
        let listPath = issuingDirectory + "/revoked.txt"
        let known = ((try? String(contentsOfFile: listPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        var all = known
        for serial in serials.map({ $0.uppercased() }) where !all.contains(serial) { all.append(serial) }
        try write(all.joined(separator: "\n") + "\n", to: listPath, secret: false)
        return try writeCRLs(root: loadRoot(), issuing: loadCA(), now: now, nextUpdate: nextUpdate)
    }

    /// Writes both CRLs and `crl.pem`; returns the issuing CA's.
    @discardableResult
    private func writeCRLs(
        root: CertificateIssuer,
        issuing: CertificateIssuer,
        now: Date,
        nextUpdate: TimeInterval
    ) throws
        -> RevocationList
    {
        let revoked = ((try? String(contentsOfFile: issuingDirectory + "/revoked.txt", encoding: .utf8)) ?? "")
            .split(separator: "\n").map(String.init)
        let lastUpdate = now.addingTimeInterval(-60)
        let issuingCRL = try issuing.revocationList(
            revokedSerials: revoked,
            lastUpdate: lastUpdate,
            nextUpdate: now.addingTimeInterval(nextUpdate)
        )
        let rootCRL = try root.revocationList(revokedSerials: [], lastUpdate: lastUpdate, nextUpdate: now.addingTimeInterval(nextUpdate))
        try write(rootCRL.pem, to: rootCRLPath, secret: false)
        try write(issuingCRL.pem, to: issuingCRLPath, secret: false)
        try write(issuingCRL.pem + rootCRL.pem, to: crlPath, secret: false)
        return issuingCRL
    }

    /// The issuing CA: it issues every development identity and their CRL.
    public func loadCA() throws -> CertificateIssuer {
        try loadIssuer(issuingDirectory)
    }

    /// The root CA (the trust anchor).
    public func loadRoot() throws -> CertificateIssuer {
        try loadIssuer(directory.appendingPathComponent("ca").path)
    }

    /// The intermediates of every development identity: send them along with signatures.
    public func chain() throws -> [Certificate] {
        try Certificate.load(pemFile: issuingCertificatePath)
    }

    private func loadIssuer(_ path: String) throws -> CertificateIssuer {
        let certificate = try Certificate(pem: try Data(contentsOf: URL(fileURLWithPath: path + "/cert.pem")))
        let key = try PrivateKey.load(pemFile: path + "/key.pem")
        return try CertificateIssuer(certificate: certificate, key: key)
    }

    private func loadOrCreateIssuingCA(root: CertificateIssuer, now: Date, summary: inout Summary) throws -> CertificateIssuer {
        if FileManager.default.fileExists(atPath: issuingCertificatePath) {
            summary.kept.append("issuing")
            return try loadCA()
        }
        // A PKI made before the issuing CA existed gets one too; its older identities stay
        // valid under the root.
        let key = try PrivateKey.generate(.ecP256)
        var profile = Self.caProfile(now: now, name: "Ketenpost Development Issuing CA")
        profile.notAfter = now.addingTimeInterval(5 * 365 * 86_400)
        profile.crlDistributionPoints = [crlEndpoint + "/root.crl"]
        let certificate = try root.issue(profile, for: key)
        try writeIdentity(certificate: certificate, key: key, directory: issuingDirectory)
        summary.created.append("issuing")
        return try CertificateIssuer(certificate: certificate, key: key)
    }

    /// Where this PKI's certificates say its CRLs are: read from the issuing CA's certificate
    /// (its distribution point names `root.crl` there), else `crlEndpoint`.
    public var publishedCRLEndpoint: String {
        guard let issuing = try? Certificate.load(pemFile: issuingCertificatePath).first,
            let point = issuing.crlDistributionPoints.first, point.hasSuffix("/root.crl")
        else { return crlEndpoint }
        return String(point.dropLast("/root.crl".count))
    }

    /// A profile with the issuing CA's CRL distribution point.
    func withCRL(_ profile: CertificateProfile) -> CertificateProfile {
        var profile = profile
        profile.crlDistributionPoints = [crlEndpoint + "/issuing.crl"]
        return profile
    }

    private func relayProfile(now: Date) -> CertificateProfile { withCRL(Self.relayProfile(now: now)) }

    private func loadOrCreateCA(now: Date, summary: inout Summary) throws -> CertificateIssuer {
        if exists {
            summary.kept.append("ca")
            return try loadRoot()
        }
        let key = try PrivateKey.generate(.ecP256)
        let ca = try CertificateIssuer.selfSigned(Self.caProfile(now: now), key: key)
        try writeIdentity(certificate: ca.certificate, key: key, directory: directory.appendingPathComponent("ca").path)
        summary.created.append("ca")
        return ca
    }

    public static func caProfile(now: Date, name: String = "Ketenpost Development Root CA") -> CertificateProfile {
        CertificateProfile(
            commonName: name,
            organization: "Ketenpost development (not for production)",
            notBefore: now.addingTimeInterval(-3600),
            notAfter: now.addingTimeInterval(10 * 365 * 86_400),
            isCA: true,
            keyUsage: "critical,keyCertSign,cRLSign"
        )
    }

    public static func relayProfile(now: Date) -> CertificateProfile {
        CertificateProfile(
            commonName: relayID,
            organization: "Ketenpost relay",
            notBefore: now.addingTimeInterval(-3600),
            notAfter: now.addingTimeInterval(365 * 86_400),
            keyUsage: "critical,digitalSignature,keyAgreement",
            // No emailProtection: the relay signs receipts and checkpoints, never messages, and
            // recipients tell them apart by this purpose (issue 20).
            extendedKeyUsage: "serverAuth,clientAuth",
            subjectAltName: "DNS:localhost,IP:127.0.0.1,IP:::1"
        )
    }

    /// An administrator's certificate: TLS client authentication only.
    public static func adminProfile(now: Date) -> CertificateProfile {
        CertificateProfile(
            commonName: adminID,
            organization: "Ketenpost administrators",
            notBefore: now.addingTimeInterval(-3600),
            notAfter: now.addingTimeInterval(365 * 86_400),
            keyUsage: "critical,digitalSignature",
            extendedKeyUsage: "clientAuth"
        )
    }

    /// A partner certificate serves signing, encryption and TLS client authentication.
    public static func partnerProfile(
        _ partner: PartnerEntry,
        keyKind: PrivateKey.Kind,
        now: Date,
        notBefore: Date? = nil,
        notAfter: Date? = nil
    ) -> CertificateProfile {
        let keyUsage = keyKind == .ecP256 ? "critical,digitalSignature,keyAgreement" : "critical,digitalSignature,keyEncipherment"
        return CertificateProfile(
            commonName: partner.id,
            organization: partner.name,
            subjectSerialNumber: partner.oin,
            notBefore: notBefore ?? now.addingTimeInterval(-3600),
            notAfter: notAfter ?? now.addingTimeInterval(365 * 86_400),
            keyUsage: keyUsage,
            extendedKeyUsage: "clientAuth,emailProtection"
        )
    }

    /// Writes key.pem, cert.pem and (for certificates of the issuing CA) chain.pem; with
    /// `chainInCertificateFile`, the chain goes into cert.pem after the certificate instead.
    private func writeIdentity(certificate: Certificate, key: PrivateKey, directory: String, chainInCertificateFile: Bool = false) throws {
        try FileManager.default.createDirectory(
            atPath: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        let chain = certificate.isCA ? [] : try self.chain()
        try write(key.pem(), to: directory + "/key.pem", secret: true)
        if chainInCertificateFile {
            try write(([certificate] + chain).map(\.pem).joined(), to: directory + "/cert.pem", secret: false)
        } else {
            try write(certificate.pem, to: directory + "/cert.pem", secret: false)
            if !chain.isEmpty { try write(chain.map(\.pem).joined(), to: directory + "/chain.pem", secret: false) }
        }
    }

    /// Writes via a temporary file that is created with its final mode (a key is never readable
    /// by others, not even for a moment) and renamed into place (readers never see half a file).
    private func write(_ text: String, to path: String, secret: Bool) throws {
        let temporary = path + ".\(UUID().uuidString).tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, secret ? 0o600 : 0o644)
        guard fd >= 0 else { throw KetenpostError(.configInvalid, "Cannot write \(path).") }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw KetenpostError(.configInvalid, "Cannot write \(path).")
        }
    }
}

extension PartnerEntry.KeyType {
    public var kind: PrivateKey.Kind {
        switch self {
        case .ecP256: return .ecP256
        case .rsa2048: return .rsa(bits: 2048)
        case .rsa3072: return .rsa(bits: 3072)
        }
    }
}
