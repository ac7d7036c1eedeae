import Foundation

/// The JSON bodies of the administration API (`/v1/admin/...`, administrator certificates only).
extension API {
    /// A certificate as administrators see it.
    public struct AdminCertificate: Codable, Sendable, Equatable {
        public var fingerprint: String
        public var serial: String
        /// `signing`, `encryption`, `tls-client`.
        public var uses: [String]
        /// `pending`, `active`, `retiring`, `retired`, `expired` or `revoked`, at the time of the answer.
        public var state: String
        public var notBefore: Date
        public var notAfter: Date
        public var activatesAt: Date
        public var retiresAt: Date?
        public var revokedAt: Date?
        public var revocationReason: String?
        /// Whole days until notAfter (negative once expired).
        public var daysLeft: Int
        public init(
            fingerprint: String,
            serial: String,
            uses: [String],
            state: String,
            notBefore: Date,
            notAfter: Date,
            activatesAt: Date,
            retiresAt: Date?,
            revokedAt: Date?,
            revocationReason: String?,
            daysLeft: Int
        ) {
            self.fingerprint = fingerprint
            self.serial = serial
            self.uses = uses
            self.state = state
            self.notBefore = notBefore
            self.notAfter = notAfter
            self.activatesAt = activatesAt
            self.retiresAt = retiresAt
            self.revokedAt = revokedAt
            self.revocationReason = revocationReason
            self.daysLeft = daysLeft
        }
    }

    public struct AdminPartner: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        public var role: String
        public var oin: String
        public var state: String
        public var certificates: [AdminCertificate]
        public init(id: String, name: String, role: String, oin: String, state: String, certificates: [AdminCertificate]) {
            self.id = id
            self.name = name
            self.role = role
            self.oin = oin
            self.state = state
            self.certificates = certificates
        }
    }

    public struct AdminPartnerList: Codable, Sendable {
        public var version: Int64
        public var partners: [AdminPartner]
        public init(version: Int64, partners: [AdminPartner]) {
            self.version = version
            self.partners = partners
        }
    }

    /// A certificate to register: PEM, what it is for, and from when (default: now).
    public struct AdminCertificateInput: Codable, Sendable {
        public var pem: String
        /// Default: all three (`signing`, `encryption`, `tls-client`).
        public var uses: [String]?
        public var activatesAt: Date?
        public init(pem: String, uses: [String]? = nil, activatesAt: Date? = nil) {
            self.pem = pem
            self.uses = uses
            self.activatesAt = activatesAt
        }
    }

    /// `POST /v1/admin/partners`
    public struct AdminNewPartner: Codable, Sendable {
        public var id: String
        public var name: String
        public var role: String
        public var oin: String
        public var certificates: [AdminCertificateInput]
        public init(id: String, name: String, role: String, oin: String, certificates: [AdminCertificateInput]) {
            self.id = id
            self.name = name
            self.role = role
            self.oin = oin
            self.certificates = certificates
        }
    }

    /// `POST /v1/admin/partners/{id}/rotate`: the new certificate is active at once; the partner's
    /// active certificates with a use in common keep working for `overlapSeconds`, then retire.
    public struct AdminRotation: Codable, Sendable {
        public var certificate: AdminCertificateInput
        public var overlapSeconds: Double
        public init(certificate: AdminCertificateInput, overlapSeconds: Double) {
            self.certificate = certificate
            self.overlapSeconds = overlapSeconds
        }
    }

    /// `POST /v1/admin/certificates/{fingerprint}/revoke`
    public struct AdminRevocation: Codable, Sendable {
        /// A short code such as `key-compromise`, `superseded`, `cessation-of-operation`.
        public var reason: String
        public init(reason: String) { self.reason = reason }
    }

    public struct AdminExpiring: Codable, Sendable {
        public struct Item: Codable, Sendable, Equatable {
            public var partner: String
            public var certificate: AdminCertificate
            public init(partner: String, certificate: AdminCertificate) {
                self.partner = partner
                self.certificate = certificate
            }
        }
        public var withinDays: Int
        public var certificates: [Item]
        public init(withinDays: Int, certificates: [Item]) {
            self.withinDays = withinDays
            self.certificates = certificates
        }
    }

    /// The relay's CRL per CA: where it came from, how current it is, and the last fetch error.
    public struct AdminRevocationList: Codable, Sendable, Equatable {
        /// The CA's commonName (or subject).
        public var ca: String
        /// The CA's subject, RFC 2253.
        public var issuer: String
        /// An http(s) URL (fetched) or `file:PATH` (`tls.crls`).
        public var source: String
        /// `current`, `stale` (past its nextUpdate) or `missing` (tracked, never fetched).
        public var state: String
        /// Whether this is the list the relay checks with (the newest for its CA).
        public var inEffect: Bool
        public var thisUpdate: Date?
        public var nextUpdate: Date?
        public var revokedCount: Int
        public var fetchedAt: Date?
        public var lastError: String?
        public var lastAttemptAt: Date?
        public init(
            ca: String,
            issuer: String,
            source: String,
            state: String,
            inEffect: Bool,
            thisUpdate: Date?,
            nextUpdate: Date?,
            revokedCount: Int,
            fetchedAt: Date?,
            lastError: String?,
            lastAttemptAt: Date?
        ) {
            self.ca = ca
            self.issuer = issuer
            self.source = source
            self.state = state
            self.inEffect = inEffect
            self.thisUpdate = thisUpdate
            self.nextUpdate = nextUpdate
            self.revokedCount = revokedCount
            self.fetchedAt = fetchedAt
            self.lastError = lastError
            self.lastAttemptAt = lastAttemptAt
        }
    }

    public struct AdminRevocationLists: Codable, Sendable {
        /// `tls.staleCRL`: `refuse` or `accept`.
        public var staleCRL: String
        public var lists: [AdminRevocationList]
        public init(staleCRL: String, lists: [AdminRevocationList]) {
            self.staleCRL = staleCRL
            self.lists = lists
        }
    }

    /// A record of the audit trail (message and directory events), metadata only.
    public struct AdminEvent: Codable, Sendable, Equatable {
        public var sequence: Int64
        public var at: Date
        public var actor: String
        public var action: String
        public var messageId: String?
        public var partner: String?
        public var fingerprint: String?
        public var detail: String?
        /// The record's hash in the chain.
        public var hash: String
        public init(
            sequence: Int64,
            at: Date,
            actor: String,
            action: String,
            messageId: String?,
            partner: String?,
            fingerprint: String?,
            detail: String?,
            hash: String
        ) {
            self.sequence = sequence
            self.at = at
            self.actor = actor
            self.action = action
            self.messageId = messageId
            self.partner = partner
            self.fingerprint = fingerprint
            self.detail = detail
            self.hash = hash
        }
    }

    public struct AdminEvents: Codable, Sendable {
        public var events: [AdminEvent]
        public init(events: [AdminEvent]) { self.events = events }
    }
}
