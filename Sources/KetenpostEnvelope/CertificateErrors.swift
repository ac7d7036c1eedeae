import KetenpostAPI
import KetenpostCrypto

extension KetenpostError {
    /// Maps a chain verification failure to the partner-facing certificate codes.
    public static func certificate(_ error: CryptoError, role: String) -> KetenpostError {
        let code: Code
        switch error.code {
        case .certificateExpired: code = .certificateExpired
        case .certificateNotYetValid: code = .certificateNotYetValid
        case .certificateRevoked: code = .certificateRevoked
        case .certificateUntrusted: code = .certificateUntrusted
        case .certificatePurpose: code = .certificatePurpose
        case .crlUnavailable: code = .certificateCRLUnavailable
        default: code = .certificateInvalid
        }
        // The usual cause with a CA hierarchy: a signature or handshake without the intermediates.
        let hint =
            code == .certificateUntrusted
            ? " If it comes from an intermediate CA, send that CA's certificate along (openssl: -certfile chain.pem)." : ""
        return KetenpostError(code, "The \(role) certificate was refused: \(error.message)\(hint)", detail: error.detail)
    }
}
