import COpenSSL
import Foundation

/// OCSP (RFC 6960) for one certificate at a time: the request the relay sends to the
/// responder its certificate names, and the check of the answer (the responder's signature
/// and authority, the nonce, the status and its validity window).
public enum OCSP {
    /// The responder URLs in the certificate's authorityInfoAccess extension (http only).
    public static func responders(of certificate: Certificate) -> [String] {
        defer { OpenSSLErrorQueue.clear() }
        guard let list = X509_get1_ocsp(certificate.pointer) else { return [] }
        defer { X509_email_free(list) }
        return (0..<copenssl_sk_OPENSSL_STRING_num(list)).compactMap { index in
            copenssl_sk_OPENSSL_STRING_value(list, index).map { String(cString: $0) }
        }.filter { $0.hasPrefix("http://") || $0.hasPrefix("https://") }
    }

    /// A request for one certificate, with a nonce; keep it to check the answer.
    public final class Request: @unchecked Sendable {
        let request: OpaquePointer
        let id: OpaquePointer
        public let der: Data

        init(certificate: Certificate, issuer: Certificate) throws(CryptoError) {
            OpenSSLErrorQueue.clear()
            guard let request = OCSP_REQUEST_new() else { throw .fromQueue(.internalError, "Could not start an OCSP request.") }
            guard let forRequest = OCSP_cert_to_id(EVP_sha1(), certificate.pointer, issuer.pointer),
                let kept = OCSP_cert_to_id(EVP_sha1(), certificate.pointer, issuer.pointer)
            else {
                OCSP_REQUEST_free(request)
                throw .fromQueue(.internalError, "Could not name the certificate in an OCSP request.")
            }
            self.request = request
            self.id = kept
            guard OCSP_request_add0_id(request, forRequest) != nil, OCSP_request_add1_nonce(request, nil, -1) == 1 else {
                throw .fromQueue(.internalError, "Could not build an OCSP request.")
            }
            der = try DER.encode { i2d_OCSP_REQUEST(request, $0) }
        }

        deinit {
            OCSP_CERTID_free(id)
            OCSP_REQUEST_free(request)
        }
    }

    public static func request(for certificate: Certificate, issuer: Certificate) throws(CryptoError) -> Request {
        try Request(certificate: certificate, issuer: issuer)
    }

    public enum Status: Sendable, Equatable {
        case good
        case revoked
        /// The responder does not know the certificate.
        case unknown
    }

    public struct Answer: Sendable, Equatable {
        public let status: Status
        public let thisUpdate: Date
        public let nextUpdate: Date?
    }

    /// Checks a responder's answer to `request`: a successful response, signed by the CA or by
    /// a responder it authorised (OCSPSigning), chaining to `anchors`; the nonce, if echoed,
    /// matches; the status is within its validity window (five minutes of clock skew).
    public static func check(
        _ response: Data,
        for request: Request,
        issuer: Certificate,
        anchors: [Certificate],
        at time: Date = Date()
    ) throws(CryptoError) -> Answer {
        OpenSSLErrorQueue.clear()
        guard let parsed = DER.decode(response, with: { d2i_OCSP_RESPONSE(nil, $0, $1) }, free: { OCSP_RESPONSE_free($0) }) else {
            throw .fromQueue(.malformed, "The OCSP answer is not a DER OCSPResponse.")
        }
        defer { OCSP_RESPONSE_free(parsed) }
        guard OCSP_response_status(parsed) == copenssl_OCSP_RESPONSE_STATUS_SUCCESSFUL() else {
            throw CryptoError(.crlUnavailable, "The OCSP responder did not answer successfully.")
        }
        guard let basic = OCSP_response_get1_basic(parsed) else { throw .fromQueue(.malformed, "The OCSP answer has no basic response.") }
        defer { OCSP_BASICRESP_free(basic) }
        // The responder's certificate is checked against the anchors alone (no CRL flags: a
        // responder's own revocation is out of scope, as id-pkix-ocsp-nocheck responders say).
        let trust = try TrustStore(anchors: anchors)
        let certificates = copenssl_sk_X509_new_null()
        defer { if let certificates { copenssl_sk_X509_free(certificates) } }
        _ = copenssl_sk_X509_push(certificates, issuer.pointer)
        guard OCSP_basic_verify(basic, certificates, trust.store, 0) == 1 else {
            throw .fromQueue(.signatureInvalid, "The OCSP answer is not signed by the CA or a responder it authorised.")
        }
        // 1: nonce echoed and equal; -1: no nonce in the answer (allowed, the validity window
        // then bounds a replay); anything else is a replay or a mix-up.
        let nonce = OCSP_check_nonce(request.request, basic)
        guard nonce == 1 || nonce == -1 else { throw CryptoError(.signatureInvalid, "The OCSP answer's nonce does not match the request.") }
        var status: Int32 = -1
        var reason: Int32 = -1
        var revokedAt: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var thisUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var nextUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        guard OCSP_resp_find_status(basic, request.id, &status, &reason, &revokedAt, &thisUpdate, &nextUpdate) == 1 else {
            throw CryptoError(.malformed, "The OCSP answer does not name the certificate asked about.")
        }
        guard OCSP_check_validity(thisUpdate, nextUpdate, 300, -1) == 1 else {
            throw .fromQueue(.crlUnavailable, "The OCSP answer is outside its validity window (stale or from the future).")
        }
        let answerStatus: Status
        switch status {
        case copenssl_V_OCSP_CERTSTATUS_GOOD(): answerStatus = .good
        case copenssl_V_OCSP_CERTSTATUS_REVOKED(): answerStatus = .revoked
        default: answerStatus = .unknown
        }
        OpenSSLErrorQueue.clear()
        return Answer(
            status: answerStatus,
            thisUpdate: Certificate.date(UnsafePointer(thisUpdate)),
            nextUpdate: nextUpdate.map { Certificate.date(UnsafePointer($0)) }
        )
    }
}
