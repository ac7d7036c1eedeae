import Foundation
import KetenpostModel

/// Every failure that a partner or administrator can see: a stable code and a sentence
/// that says what to do. Neither ever holds message content or personal data.
public struct KetenpostError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(stringLiteral value: String) { rawValue = value }
        public var description: String { rawValue }
    }

    public let code: Code
    public let message: String
    /// Technical detail for operators (OpenSSL's error strings, validation paths). Metadata only.
    public let detail: [String]

    public init(_ code: Code, _ message: String, detail: [String] = []) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    /// Only the code takes part in equality: messages may be reworded, codes never.
    public static func == (lhs: KetenpostError, rhs: KetenpostError) -> Bool { lhs.code == rhs.code }

    public var description: String {
        detail.isEmpty ? "\(code): \(message)" : "\(code): \(message) (\(detail.joined(separator: "; ")))"
    }
}

/// The stable error codes. Documented in docs/FORMAT.md; never renamed.
extension KetenpostError.Code {
    public static let inputEmpty: Self = "input.empty"
    public static let inputTooLarge: Self = "input.too-large"
    public static let envelopeMalformed: Self = "envelope.malformed"
    public static let outerSignatureInvalid: Self = "envelope.outer-signature-invalid"
    public static let outerContentInvalid: Self = "envelope.outer-content-invalid"
    public static let notARecipient: Self = "envelope.not-recipient"
    public static let decryptionFailed: Self = "envelope.decryption-failed"
    public static let innerMalformed: Self = "envelope.inner-malformed"
    public static let innerSignatureInvalid: Self = "envelope.inner-signature-invalid"
    public static let headerInvalid: Self = "header.invalid"
    public static let headerMismatch: Self = "header.mismatch"
    public static let payloadInvalid: Self = "payload.invalid"
    public static let signerNotSender: Self = "signer.not-sender"
    public static let signerMismatch: Self = "signer.mismatch"
    public static let recipientMismatch: Self = "recipient.mismatch"
    public static let recipientCertificateMismatch: Self = "recipient.certificate-mismatch"
    public static let certificateUntrusted: Self = "certificate.untrusted"
    public static let certificateExpired: Self = "certificate.expired"
    public static let certificateNotYetValid: Self = "certificate.not-yet-valid"
    public static let certificateRevoked: Self = "certificate.revoked"
    public static let certificatePurpose: Self = "certificate.purpose"
    public static let certificateCRLUnavailable: Self = "certificate.crl-unavailable"
    public static let certificateInvalid: Self = "certificate.invalid"
    public static let identityInvalid: Self = "identity.invalid"
    public static let receiptMalformed: Self = "receipt.malformed"
    public static let receiptSignatureInvalid: Self = "receipt.signature-invalid"
    public static let receiptInvalid: Self = "receipt.invalid"
    public static let receiptSignerMismatch: Self = "receipt.signer-mismatch"
    public static let configInvalid: Self = "config.invalid"
    public static let internalError: Self = "internal"
}

/// Codes of the relay's HTTP API (docs/openapi.yaml).
extension KetenpostError.Code {
    public static let unknownPartner: Self = "auth.unknown-partner"
    public static let partnerSuspended: Self = "auth.partner-suspended"
    public static let senderMismatch: Self = "auth.sender-mismatch"
    public static let signerUnregistered: Self = "auth.signer-unregistered"
    public static let recipientUnknown: Self = "recipient.unknown"
    public static let recipientSuspended: Self = "recipient.suspended"
    public static let policyForbidden: Self = "policy.forbidden"
    public static let correlationMismatch: Self = "policy.correlation-mismatch"
    public static let messageExpired: Self = "message.expired"
    public static let createdInFuture: Self = "header.created-in-future"
    public static let messageConflict: Self = "message.conflict"
    public static let messageNotFound: Self = "message.not-found"
    public static let messageFinal: Self = "message.final"
    public static let leaseInvalid: Self = "lease.invalid"
    public static let leaseExpired: Self = "lease.expired"
    public static let receiptMismatch: Self = "receipt.mismatch"
    public static let requestTooLarge: Self = "request.too-large"
    public static let requestUnsupportedMediaType: Self = "request.unsupported-media-type"
    public static let requestInvalid: Self = "request.invalid"
    public static let rateLimited: Self = "rate.limited"
    /// A sender's messages waiting for delivery fill its storage quota (`limits.maxPendingBytesPerSender`).
    public static let quotaExceeded: Self = "quota.exceeded"
    public static let storeUnavailable: Self = "store.unavailable"
    /// A registered certificate that is pending, retired or expired in the directory.
    public static let certificateInactive: Self = "auth.certificate-inactive"
    public static let notAdministrator: Self = "auth.not-administrator"
    public static let partnerExists: Self = "admin.partner-exists"
    public static let partnerNotFound: Self = "admin.partner-not-found"
    public static let certificateExists: Self = "admin.certificate-exists"
    public static let certificateNotFound: Self = "admin.certificate-not-found"
    /// Client side: the TLS handshake with the relay failed (no HTTP answer at all).
    public static let tlsHandshakeFailed: Self = "tls.handshake-failed"
}

extension KetenpostError {
    /// Whether the failure lies in the message itself, so that it will never open, whoever
    /// tries and whenever: only such failures earn a signed rejection receipt (which is final).
    /// Certificate, revocation and "not encrypted for this key" failures can be local or
    /// passing (a stale CRL, a rotation in progress); those messages are left for redelivery.
    public var isContentBound: Bool {
        [
            Code.envelopeMalformed, .outerSignatureInvalid, .outerContentInvalid, .decryptionFailed, .innerMalformed,
            .innerSignatureInvalid, .headerInvalid, .headerMismatch, .payloadInvalid, .signerNotSender, .signerMismatch,
            .recipientMismatch, .messageExpired,
        ].contains(code)
    }

    /// Maps validation issues (paths and rules, never values) to `header.invalid` or `payload.invalid`.
    public static func validation(_ failure: ValidationFailure, layer: String) -> KetenpostError {
        let headerOnly = failure.issues.allSatisfy { $0.path.hasPrefix("header") || $0.path.hasPrefix("outer.header") }
        let code: Code = headerOnly ? .headerInvalid : .payloadInvalid
        let what = headerOnly ? "routing header" : "message"
        return KetenpostError(
            code,
            "The \(what) in the \(layer) does not follow its schema: \(failure.issues.map(\.description).joined(separator: "; "))",
            detail: failure.issues.map(\.description)
        )
    }

    public static func `internal`(_ error: any Error) -> KetenpostError {
        KetenpostError(
            .internalError,
            "An internal cryptographic operation failed; please report this to the relay administrators.",
            detail: [String(describing: error)]
        )
    }
}
