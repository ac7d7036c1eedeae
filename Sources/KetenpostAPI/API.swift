import Foundation

/// The JSON bodies of the relay's HTTP API (docs/openapi.yaml), shared by server and client.
public enum API {
    /// `{"error": {"code": "...", "message": "..."}}`
    public struct ErrorBody: Codable, Sendable {
        public struct Detail: Codable, Sendable {
            public var code: String
            public var message: String
        }
        public var error: Detail
        public init(code: String, message: String) { error = Detail(code: code, message: message) }
    }

    /// Answer to a submission: 202 when stored now, 200 for a resubmission of the same bytes.
    public struct SubmitResponse: Codable, Sendable {
        public var id: UUID
        public var state: String
        public var acceptedAt: Date
        public var digest: String
        /// The relay's signed acceptance receipt, CMS DER in base64.
        public var receipt: String
        /// True when this id and these bytes had been accepted before.
        public var duplicate: Bool
        public init(id: UUID, state: String, acceptedAt: Date, digest: String, receipt: String, duplicate: Bool) {
            self.id = id
            self.state = state
            self.acceptedAt = acceptedAt
            self.digest = digest
            self.receipt = receipt
            self.duplicate = duplicate
        }
    }

    public struct InboxMessage: Codable, Sendable {
        public var id: UUID
        /// The sender, as the relay authenticated it (also inside the signed message).
        public var from: String
        /// The message type from the routing header.
        public var type: String
        /// Present this token when acknowledging.
        public var leaseToken: String
        public var leaseExpiresAt: Date
        /// 1 for the first delivery.
        public var attempt: Int
        /// The sealed message (outer SignedData DER) in base64.
        public var message: String
        public init(id: UUID, from: String, type: String, leaseToken: String, leaseExpiresAt: Date, attempt: Int, message: String) {
            self.id = id
            self.from = from
            self.type = type
            self.leaseToken = leaseToken
            self.leaseExpiresAt = leaseExpiresAt
            self.attempt = attempt
            self.message = message
        }
    }

    public struct InboxResponse: Codable, Sendable {
        public var messages: [InboxMessage]
        public init(messages: [InboxMessage]) { self.messages = messages }
    }

    public struct AcknowledgeResponse: Codable, Sendable {
        public var id: UUID
        public var state: String
        public init(id: UUID, state: String) {
            self.id = id
            self.state = state
        }
    }

    /// The sender's view of a message.
    public struct StatusResponse: Codable, Sendable {
        public var id: UUID
        public var type: String
        public var from: String
        public var to: String
        public var state: String
        public var digest: String
        public var acceptedAt: Date
        public var expiresAt: Date
        public var attempts: Int
        public var firstDeliveredAt: Date?
        public var lastDeliveredAt: Date?
        public var completedAt: Date?
        public var reasonCode: String?
        /// The relay's acceptance receipt (CMS DER, base64).
        public var acceptanceReceipt: String
        /// The recipient's signed receipt (CMS DER, base64), once there is one.
        public var recipientReceipt: String?
        public init(
            id: UUID,
            type: String,
            from: String,
            to: String,
            state: String,
            digest: String,
            acceptedAt: Date,
            expiresAt: Date,
            attempts: Int,
            firstDeliveredAt: Date?,
            lastDeliveredAt: Date?,
            completedAt: Date?,
            reasonCode: String?,
            acceptanceReceipt: String,
            recipientReceipt: String?
        ) {
            self.id = id
            self.type = type
            self.from = from
            self.to = to
            self.state = state
            self.digest = digest
            self.acceptedAt = acceptedAt
            self.expiresAt = expiresAt
            self.attempts = attempts
            self.firstDeliveredAt = firstDeliveredAt
            self.lastDeliveredAt = lastDeliveredAt
            self.completedAt = completedAt
            self.reasonCode = reasonCode
            self.acceptanceReceipt = acceptanceReceipt
            self.recipientReceipt = recipientReceipt
        }
    }

    /// A partner as the directory shows it to other partners: what is needed to seal for it.
    public struct DirectoryEntry: Codable, Sendable {
        public var id: String
        public var name: String
        public var role: String
        public var oin: String
        public var state: String
        /// Every currently valid certificate, PEM. Seal to all of them.
        public var certificates: [String]
        /// The intermediate CA certificates (PEM) between those certificates and the trust
        /// anchors: to build their chains with, never to trust or to seal to. Absent from relays
        /// before chains were kept.
        public var chain: [String]?
        /// SHA-256 fingerprints (hex) of the partner's registered signing certificates that are
        /// not revoked: a recipient accepts a message from this partner only if one of these
        /// signed it. Absent from relays before issue 20.
        public var signers: [String]?
        public init(
            id: String,
            name: String,
            role: String,
            oin: String,
            state: String,
            certificates: [String],
            chain: [String]? = nil,
            signers: [String]? = nil
        ) {
            self.id = id
            self.name = name
            self.role = role
            self.oin = oin
            self.state = state
            self.certificates = certificates
            self.chain = chain
            self.signers = signers
        }
    }

    /// Every partner, without certificates: what a desk needs to offer recipients.
    public struct DirectoryList: Codable, Sendable {
        public struct Partner: Codable, Sendable, Equatable {
            public var id: String
            public var name: String
            public var role: String
            public var state: String
            public init(id: String, name: String, role: String, state: String) {
                self.id = id
                self.name = name
                self.role = role
                self.state = state
            }
        }
        public var partners: [Partner]
        public init(partners: [Partner]) { self.partners = partners }
    }

    public struct HealthResponse: Codable, Sendable {
        public var status: String
        public init(status: String) { self.status = status }
    }

    /// The content types the relay takes for sealed messages and receipts.
    public static let cmsContentTypes: Set<String> = ["application/cms", "application/pkcs7-mime", "application/octet-stream"]
}
