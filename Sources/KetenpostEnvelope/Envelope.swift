import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostModel

/// The Ketenpost envelope: CMS "triple wrap" (RFC 5652), as docs/FORMAT.md describes.
///
/// ```
/// outer SignedData (sender)            eContent = {"envelope": base64(AuthEnvelopedData), "format": "ketenpost/envelope/v1", "header":
/// {…}}
///   AuthEnvelopedData (AES-256-GCM)     one RecipientInfo per recipient certificate
///     inner SignedData (sender)         eContent = {"header": {…}, "payload": {…}}
/// ```
/// The relay reads and authenticates the outer layer only; the recipient opens all three.
public enum Envelope {
    public static let format = "ketenpost/envelope/v1"
    /// Upper bound for a sealed message; the relay may set a lower one.
    public static let maximumSize = 8 << 20

    /// The outer layer's signed JSON document.
    struct OuterContent: Codable, Equatable {
        var envelope: String
        var format: String
        var header: RoutingHeader

        init(envelope: String, format: String, header: RoutingHeader) {
            self.envelope = envelope
            self.format = format
            self.header = header
        }

        /// Strict in one pass: exactly the three keys, only header fields, no nulls.
        /// (`KetenpostJSON.decodeStrict` would parse the large base64 string three times, and
        /// this runs for every submission on the relay.)
        init(from decoder: any Decoder) throws {
            let all = try decoder.container(keyedBy: AnyKey.self)
            for key in all.allKeys where !["envelope", "format", "header"].contains(key.stringValue) {
                throw ValidationFailure(path: "outer.<key>", rule: "unknown-field", message: "is not a field of the outer document")
            }
            let header = try all.nestedContainer(keyedBy: AnyKey.self, forKey: AnyKey("header"))
            for key in header.allKeys {
                guard RoutingHeader.fieldNames.contains(key.stringValue) else {
                    throw ValidationFailure(
                        path: "outer.header.<key>",
                        rule: "unknown-field",
                        message: "is not a field of the routing header"
                    )
                }
                if try header.decodeNil(forKey: key) {
                    throw ValidationFailure(
                        path: "outer.header.\(key.stringValue)",
                        rule: "null",
                        message: "must not be null; leave the field out instead"
                    )
                }
            }
            let container = try decoder.container(keyedBy: CodingKeys.self)
            envelope = try container.decode(String.self, forKey: .envelope)
            format = try container.decode(String.self, forKey: .format)
            self.header = try container.decode(RoutingHeader.self, forKey: .header)
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ string: String) { stringValue = string }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    // MARK: Sealing

    /// Seals `content` from `sender` for the recipient certificates (one entry per certificate,
    /// for instance both the old and the new one during a rotation).
    ///
    /// Every recipient certificate must chain to `trust`, be valid and unrevoked, and be meant
    /// for receiving encrypted content: the certificates usually come from the relay's
    /// directory, and a relay must not be able to slip in a key of its own. `intermediates` are
    /// the CA certificates between them and the trust anchors (the directory serves them); they
    /// help build the path and are never trusted themselves.
    public static func seal(
        _ content: SealedContent,
        from sender: Identity,
        to recipients: [Certificate],
        intermediates: [Certificate] = [],
        trust: TrustStore
    ) throws(KetenpostError) -> Data {
        do {
            try content.header.validate()
            try content.payload.validate()
        } catch {
            throw .validation(error, layer: "message to seal")
        }
        guard content.payload.type == content.header.type else {
            throw KetenpostError(
                .payloadInvalid,
                "The payload's schema is for \(content.payload.type.rawValue) but the header's type is \(content.header.type.rawValue)."
            )
        }
        guard content.header.from == sender.partnerID else {
            throw KetenpostError(
                .signerNotSender,
                "The header names \(content.header.from) as sender, but the identity's certificate is for \(sender.partnerID)."
            )
        }
        guard !recipients.isEmpty else {
            throw KetenpostError(
                .recipientCertificateMismatch,
                "No recipient certificate was given; fetch the recipient's certificates from the directory."
            )
        }
        for certificate in recipients {
            guard certificate.commonName == content.header.to else {
                throw KetenpostError(
                    .recipientCertificateMismatch,
                    """
                    A recipient certificate is for \(certificate.commonName ?? "an unnamed subject"), not for \(content.header.to); \
                    the message would be unreadable for its recipient.
                    """
                )
            }
            do {
                try trust.verify(certificate, chain: intermediates, for: .contentEncryption)
            } catch {
                throw .certificate(error, role: "recipient's encryption")
            }
        }
        do {
            let inner = try CMS.sign(content.encoded(), signer: sender.certificate, key: sender.key, extraCertificates: sender.chain)
            let encrypted = try CMS.encrypt(inner, for: recipients)
            let outer = OuterContent(envelope: encrypted.base64EncodedString(), format: format, header: content.header)
            let outerJSON = try KetenpostJSON.encoder().encode(outer)
            return try CMS.sign(outerJSON, signer: sender.certificate, key: sender.key, extraCertificates: sender.chain)
        } catch {
            throw .internal(error)
        }
    }

