import Foundation

/// A partner as the directory stores it. Roles and states are the model's raw values.
public struct DirectoryPartner: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var role: String
    public var oin: String
    /// `active` or `suspended`.
    public var state: String

    public init(id: String, name: String, role: String, oin: String, state: String) {
        self.id = id
        self.name = name
        self.role = role
        self.oin = oin
        self.state = state
    }
}

/// What a certificate may be used for; one certificate may serve several purposes.
public enum CertificateUse: String, Sendable, Codable, CaseIterable, Comparable {
    case signing
    case encryption
    case tlsClient = "tls-client"

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
}

/// Where a certificate stands at a moment. Derived from its times, so every relay instance
/// agrees without a background job: a rotation's old certificate retires by itself.
public enum CertificateState: String, Sendable, Codable {
    /// Registered with an activation time still ahead.
    case pending
    /// In use.
    case active
    /// Replaced by a rotation, still accepted until its overlap ends.
    case retiring
    /// The overlap ended: refused for new traffic.
    case retired
    /// Past its notAfter.
    case expired
    /// Revoked by an administrator: refused at once.
    case revoked

    /// Accepted for new traffic.
    public var isUsable: Bool { self == .active || self == .retiring }
}

/// A partner's certificate in the directory.
public struct DirectoryCertificate: Sendable, Equatable, Codable {
    /// Lowercase hex SHA-256 of the DER bytes: the certificate's key in the directory.
    public var fingerprint: String
    public var partnerID: String
    public var der: Data
    /// The DER of the intermediate CA certificates between this one and a trust anchor, as the
    /// administrator gave them: stored with the certificate and served with it, never trusted.
    public var chain: [Data]
    public var uses: [CertificateUse]
    /// Uppercase hex serial number (what a CRL lists).
    public var serial: String
    public var notBefore: Date
    public var notAfter: Date
    public var activatesAt: Date
    public var retiresAt: Date?
    public var revokedAt: Date?
    /// The administrator's reason, a short code such as `key-compromise`.
    public var revocationReason: String?
    public var addedAt: Date

    public init(
        fingerprint: String,
        partnerID: String,
        der: Data,
        chain: [Data] = [],
        uses: [CertificateUse],
        serial: String,
        notBefore: Date,
        notAfter: Date,
        activatesAt: Date,
        retiresAt: Date? = nil,
        revokedAt: Date? = nil,
        revocationReason: String? = nil,
        addedAt: Date
    ) {
        self.fingerprint = fingerprint
        self.partnerID = partnerID
        self.der = der
        self.chain = chain
        self.uses = uses.sorted()
        self.serial = serial
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.activatesAt = activatesAt
        self.retiresAt = retiresAt
        self.revokedAt = revokedAt
        self.revocationReason = revocationReason
        self.addedAt = addedAt
    }

    public func state(at now: Date) -> CertificateState {
        if revokedAt != nil { return .revoked }
        if now >= notAfter { return .expired }
        if now < activatesAt { return .pending }
        if let retiresAt { return now < retiresAt ? .retiring : .retired }
        return .active
    }
}

extension DirectoryCertificate {
    /// The chain as one text column: base64 DER per certificate, comma-separated ("" for none).
    var chainText: String { chain.map { $0.base64EncodedString() }.joined(separator: ",") }

    static func chain(fromText text: String) -> [Data] {
        text.split(separator: ",").compactMap { Data(base64Encoded: String($0)) }
    }
}

/// One change to the directory. Each is recorded as an audit event with the actor.
public enum DirectoryChange: Sendable, Equatable {
    case addPartner(DirectoryPartner)
    case setPartnerState(id: String, state: String)
    case addCertificate(DirectoryCertificate)
    /// Sets (or moves earlier) the end of a certificate's overlap.
    case retireCertificate(fingerprint: String, at: Date)
    case revokeCertificate(fingerprint: String, at: Date, reason: String)

    var action: String {
        switch self {
        case .addPartner: return "partner.added"
        case .setPartnerState(_, let state): return state == "suspended" ? "partner.suspended" : "partner.resumed"
        case .addCertificate: return "certificate.added"
        case .retireCertificate: return "certificate.retiring"
        case .revokeCertificate: return "certificate.revoked"
        }
    }

    /// The audit event's metadata note; the same for every backend.
    var auditDetail: String {
        switch self {
        case .addPartner(let p): return "role=\(p.role) state=\(p.state)"
        case .setPartnerState(_, let state): return "state=\(state)"
        case .addCertificate(let c):
            return
                """
                uses=\(c.uses.map(\.rawValue).joined(separator: ",")) serial=\(c.serial) activatesAt=\(Self.text(c.activatesAt)) \
                notAfter=\(Self.text(c.notAfter))
                """
        case .retireCertificate(_, let until): return "retiresAt=\(Self.text(until))"
        case .revokeCertificate(_, _, let reason): return "reason=\(reason)"
        }
    }

    /// RFC 3339 in UTC.
    static func text(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}

/// The whole directory at one version.
public struct DirectorySnapshot: Sendable, Equatable {
    /// Grows with every applied batch of changes; instances compare it to know whether to reload.
    public var version: Int64
    public var partners: [DirectoryPartner]
    public var certificates: [DirectoryCertificate]

    public init(version: Int64, partners: [DirectoryPartner], certificates: [DirectoryCertificate]) {
        self.version = version
        self.partners = partners
        self.certificates = certificates
    }
}

/// The partner directory in the store, so that every relay instance sees the same partners,
/// certificates and states. Every backend passes the same contract tests.
public protocol DirectoryStore: Sendable {
    /// The current version (cheap: instances poll it to decide whether to reload the snapshot).
    func directoryVersion() async throws -> Int64

    /// Every partner and certificate, consistent with `version`.
    func directorySnapshot() async throws -> DirectorySnapshot

    /// Applies the changes in one transaction, each with an audit record naming `actor`, or none
    /// of them (`StoreError`). Returns the new version.
    @discardableResult
    func applyDirectory(_ changes: [DirectoryChange], actor: String, at: Date) async throws -> Int64
}
