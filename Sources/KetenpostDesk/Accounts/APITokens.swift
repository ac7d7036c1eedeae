import Foundation
import KetenpostAPI
import KetenpostCrypto

/// API tokens for case systems: `kpd_ID_SECRET`. The ID finds the token; the secret is checked
/// against its stored SHA-256 in constant time. Made with `ketenpost desk tokens add`.
public struct APITokens: Sendable {
    let store: DeskStore

    public init(store: DeskStore) { self.store = store }

    public struct Created: Sendable {
        public var token: APIToken
        /// The whole token, shown once.
        public var secret: String
    }

    public func add(
        name: String,
        scopes: Set<APIToken.Scope> = Set(APIToken.allScopes),
        actor: AccessEvent.Actor = .commandLine
    ) throws(KetenpostError) -> Created {
        guard !scopes.isEmpty else { throw KetenpostError(.deskInputInvalid, "A token needs at least one scope: send, read or answer.") }
        guard APIToken.isValidName(name) else {
            throw KetenpostError(
                .deskInputInvalid,
                "A token name has 2 to 64 lowercase letters, digits, dots, dashes or underscores (for example gemeente-zaaksysteem)."
            )
        }
        let id = Self.random(12)
        let secret = Self.random(40)
        let token = APIToken(
            id: id,
            name: name,
            secretHash: Digest.sha256(Data(secret.utf8)).hexString,
            createdAt: DeskStore.milliseconds(Date()),
            createdBy: actor.staff,
            revokedAt: nil,
            lastUsedAt: nil,
            scopes: APIToken.allScopes.filter(scopes.contains).map(\.rawValue).joined(separator: ",")
        )
        try store.addToken(token, actor: actor)
        return Created(token: token, secret: "kpd_\(id)_\(secret)")
    }

    /// The token a request's `Authorization: Bearer …` names, when it is valid and not revoked.
    public func verify(_ presented: String, at time: Date = Date()) -> APIToken? {
        let parts = presented.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "kpd", parts[1].count == 12, parts[2].count == 40,
            let token = try? store.token(id: String(parts[1])), token.revokedAt == nil
        else { return nil }
        let presentedHash = Array(Digest.sha256(Data(parts[2].utf8)).hexString.utf8)
        let storedHash = Array(token.secretHash.utf8)
        guard presentedHash.count == storedHash.count else { return nil }
        // Constant time: how much of a guess matched must not show in the answer's timing.
        var difference: UInt8 = 0
        for (a, b) in zip(presentedHash, storedHash) { difference |= a ^ b }
        guard difference == 0 else { return nil }
        store.touchToken(token.id, at: time)
        return token
    }

    static func random(_ count: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in alphabet.randomElement(using: &generator)! })
    }
}
