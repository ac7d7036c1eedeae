import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostModel
import KetenpostProvisioning
import KetenpostStore
import Yams

/// A certificate registered for a partner, parsed once per directory version.
public struct RegisteredCertificate: Sendable {
    public let certificate: Certificate
    public let record: DirectoryCertificate
    /// The intermediates registered with it (untrusted: they only help build its chain).
    public var intermediates: [Certificate] = []
    public var fingerprint: String { record.fingerprint }

    public func state(at now: Date) -> CertificateState { record.state(at: now) }

    /// Registered for `use` and active or in its overlap at `now`.
    public func isUsable(for use: CertificateUse, at now: Date) -> Bool {
        record.uses.contains(use) && record.state(at: now).isUsable
    }
}

/// A partner as the relay knows it: its role, state and registered certificates.
public struct Partner: Sendable {
    public let id: String
    public let name: String
    public let role: PartnerRole
    public let oin: String
    public let state: PartnerState
    public let certificates: [RegisteredCertificate]

    /// Certificates that may be used for `use` now (active, or retiring within an overlap).
    public func usable(for use: CertificateUse, at now: Date) -> [RegisteredCertificate] {
        certificates.filter { $0.isUsable(for: use, at: now) }
    }
}

/// The partner directory at one version of the store's directory (an immutable snapshot;
/// the relay swaps in a new one when the version changes).
public struct PartnerDirectory: Sendable {
    public let version: Int64
    public let partners: [String: Partner]
    private let byFingerprint: [String: RegisteredCertificate]
    /// Every intermediate registered with any certificate, once: path-building help for
    /// partners whose tools do not embed their chain in a signature (never trusted).
    public let intermediates: [Certificate]

    public init(version: Int64 = 0, partners: [Partner]) {
        self.version = version
        self.partners = Dictionary(uniqueKeysWithValues: partners.map { ($0.id, $0) })
        var index: [String: RegisteredCertificate] = [:]
        for partner in partners {
            for certificate in partner.certificates { index[certificate.fingerprint] = certificate }
        }
        byFingerprint = index
        var seen = Set<String>()
        intermediates = partners.flatMap(\.certificates).flatMap(\.intermediates).filter { seen.insert($0.fingerprint).inserted }
    }

    /// Builds the view of a store snapshot; certificates already parsed in `previous` are reused.
    public init(snapshot: DirectorySnapshot, previous: PartnerDirectory? = nil) {
        var byPartner: [String: [RegisteredCertificate]] = [:]
        for record in snapshot.certificates {
            let certificate: Certificate
            let intermediates: [Certificate]
            if let known = previous?.byFingerprint[record.fingerprint] {
                (certificate, intermediates) = (known.certificate, known.intermediates)
            } else if let parsed = try? Certificate(der: record.der) {
                certificate = parsed
                intermediates = record.chain.compactMap { try? Certificate(der: $0) }
            } else {
                continue  // unreadable bytes cannot authenticate anybody
            }
            byPartner[record.partnerID, default: []].append(
                RegisteredCertificate(certificate: certificate, record: record, intermediates: intermediates)
            )
        }
        let partners = snapshot.partners.compactMap { p -> Partner? in
            guard let role = PartnerRole(rawValue: p.role) else { return nil }
            return Partner(
                id: p.id,
                name: p.name,
                role: role,
                oin: p.oin,
                state: PartnerState(rawValue: p.state) ?? .suspended,
                certificates: byPartner[p.id] ?? []
            )
        }
        self.init(version: snapshot.version, partners: partners)
    }

    public func partner(_ id: String) -> Partner? { partners[id] }

    /// The registration of exactly this certificate (fingerprint match, not just the name).
    public func registration(of certificate: Certificate) -> (partner: Partner, certificate: RegisteredCertificate)? {
        guard let registered = byFingerprint[certificate.fingerprint], let partner = partners[registered.record.partnerID] else {
            return nil
        }
        return (partner, registered)
    }

    public func registration(fingerprint: String) -> RegisteredCertificate? { byFingerprint[fingerprint] }
}

