import Foundation
import Ketenpost
import KetenpostCrypto
import KetenpostModel
import Yams

/// A partner as the relay knows it: its role and the certificates that speak for it.
public struct Partner: Sendable {
    public let id: String
    public let name: String
    public let role: PartnerRole
    public let oin: String
    public let state: PartnerState
    public let certificates: [Certificate]
    /// SHA-256 fingerprints of `certificates`.
    public let fingerprints: Set<String>
}

/// The partner directory, read from `partners.yaml` and the partners' certificate files.
public struct PartnerDirectory: Sendable {
    public let partners: [String: Partner]
    private let byFingerprint: [String: String]

    public init(partners: [Partner]) {
        self.partners = Dictionary(uniqueKeysWithValues: partners.map { ($0.id, $0) })
        var index: [String: String] = [:]
        for partner in partners {
            for fingerprint in partner.fingerprints { index[fingerprint] = partner.id }
        }
        byFingerprint = index
    }

    public func partner(_ id: String) -> Partner? { partners[id] }

    /// The partner a certificate belongs to (exact certificate match, not just the name).
    public func partner(for certificate: Certificate) -> Partner? {
        byFingerprint[certificate.fingerprint].flatMap { partners[$0] }
    }

    /// Loads `file`; partners without a `certificates` list use `<certificateDirectory>/<id>/cert.pem`.
    public static func load(file: String, certificateDirectory: String) throws(KetenpostError) -> PartnerDirectory {
        let entries = try PartnerDirectoryFile.load(path: file)
        var partners: [Partner] = []
        for (index, entry) in entries.partners.enumerated() {
            let paths = entry.certificates ?? ["\(certificateDirectory)/\(entry.id)/cert.pem"]
            var certificates: [Certificate] = []
            for path in paths {
                do {
                    certificates += try Certificate.load(pemFile: path)
                } catch {
                    throw KetenpostError(.configInvalid, "\(file): partners[\(index)].certificates: \(path) cannot be read as PEM certificates.")
                }
            }
            for certificate in certificates where certificate.commonName != entry.id {
                throw KetenpostError(.configInvalid, "\(file): partners[\(index)].certificates: a certificate is for \(certificate.commonName ?? "no commonName"), not for \(entry.id).")
            }
            partners.append(Partner(id: entry.id, name: entry.name, role: entry.role, oin: entry.oin,
                                    state: entry.state ?? .active, certificates: certificates,
                                    fingerprints: Set(certificates.map(\.fingerprint))))
        }
        return PartnerDirectory(partners: partners)
    }
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
    public static let `default` = Policy(rules: MessageType.allCases.map {
        Rule(type: $0, from: $0.allowedSenderRoles.sorted { $0.rawValue < $1.rawValue },
             to: $0.allowedRecipientRoles.sorted { $0.rawValue < $1.rawValue })
    })

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