    // MARK: The relay's view: outer layer only

    /// What the outer layer proves, without decrypting anything.
    public struct Outer: Sendable {
        public let header: RoutingHeader
        /// The sender's certificate, whose chain was verified.
        public let signer: Certificate
        /// The encrypted middle layer (DER).
        public let encrypted: Data
        /// Lowercase hex SHA-256 of the sealed message as received: what receipts name.
        public let digest: String
    }

    /// Checks the outer signature, the sender's certificate chain, the header's schema and
    /// that the signer is the header's `from`. This is all the relay can and needs to see.
    /// `intermediates` add to those the message carries (a relay knows its partners'), for
    /// senders whose tools do not embed their chain; none is ever trusted.
    public static func readOuter(
        _ message: Data,
        trust: TrustStore,
        intermediates: [Certificate] = [],
        at time: Date? = nil
    ) throws(KetenpostError) -> Outer {
        guard !message.isEmpty else {
            throw KetenpostError(.inputEmpty, "The message is empty; send the DER bytes of the outer SignedData.")
        }
        guard message.count <= maximumSize else {
            throw KetenpostError(.inputTooLarge, "The message is larger than \(maximumSize) bytes.")
        }
        let signed: CMS.Signed
        do {
            signed = try CMS.verifySignature(message)
        } catch  where error.code == .signatureInvalid {
            throw KetenpostError(
                .outerSignatureInvalid,
                "The outer signature does not match the message: it was changed after signing, or damaged in transit.",
                detail: error.detail
            )
        } catch {
            throw KetenpostError(
                .envelopeMalformed,
                "The message is not a Ketenpost envelope (an attached CMS SignedData in DER with one signer and its certificate).",
                detail: error.detail
            )
        }
        do {
            try trust.verify(signed.signer, chain: signed.intermediates + intermediates, for: .contentSigning, at: time)
        } catch {
            throw .certificate(error, role: "sender's signing")
        }
        let outer = try decodeOuterContent(signed.content)
        guard outer.format == format else {
            throw KetenpostError(.outerContentInvalid, "The outer layer's format is not \(format).")
        }
        do {
            try outer.header.validate()
        } catch {
            throw .validation(error, layer: "outer layer")
        }
        guard let encrypted = Data(base64Encoded: outer.envelope), !encrypted.isEmpty else {
            throw KetenpostError(.outerContentInvalid, "The outer layer's \"envelope\" is not base64 of the encrypted layer.")
        }
        guard signed.signer.commonName == outer.header.from else {
            throw KetenpostError(.signerNotSender, "The message is signed by a certificate of another partner than its header's \"from\".")
        }
        return Outer(header: outer.header, signer: signed.signer, encrypted: encrypted, digest: Digest.sha256(message).hexString)
    }

    static func decodeOuterContent(_ content: Data) throws(KetenpostError) -> OuterContent {
        func invalid(_ issues: [ValidationIssue]) -> KetenpostError {
            if !issues.isEmpty, issues.allSatisfy({ $0.path.hasPrefix("outer.header.") }) {
                return .validation(ValidationFailure(issues), layer: "outer layer")
            }
            return KetenpostError(
                .outerContentInvalid,
                """
                The outer layer's signed content is not the JSON document of docs/FORMAT.md: \
                \(issues.map(\.description).joined(separator: "; "))
                """
            )
        }
        if let duplicate = KetenpostJSON.duplicateKeyPath(in: content, path: "outer") {
            throw invalid([ValidationIssue(path: duplicate, rule: "duplicate-key", message: "occurs more than once in its object")])
        }
        do {
            return try KetenpostJSON.decoder().decode(OuterContent.self, from: content)
        } catch let failure as ValidationFailure {
            throw invalid(failure.issues)
        } catch let error as DecodingError {
            throw invalid([KetenpostJSON.issue(for: error, prefix: "outer")])
        } catch {
            throw invalid([ValidationIssue(path: "outer", rule: "json", message: "is not valid JSON")])
        }
    }

    // MARK: The recipient's view: all three layers

    public struct Opened: Sendable {
        public let content: SealedContent
        public let sender: Certificate
        public let digest: String
        public var header: RoutingHeader { content.header }
        public var payload: Payload { content.payload }
    }