/// The idempotent import of `partners.yaml` into the store's directory: partners and
/// certificates that the store lacks are added; nothing that exists is changed, so a
/// suspension or revocation made through the admin API survives every restart.
public enum DirectoryImport {
    /// Partners without a `certificates` list use `<certificateDirectory>/<id>/cert.pem`.
    public static func changes(
        file: String,
        certificateDirectory: String,
        current: DirectorySnapshot,
        now: Date
    ) throws(KetenpostError) -> [DirectoryChange] {
        let entries = try PartnerDirectoryFile.load(path: file)
        let knownPartners = Set(current.partners.map(\.id))
        let knownCertificates = Set(current.certificates.map(\.fingerprint))
        var changes: [DirectoryChange] = []
        for (index, entry) in entries.partners.enumerated() {
            // By default the identity's cert.pem, and its chain.pem (intermediates) if there is one.
            let defaultChain = "\(certificateDirectory)/\(entry.id)/chain.pem"
            let paths =
                entry.certificates
                ?? ["\(certificateDirectory)/\(entry.id)/cert.pem"]
                + (FileManager.default.fileExists(atPath: defaultChain) ? [defaultChain] : [])
            // The files hold the partner's certificates and (optionally) their intermediates.
            var all: [Certificate] = []
            for path in paths {
                do {
                    all += try Certificate.load(pemFile: path)
                } catch {
                    throw KetenpostError(
                        .configInvalid,
                        "\(file): partners[\(index)].certificates: \(path) cannot be read as PEM certificates."
                    )
                }
            }
            let chain = all.filter(\.isCA)
            let certificates = all.filter { !$0.isCA }.map { (certificate: $0, chain: chain) }
            for (certificate, _) in certificates where certificate.commonName != entry.id {
                throw KetenpostError(
                    .configInvalid,
                    """
                    \(file): partners[\(index)].certificates: a certificate is for \(certificate.commonName ?? "no commonName"), not \
                    for \(entry.id).
                    """
                )
            }
            for (certificate, _) in certificates where certificate.subjectSerialNumber != entry.oin {
                throw KetenpostError(
                    .configInvalid,
                    """
                    \(file): partners[\(index)].certificates: a certificate's subject serialNumber is not \(entry.id)'s OIN \
                    \(entry.oin); recipients accept only signatures that carry it.
                    """
                )
            }
            if !knownPartners.contains(entry.id) {
                changes.append(
                    .addPartner(
                        DirectoryPartner(
                            id: entry.id,
                            name: entry.name,
                            role: entry.role.rawValue,
                            oin: entry.oin,
                            state: (entry.state ?? .active).rawValue
                        )
                    )
                )
            }
            for (certificate, chain) in certificates where !knownCertificates.contains(certificate.fingerprint) {
                changes.append(
                    .addCertificate(
                        record(certificate, chain: chain, partner: entry.id, uses: CertificateUse.allCases, activatesAt: now, now: now)
                    )
                )
            }
        }
        return changes
    }

    /// The directory record of a certificate. Times are whole seconds: stored as numbers since
    /// 1970 they must compare the same after a round trip through the store.
    public static func record(
        _ certificate: Certificate,
        chain: [Certificate] = [],
        partner: String,
        uses: [CertificateUse],
        activatesAt: Date,
        now: Date
    ) -> DirectoryCertificate {
        DirectoryCertificate(
            fingerprint: certificate.fingerprint,
            partnerID: partner,
            der: certificate.der,
            chain: chain.map(\.der),
            uses: uses,
            serial: certificate.serialNumberHex,
            notBefore: certificate.notBefore,
            notAfter: certificate.notAfter,
            activatesAt: wholeSeconds(activatesAt),
            addedAt: wholeSeconds(now)
        )
    }

    static func wholeSeconds(_ date: Date) -> Date { Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down)) }
}

/// Which role may send which type to which role (`config/policy.yaml`).
public struct Policy: Sendable {
    public struct Rule: Sendable, Codable {
        public var type: MessageType
        public var from: [PartnerRole]
        public var to: [PartnerRole]
    }
    public let rules: [Rule]

    public init(rules: [Rule]) { self.rules = rules }

    /// The brief's table.
    public static let `default` = Policy(
        rules: MessageType.allCases.map {
            Rule(
                type: $0,
                from: $0.allowedSenderRoles.sorted { $0.rawValue < $1.rawValue },
                to: $0.allowedRecipientRoles.sorted { $0.rawValue < $1.rawValue }
            )
        }
    )

    public func allows(_ type: MessageType, from sender: PartnerRole, to recipient: PartnerRole) -> Bool {
        rules.contains { $0.type == type && $0.from.contains(sender) && $0.to.contains(recipient) }
    }

    public static func load(path: String) throws(KetenpostError) -> Policy {
        struct Shape: Decodable { var rules: [Rule] }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KetenpostError(.configInvalid, "\(path): cannot be read (\(error.localizedDescription)).")
        }
        do {
            return Policy(rules: try YAMLDecoder().decode(Shape.self, from: text).rules)
        } catch let error as DecodingError {
            throw KetenpostError(.configInvalid, "\(path): \(ConfigErrors.describe(error))")
        } catch {
            throw KetenpostError(.configInvalid, "\(path): not valid YAML (\(error)).")
        }
    }
}
