import Foundation

/// Where the PostgreSQL store connects, parsed from
/// `postgres://user[:password]@host[:port]/database[?sslmode=MODE&sslrootcert=PATH]`
/// (`postgresql://` too; user, password and database percent-decoded; an IPv6 host in brackets).
///
/// `sslmode` follows libpq's names, without the modes that fall back to plaintext:
/// - `disable`: no TLS (a server on the same host or a private socket network).
/// - `require`: TLS, server certificate not checked, unless `sslrootcert` is given (then as `verify-ca`).
/// - `verify-ca`: TLS, certificate chain checked against `sslrootcert` (or the system roots), any host name.
/// - `verify-full` (the default): as `verify-ca`, and the certificate must name `host`.
public struct PostgresConnectionURL: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, CaseIterable {
        case disable
        case require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String
    public var sslMode: SSLMode
    /// PEM file with the CA certificates that may sign the server's certificate.
    public var sslRootCertificatePath: String?

    public init(
        host: String,
        port: Int = 5432,
        user: String,
        password: String? = nil,
        database: String,
        sslMode: SSLMode = .verifyFull,
        sslRootCertificatePath: String? = nil
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.sslMode = sslMode
        self.sslRootCertificatePath = sslRootCertificatePath
    }

    /// Parses a connection URL; the error says which part is wrong (never repeating the password).
    public init(_ text: String) throws {
        func fail(_ reason: String) -> StoreError { StoreError(.invalidURL, reason) }
        var rest = Substring(text)
        guard let schemeEnd = rest.range(of: "://") else { throw fail("expected postgres://user@host:port/database") }
        let scheme = rest[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw fail("scheme \(scheme) is not postgres:// or postgresql://")
        }
        rest = rest[schemeEnd.upperBound...]

        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        if rest.contains("#") { throw fail("a fragment (#) has no meaning here") }
        guard let slash = rest.firstIndex(of: "/") else { throw fail("no database: add /DATABASE after the host") }
        let authority = rest[..<slash]
        let path = rest[rest.index(after: slash)...]
        guard !path.isEmpty, !path.contains("/") else { throw fail("the path must be exactly one database name") }
        guard let database = path.removingPercentEncoding, !database.isEmpty else {
            throw fail("the database name is not valid percent-encoding")
        }

        // The password may contain '@' only percent-encoded; the last '@' ends the user part.
        guard let at = authority.lastIndex(of: "@") else { throw fail("no user: write postgres://USER@host/database") }
        let userInfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]
        let userPart: Substring
        let passwordPart: Substring?
        if let colon = userInfo.firstIndex(of: ":") {
            userPart = userInfo[..<colon]
            passwordPart = userInfo[userInfo.index(after: colon)...]
        } else {
            userPart = userInfo
            passwordPart = nil
        }
        guard let user = userPart.removingPercentEncoding, !user.isEmpty else {
            throw fail("the user name is empty or not valid percent-encoding")
        }
        var password: String?
        if let passwordPart {
            guard let decoded = passwordPart.removingPercentEncoding else { throw fail("the password is not valid percent-encoding") }
            password = decoded
        }

        var host: Substring
        var portText: Substring?
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw fail("an IPv6 host needs a closing ]") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("expected :PORT after the IPv6 host") }
                portText = after.dropFirst()
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = hostPort
        }
        guard !host.isEmpty else { throw fail("no host") }
        var port = 5432
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw fail("port \(portText) is not a number from 1 to 65535")
            }
            port = value
        }

        var sslMode = SSLMode.verifyFull
        var rootCertificate: String?
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            guard parts.count == 2, let value = parts[1].removingPercentEncoding else { throw fail("parameter \(key) has no valid value") }
            switch key {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    // prefer/allow silently fall back to plaintext: not offered for a relay's metadata.
                    throw fail("sslmode \(value) is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                sslMode = mode
            case "sslrootcert":
                guard !value.isEmpty else { throw fail("sslrootcert is empty") }
                rootCertificate = value
            default:
                throw fail("unknown parameter \(key) (known: sslmode, sslrootcert)")
            }
        }
        if sslMode == .disable, rootCertificate != nil { throw fail("sslrootcert given with sslmode=disable") }
        self.init(
            host: String(host),
            port: port,
            user: user,
            password: password,
            database: database,
            sslMode: sslMode,
            sslRootCertificatePath: rootCertificate
        )
    }

    /// The URL without the password, for logs and errors.
    public var description: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        var text = "postgres://\(user)\(password == nil ? "" : ":***")@\(hostText):\(port)/\(database)?sslmode=\(sslMode.rawValue)"
        if let sslRootCertificatePath { text += "&sslrootcert=\(sslRootCertificatePath)" }
        return text
    }
}
