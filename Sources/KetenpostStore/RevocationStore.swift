import Foundation

/// The current CRL of one issuing CA, as the relay fetched (or read) and checked it, with what
/// happened at the last attempt to refresh it. Kept in the store so that every relay instance
/// uses the same lists and one instance's fetch serves all.
public struct StoredRevocationList: Sendable, Equatable {
    /// Lowercase hex SHA-256 of the issuing CA's certificate: the list's key.
    public var issuerFingerprint: String
    /// The issuer's subject (RFC 2253), for people.
    public var issuer: String
    /// Where the list came from: an http(s) URL or `file:` path.
    public var source: String
    /// The CRL's DER; empty until a first fetch succeeded.
    public var der: Data
    public var thisUpdate: Date?
    public var nextUpdate: Date?
    public var revokedCount: Int
    /// When the held list was fetched.
    public var fetchedAt: Date?
    /// The last attempt's failure (a metadata-only sentence), nil after a success.
    public var lastError: String?
    public var lastAttemptAt: Date?

    public init(
        issuerFingerprint: String,
        issuer: String,
        source: String,
        der: Data = Data(),
        thisUpdate: Date? = nil,
        nextUpdate: Date? = nil,
        revokedCount: Int = 0,
        fetchedAt: Date? = nil,
        lastError: String? = nil,
        lastAttemptAt: Date? = nil
    ) {
        self.issuerFingerprint = issuerFingerprint
        self.issuer = issuer
        self.source = source
        self.der = der
        self.thisUpdate = thisUpdate
        self.nextUpdate = nextUpdate
        self.revokedCount = revokedCount
        self.fetchedAt = fetchedAt
        self.lastError = lastError
        self.lastAttemptAt = lastAttemptAt
    }
}

/// The relay's CRLs per issuing CA. Every backend passes the same contract tests.
public protocol RevocationStore: Sendable {
    /// Every held list, by issuer fingerprint.
    func revocationLists() async throws -> [StoredRevocationList]

    /// Keeps a freshly checked list, unless the store holds one for the issuer that is newer
    /// (a later `thisUpdate`): two instances fetching at once, or a slow fetch finishing after a
    /// fast one, never move a list backwards. Clears the issuer's last error.
    /// - Returns: whether `list` was kept.
    @discardableResult
    func saveRevocationList(_ list: StoredRevocationList) async throws -> Bool

    /// Records a failed refresh for the issuer; the list held (if any) stays.
    func recordRevocationFailure(issuerFingerprint: String, issuer: String, source: String, error: String, at: Date) async throws
}