    /// What the directory registered for a sender: a signer that chains to the anchors and
    /// carries the sender's id as commonName is not enough, because under a national CA the
    /// subscriber chooses the commonName. The OIN is checked by the CA; the fingerprints are the
    /// certificates the relay's administrators registered.
    public struct SenderBinding: Sendable, Equatable {
        public var partner: String
        /// The partner's OIN: the signer's subject serialNumber must be this.
        public var oin: String?
        /// SHA-256 fingerprints of the partner's registered signing certificates; nil: not known.
        public var fingerprints: Set<String>?

        public init(partner: String, oin: String?, fingerprints: Set<String>?) {
            self.partner = partner
            self.oin = oin
            self.fingerprints = fingerprints
        }

        /// Refuses a signer that is not what was registered for `partner`.
        public func check(_ signer: Certificate, from: String) throws(KetenpostError) {
            guard from == partner else {
                throw KetenpostError(.signerNotSender, "The message names \(from) as sender, but \(partner) was expected.")
            }
            if let oin, signer.subjectSerialNumber != oin {
                throw KetenpostError(
                    .signerNotSender,
                    """
                    The message is signed by a certificate without \(partner)'s OIN (\(oin)): another organisation's certificate \
                    carrying its name. Do not act on it; tell the relay administrators.
                    """
                )
            }
            if let fingerprints, !fingerprints.contains(signer.fingerprint) {
                throw KetenpostError(
                    .signerUnregistered,
                    """
                    The message is signed by a certificate that is not registered for \(partner) in the directory. Do not act on \
                    it; tell the relay administrators.
                    """
                )
            }
        }
    }

    /// Opens and checks every layer; see docs/FORMAT.md for the order of checks.
    /// - Parameters:
    ///   - allowExpired: open a message past its `expiresAt` (for looking at old messages, never
    ///     for acting on them: a relay must not deliver those).
    ///   - sender: what the directory registered for the expected sender; checked before
    ///     anything is decrypted.
    public static func open(
        _ message: Data,
        as recipient: Identity,
        trust: TrustStore,
        intermediates: [Certificate] = [],
        at time: Date? = nil,
        allowExpired: Bool = false,
        sender: SenderBinding? = nil
    ) throws(KetenpostError) -> Opened {
        let outer = try readOuter(message, trust: trust, intermediates: intermediates, at: time)
        try sender?.check(outer.signer, from: outer.header.from)
        guard outer.header.to == recipient.partnerID else {
            throw KetenpostError(
                .recipientMismatch,
                "The message is addressed to \(outer.header.to), not to \(recipient.partnerID); the relay may have misrouted it."
            )
        }
        let innerDER: Data
        do {
            innerDER = try CMS.decrypt(outer.encrypted, certificate: recipient.certificate, key: recipient.key)
        } catch  where error.code == .notARecipient {
            throw KetenpostError(
                .notARecipient,
                "The message is not encrypted for this identity's certificate; the sender may have used an old or wrong certificate."
            )
        } catch  where error.code == .decryptionFailed {
            throw KetenpostError(
                .decryptionFailed,
                "The encrypted layer could not be decrypted: the key does not fit or the ciphertext was changed.",
                detail: error.detail
            )
        } catch {
            throw KetenpostError(.envelopeMalformed, "The encrypted layer is not a CMS AuthEnvelopedData.", detail: error.detail)
        }
        let inner: CMS.Signed
        do {
            inner = try CMS.verifySignature(innerDER)
        } catch  where error.code == .signatureInvalid {
            throw KetenpostError(
                .innerSignatureInvalid,
                "The inner signature does not match the content: it was changed after signing.",
                detail: error.detail
            )
        } catch {
            throw KetenpostError(
                .innerMalformed,
                "The decrypted layer is not an attached CMS SignedData with one signer.",
                detail: error.detail
            )
        }
        guard inner.signer == outer.signer else {
            throw KetenpostError(.signerMismatch, "The inner and outer layers are signed by different certificates.")
        }
        let content: SealedContent
        do {
            content = try SealedContent.decode(from: inner.content)
        } catch {
            throw .validation(error, layer: "inner layer")
        }
        guard content.header == outer.header else {
            throw KetenpostError(
                .headerMismatch,
                "The routing header inside the encrypted layer differs from the outer one: it was changed on the way."
            )
        }
        // Five minutes of clock skew between sender, relay and recipient are tolerated.
        if !allowExpired, content.header.expiresAt.addingTimeInterval(300) < (time ?? Date()) {
            throw KetenpostError(
                .messageExpired,
                "The message expired at its expiresAt; a relay should not have delivered it. Do not act on it."
            )
        }
        return Opened(content: content, sender: outer.signer, digest: outer.digest)
    }
}
