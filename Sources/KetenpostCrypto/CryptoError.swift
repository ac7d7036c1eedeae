import COpenSSL
import Foundation

/// An error from the OpenSSL layer.
///
/// A struct with a stable code (not a public enum) so that new cases do not break callers.
/// The detail holds OpenSSL's own error strings: they describe what failed, never the
/// content that was being processed, so they are safe to log.
public struct CryptoError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// Input that is not a well-formed structure of the expected kind (DER, PEM, CMS).
        public static let malformed = Code(rawValue: "malformed")
        /// A CMS signature or message digest does not match the content.
        public static let signatureInvalid = Code(rawValue: "signature-invalid")
        /// The CMS structure has a different shape than expected (type, signer count).
        public static let unexpectedStructure = Code(rawValue: "unexpected-structure")
        /// None of the recipient entries is for the given certificate.
        public static let notARecipient = Code(rawValue: "not-a-recipient")
        /// Decryption failed: wrong key, or the ciphertext or its tag was changed.
        public static let decryptionFailed = Code(rawValue: "decryption-failed")
        public static let certificateExpired = Code(rawValue: "certificate-expired")
        public static let certificateNotYetValid = Code(rawValue: "certificate-not-yet-valid")
        public static let certificateRevoked = Code(rawValue: "certificate-revoked")
        public static let certificateUntrusted = Code(rawValue: "certificate-untrusted")
        public static let certificatePurpose = Code(rawValue: "certificate-purpose")
        /// Revocation could not be checked: the CRL is missing, expired or not yet valid.
        public static let crlUnavailable = Code(rawValue: "crl-unavailable")
        public static let certificateInvalid = Code(rawValue: "certificate-invalid")
        /// A key does not fit its certificate, or a key type is not supported.
        public static let keyMismatch = Code(rawValue: "key-mismatch")
        /// OpenSSL failed in a way the caller cannot fix (allocation, internal error).
        public static let internalError = Code(rawValue: "internal")
    }

    public let code: Code
    public let message: String
    /// OpenSSL's error queue at the time of failure, newest last.
    public let detail: [String]

    public init(_ code: Code, _ message: String, detail: [String] = []) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    /// Equality considers the code only, as swift-certificates' `CertificateError` does.
    public static func == (lhs: CryptoError, rhs: CryptoError) -> Bool { lhs.code == rhs.code }

    public var description: String {
        detail.isEmpty ? "\(code): \(message)" : "\(code): \(message) [\(detail.joined(separator: " | "))]"
    }

    /// Builds an error from OpenSSL's per-thread error queue, and empties it.
    ///
    /// Callers must not suspend between the failing call and this one: the queue is per thread.
    static func fromQueue(_ code: Code, _ message: String) -> CryptoError {
        CryptoError(code, message, detail: OpenSSLErrorQueue.drain())
    }
}

enum OpenSSLErrorQueue {
    /// Reads and clears the queue. `ERR_get_error_all` keeps the detail text (for example
    /// "Verify error: unable to get local issuer certificate") that `ERR_error_string_n` drops.
    static func drain() -> [String] { drainWithReasons().texts }

    /// Starts an operation with an empty queue, so that old errors are not blamed on it.
    static func clear() { ERR_clear_error() }

    /// Drains the queue and also returns the reason codes, for callers that classify failures.
    static func drainWithReasons() -> (texts: [String], reasons: [Int32]) {
        var reasons: [Int32] = []
        var texts: [String] = []
        while true {
            var data: UnsafePointer<CChar>?
            var flags: Int32 = 0
            let code = ERR_get_error_all(nil, nil, nil, &data, &flags)
            if code == 0 { break }
            reasons.append(ERR_GET_REASON(code))
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            var text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            if flags & ERR_TXT_STRING != 0, let data, data.pointee != 0 {
                text += " (\(String(cString: data)))"
            }
            texts.append(text)
        }
        return (texts, reasons)
    }
}

/// Facts about the linked OpenSSL, for reports.
public enum OpenSSLInfo {
    public static var version: String { String(cString: OpenSSL_version(OPENSSL_VERSION)) }
}
