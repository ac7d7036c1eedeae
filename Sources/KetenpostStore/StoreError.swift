import Foundation

/// Why a store refused or failed, for every backend: a stable code and a sentence for the
/// operator. Metadata only: no passwords, no message content, no names.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        public var description: String { name }

        /// The store carries migrations this version does not know (a newer relay migrated it).
        public static let newerSchema = Code(name: "store.schema-newer")
        /// A PostgreSQL connection URL that cannot be used.
        public static let invalidURL = Code(name: "store.invalid-url")
        /// The TLS settings of a PostgreSQL connection URL cannot be used.
        public static let tls = Code(name: "store.tls")
        /// The PostgreSQL server could not be reached (nothing listens, a firewall, a wrong host or port).
        public static let unreachable = Code(name: "store.unreachable")
        /// The PostgreSQL server is out of connections (SQLSTATE 53300) or of other resources (class 53).
        public static let serverFull = Code(name: "store.server-full")
        /// The PostgreSQL server refused the login: user, password, database or `pg_hba.conf`.
        public static let loginRefused = Code(name: "store.login-refused")
        /// The database answered something the schema rules out.
        public static let unexpectedResult = Code(name: "store.unexpected-result")
        /// The SQLite files are readable or writable by other users of the machine.
        public static let permissions = Code(name: "store.permissions")
        /// The store is not running (its service ended).
        public static let closed = Code(name: "store.closed")
        // Directory changes refused as a whole (`subject` names the partner or certificate):
        public static let partnerExists = Code(name: "store.partner-exists")
        public static let partnerNotFound = Code(name: "store.partner-not-found")
        public static let certificateExists = Code(name: "store.certificate-exists")
        public static let certificateNotFound = Code(name: "store.certificate-not-found")
        public static let certificateRevoked = Code(name: "store.certificate-revoked")
    }

    public var code: Code
    /// A sentence for the operator.
    public var reason: String
    /// The partner id or certificate fingerprint a directory refusal concerns; empty otherwise.
    public var subject: String

    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
        subject = ""
    }

    /// A directory refusal about `subject` (a partner id or a certificate fingerprint).
    public init(_ code: Code, subject: String) {
        self.code = code
        self.subject = subject
        reason = "\(code) (\(subject.prefix(16)))"
    }

    /// Only the code takes part in equality: reasons may be reworded, codes never.
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }

    public var description: String { "store: \(code): \(reason)" }
}
