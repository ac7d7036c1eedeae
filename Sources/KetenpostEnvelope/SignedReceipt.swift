import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostModel

/// Receipts travel as CMS SignedData over the receipt's JSON, so that anyone can check them
/// with `openssl cms -verify` and nothing of ours.
public enum SignedReceipt {
    public static let maximumSize = 64 << 10

    public static func sign(_ receipt: Receipt, as issuer: Identity) throws(KetenpostError) -> Data {
        do {
            try receipt.validate()
        } catch {
            throw KetenpostError(.receiptInvalid, "The receipt does not follow its schema: \(error)")
        }
        guard receipt.issuer == issuer.partnerID else {
            throw KetenpostError(
                .receiptSignerMismatch,
                "The receipt names \(receipt.issuer) as issuer, but the signing identity is \(issuer.partnerID)."
            )
        }
        do {
            return try CMS.sign(receipt.encoded(), signer: issuer.certificate, key: issuer.key, extraCertificates: issuer.chain)
        } catch {
            throw .internal(error)
        }
    }

    public struct Verified: Sendable {
        public let receipt: Receipt
        public let signer: Certificate
    }

    /// Who may sign a receipt. A partner's certificate is for S/MIME signing; the relay's is a
    /// TLS server certificate without that purpose, so neither can stand in for the other: the
    /// relay cannot sign a message or a recipient's receipt, and a partner cannot sign an
    /// acceptance receipt.
    public enum Signer: Sendable {
        /// A partner (a recipient's acknowledgement): the S/MIME signing purpose.
        case partner
        /// The relay with this id (acceptance receipts): the TLS server purpose and its commonName.
        case relay(String)
    }

    /// Checks the signature, the signer's chain, the schema, and that the signer is the receipt's issuer.
    public static func verify(
        _ der: Data,
        trust: TrustStore,
        intermediates: [Certificate] = [],
        at time: Date? = nil,
        signer expected: Signer = .partner
    ) throws(KetenpostError) -> Verified {
        guard !der.isEmpty, der.count <= maximumSize else {
            throw KetenpostError(.receiptMalformed, "A receipt is a CMS SignedData of at most \(maximumSize) bytes.")
        }
        let signed: CMS.Signed
        do {
            signed = try CMS.verifySignature(der)
        } catch  where error.code == .signatureInvalid {
            throw KetenpostError(.receiptSignatureInvalid, "The receipt's signature does not match its content.", detail: error.detail)
        } catch {
            throw KetenpostError(.receiptMalformed, "The receipt is not an attached CMS SignedData with one signer.", detail: error.detail)
        }
        do {
            let purpose: TrustStore.Purpose
            switch expected {
            case .partner: purpose = .contentSigning
            case .relay: purpose = .tlsServer
            }
            try trust.verify(signed.signer, chain: signed.intermediates + intermediates, for: purpose, at: time)
        } catch {
            throw .certificate(error, role: "receipt signer's")
        }
        let receipt: Receipt
        do {
            receipt = try Receipt.decode(from: signed.content)
        } catch {
            throw KetenpostError(.receiptInvalid, "The receipt does not follow its schema: \(error)")
        }
        guard signed.signer.commonName == receipt.issuer else {
            throw KetenpostError(.receiptSignerMismatch, "The receipt is signed by another party than the issuer it names.")
        }
        if case .relay(let relayID) = expected, receipt.issuer != relayID {
            throw KetenpostError(.receiptSignerMismatch, "The receipt is not signed by the relay (\(relayID)).")
        }
        return Verified(receipt: receipt, signer: signed.signer)
    }
}
