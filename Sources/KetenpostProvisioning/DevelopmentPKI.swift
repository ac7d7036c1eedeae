import Foundation
import KetenpostAPI
import KetenpostCrypto

/// The development PKI: a CA, the relay's certificate and one identity per partner.
///
/// Layout under the directory (keys are written owner-only and never committed):
/// ```
/// ca/cert.pem  ca/key.pem      the development CA (the trust anchor is ca/cert.pem)
/// crl.pem                      an empty CRL of the CA
/// relay/cert.pem relay/key.pem the relay (TLS server, receipt signing)
/// admin/cert.pem admin/key.pem an administrator (TLS client for `ketenpost admin`)
/// echo/cert.pem echo/key.pem   the conformance echo partner (`conformance.echo`)
/// partners/ID/cert.pem key.pem one identity per partner of partners.yaml
/// ```
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

    public init(directory: String) { self.directory = URL(fileURLWithPath: directory) }

    public var caCertificatePath: String { directory.appendingPathComponent("ca/cert.pem").path }
    public var crlPath: String { directory.appendingPathComponent("crl.pem").path }
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
        let ca = try loadOrCreateCA(now: now, summary: &summary)
        if !FileManager.default.fileExists(atPath: crlPath) {
            let crl = try ca.revocationList(revokedSerials: [], lastUpdate: now, nextUpdate: now.addingTimeInterval(30 * 86_400))
            try write(crl.pem, to: crlPath, secret: false)
        }
        if FileManager.default.fileExists(atPath: relayDirectory + "/cert.pem") {
            summary.kept.append(Self.relayID)
        } else {
            let key = try PrivateKey.generate(.ecP256)
            let certificate = try ca.issue(Self.relayProfile(now: now), for: key)
            try writeIdentity(certificate: certificate, key: key, directory: relayDirectory)
            summary.created.append(Self.relayID)
        }
        if FileManager.default.fileExists(atPath: adminDirectory + "/cert.pem") {
            summary.kept.append(Self.adminID)
        } else {
            let key = try PrivateKey.generate(.ecP256)
            let certificate = try ca.issue(Self.adminProfile(now: now), for: key)
            try writeIdentity(certificate: certificate, key: key, directory: adminDirectory)
            summary.created.append(Self.adminID)
        }
        if FileManager.default.fileExists(atPath: echoDirectory + "/cert.pem") {
            summary.kept.append(Self.echo.id)
        } else {
            let key = try PrivateKey.generate(.ecP256)
            let certificate = try ca.issue(Self.partnerProfile(Self.echo, keyKind: .ecP256, now: now), for: key)
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
            let certificate = try ca.issue(Self.partnerProfile(partner, keyKind: partner.key?.kind ?? .ecP256, now: now), for: key)
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
        let certificate = try loadCA().issue(Self.relayProfile(now: now), for: key)
        try writeIdentity(certificate: certificate, key: key, directory: directory)
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
            Self.partnerProfile(
                partner,
                keyKind: kind,
                now: now,
                notBefore: start,
                notAfter: start.addingTimeInterval(validity)
            ),
            for: key
        )
        try writeIdentity(certificate: certificate, key: key, directory: directory)
        return certificate
    }

    /// Adds serial numbers to the CA's revocation list and writes a fresh `crl.pem`.
    /// The list of revoked serials is kept in `revoked.txt` next to it.
    @discardableResult
    public func revoke(serials: [String], nextUpdate: TimeInterval = 30 * 86_400, now: Date = Date()) throws -> RevocationList {
        let listPath = directory.appendingPathComponent("revoked.txt").path
        let known = ((try? String(contentsOfFile: listPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        var all = known
        for serial in serials.map({ $0.uppercased() }) where !all.contains(serial) { all.append(serial) }
        let crl = try loadCA().revocationList(
            revokedSerials: all,
            lastUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(nextUpdate)
        )
        try write(all.joined(separator: "\n") + "\n", to: listPath, secret: false)
        try write(crl.pem, to: crlPath, secret: false)
        return crl
    }

    public func loadCA() throws -> CertificateIssuer {
        let certificate = try Certificate(pem: try Data(contentsOf: URL(fileURLWithPath: caCertificatePath)))
        let key = try PrivateKey.load(pemFile: directory.appendingPathComponent("ca/key.pem").path)
        return try CertificateIssuer(certificate: certificate, key: key)
    }

    private func loadOrCreateCA(now: Date, summary: inout Summary) throws -> CertificateIssuer {
        if exists {
            summary.kept.append("ca")
            return try loadCA()
        }
        let key = try PrivateKey.generate(.ecP256)
        let ca = try CertificateIssuer.selfSigned(Self.caProfile(now: now), key: key)
        try writeIdentity(certificate: ca.certificate, key: key, directory: directory.appendingPathComponent("ca").path)
        summary.created.append("ca")
        return ca
    }

    public static func caProfile(now: Date, name: String = "Ketenpost Development CA") -> CertificateProfile {
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
            extendedKeyUsage: "serverAuth,clientAuth,emailProtection",
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

    private func writeIdentity(certificate: Certificate, key: PrivateKey, directory: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory,
            withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o700]
        )
        try write(key.pem(), to: directory + "/key.pem", secret: true)
        try write(certificate.pem, to: directory + "/cert.pem", secret: false)
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
