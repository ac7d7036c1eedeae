import Foundation
import KetenpostAPI
import KetenpostModel
import Yams

/// One partner of `config/partners.yaml`.
public struct PartnerEntry: Codable, Sendable, Equatable {
    /// Key types the development PKI can create.
    public enum KeyType: String, Codable, Sendable {
        case ecP256 = "ec-p256"
        case rsa2048 = "rsa-2048"
        case rsa3072 = "rsa-3072"
    }

    /// Stable partner id, e.g. `gemeente-maastricht`; the certificate's commonName.
    public var id: String
    /// The organisation's name, for people.
    public var name: String
    public var role: PartnerRole
    /// Organisation identification number (20 digits), in the certificate's subject serialNumber.
    public var oin: String
    /// Key type for the development PKI (default `ec-p256`).
    public var key: KeyType?
    /// `active` (default) or `suspended`: a suspended partner can neither send nor receive.
    public var state: PartnerState?
    /// PEM files with the partner's certificates; default `<directory.certificates>/<id>/cert.pem`
    /// of the relay configuration.
    public var certificates: [String]?

    public init(
        id: String,
        name: String,
        role: PartnerRole,
        oin: String,
        key: KeyType? = nil,
        state: PartnerState? = nil,
        certificates: [String]? = nil
    ) {
        self.id = id
        self.name = name
        self.role = role
        self.oin = oin
        self.key = key
        self.state = state
        self.certificates = certificates
    }
}

/// `config/partners.yaml`: the partner directory as administrators write it.
public struct PartnerDirectoryFile: Codable, Sendable, Equatable {
    public var partners: [PartnerEntry]

    public init(partners: [PartnerEntry]) { self.partners = partners }

    public static func load(path: String) throws(KetenpostError) -> PartnerDirectoryFile {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KetenpostError(.configInvalid, "\(path): cannot be read (\(error.localizedDescription)).")
        }
        return try parse(text, file: path)
    }

    /// Parses and checks the file; every error names the file, the key and what is wrong.
    public static func parse(_ text: String, file: String) throws(KetenpostError) -> PartnerDirectoryFile {
        let directory: PartnerDirectoryFile
        do {
            directory = try YAMLDecoder().decode(PartnerDirectoryFile.self, from: text)
        } catch let error as DecodingError {
            throw KetenpostError(.configInvalid, "\(file): \(ConfigErrors.describe(error))")
        } catch {
            throw KetenpostError(.configInvalid, "\(file): not valid YAML (\(error)).")
        }
        var seen = Set<String>()
        for (index, partner) in directory.partners.enumerated() {
            let key = "partners[\(index)]"
            guard PartnerID.isValid(partner.id) else {
                throw KetenpostError(
                    .configInvalid,
                    "\(file): \(key).id must be lowercase letters, digits and dashes (2 to 63 characters)."
                )
            }
            guard seen.insert(partner.id).inserted else {
                throw KetenpostError(.configInvalid, "\(file): \(key).id \(partner.id) appears twice.")
            }
            guard !partner.name.trimmingCharacters(in: .whitespaces).isEmpty, partner.name.count <= 200 else {
                throw KetenpostError(.configInvalid, "\(file): \(key).name must be 1 to 200 characters.")
            }
            guard Identifiers.isValidOIN(partner.oin) else {
                throw KetenpostError(
                    .configInvalid,
                    "\(file): \(key).oin must be exactly 20 digits (quote it, so YAML keeps the leading zeros)."
                )
            }
        }
        return directory
    }

    public func partner(_ id: String) -> PartnerEntry? { partners.first { $0.id == id } }
}

/// Turns a configuration decoding error into "key.path: what is wrong" for start-up errors.
public enum ConfigErrors {
    public static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
                .trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "\(parent.isEmpty ? "" : parent + ".")\(key.stringValue) is missing."
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let where_ = path(context.codingPath)
            return "\(where_.isEmpty ? "the document" : where_): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }
}
