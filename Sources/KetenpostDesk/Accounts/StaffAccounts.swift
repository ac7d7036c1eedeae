import Dispatch
import Foundation
import HummingbirdBcrypt
import HummingbirdOTP
import KetenpostAPI

/// Staff accounts: passwords as bcrypt hashes, a TOTP second factor, lockout after repeated
/// failures. Every change and every sign-in attempt lands in the access log.
public struct StaffAccounts: Sendable {
    public let store: DeskStore
    public let sessions: DeskConfiguration.Sessions
    /// bcrypt's cost; 12 takes about a quarter second here, which is what slows down guessing.
    let cost: UInt8

    public init(store: DeskStore, sessions: DeskConfiguration.Sessions, cost: UInt8 = 12) {
        self.store = store
        self.sessions = sessions
        self.cost = cost
    }

    /// A new account and, when it has a second factor, the `otpauth://` address to put into an
    /// authenticator app (shown once).
    public struct Created: Sendable {
        public var member: StaffMember
        public var authenticatorURL: String?
    }

    /// Passwords: at least 12 characters, not the username. Length beats composition rules.
    public static func checkPassword(_ password: String, username: String) throws(KetenpostError) {
        guard password.count >= 12 else {
            throw KetenpostError(.deskInputInvalid, "The password is too short: use at least 12 characters, for instance four words.")
        }
        guard password.count <= 72, password.utf8.count <= 72 else {
            // bcrypt reads 72 bytes; longer passwords would silently be cut.
            throw KetenpostError(.deskInputInvalid, "The password is too long: use at most 72 bytes.")
        }
        guard password.lowercased() != username.lowercased() else {
            throw KetenpostError(.deskInputInvalid, "The password must not be the username.")
        }
    }

    public func add(
        username: String,
        displayName: String,
        role: StaffRole,
        password: String,
        secondFactor: Bool = false,
        actor: AccessEvent.Actor = .commandLine
    ) async throws(KetenpostError) -> Created {
        guard StaffMember.isValidUsername(username) else {
            throw KetenpostError(
                .deskInputInvalid,
                "The username must be 2 to 64 lowercase letters, digits, dots, dashes or underscores, such as a.jansen."
            )
        }
        let name = displayName.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...100).contains(name.count), !name.unicodeScalars.contains(where: { CharacterSet.controlCharacters.contains($0) }) else {
            throw KetenpostError(.deskInputInvalid, "The display name must be 1 to 100 characters on one line.")
        }
        try Self.checkPassword(password, username: username)
        let secret = secondFactor || role.requiresSecondFactor ? Self.newSecret() : nil
        let member = StaffMember(
            username: username,
            displayName: name,
            role: role,
            passwordHash: await hash(password),
            totpSecret: secret,
            disabled: false,
            failedAttempts: 0,
            lockedUntil: nil,
            createdAt: DeskStore.milliseconds(Date()),
            lastCodeStep: nil
        )
        try store.addStaff(member, actor: actor)
        return Created(member: member, authenticatorURL: secret.map { authenticatorURL(for: member, secret: $0) })
    }

    /// A new password (and, with `newSecondFactor`, a new TOTP secret); unlocks and enables the account.
    public func reset(
        username: String,
        password: String,
        newSecondFactor: Bool = false,
        actor: AccessEvent.Actor = .commandLine
    ) async throws(KetenpostError) -> Created {
        try Self.checkPassword(password, username: username)
        let hashed = await hash(password)
        let existing = (try? store.staff(username)) ?? nil
        let secret: String? =
            newSecondFactor || (existing?.role.requiresSecondFactor == true && existing?.totpSecret == nil)
            ? Self.newSecret() : nil
        let member = try store.updateStaff(username, actor: actor, what: "reset") { member in
            member.passwordHash = hashed
            member.failedAttempts = 0
            member.lockedUntil = nil
            member.disabled = false
            if let secret {
                member.totpSecret = secret
                member.lastCodeStep = nil
            }
        }
        return Created(member: member, authenticatorURL: secret.map { authenticatorURL(for: member, secret: $0) })
    }

    public func setDisabled(_ username: String, _ disabled: Bool, actor: AccessEvent.Actor = .commandLine) throws(KetenpostError) {
        try store.updateStaff(username, actor: actor, what: disabled ? "disable" : "enable") { $0.disabled = disabled }
    }

    /// Checks a sign-in. Unknown users, wrong passwords and wrong codes get the same answer;
    /// locked and disabled accounts are told so (the person must call an administrator).
    public func signIn(
        username: String,
        password: String,
        code: String?,
        at time: Date = Date()
    ) async throws(KetenpostError)
        -> StaffMember
    {
        let member = (try? store.staff(username)) ?? nil
        // Hash even for an unknown user, so that the time taken does not tell which usernames exist.
        let passwordOK = await verify(password, hash: member?.passwordHash ?? Self.decoyHash)
        guard let member else {
            try store.recordSignIn(
                username,
                succeeded: false,
                lockAfter: sessions.lockoutAttempts,
                lockFor: sessions.lockoutDuration,
                at: time
            )
            throw Self.failed
        }
        if member.disabled || member.isLocked(at: time) {
            try store.recordSignIn(username, succeeded: false, lockAfter: Int.max, lockFor: 0, at: time)
            throw KetenpostError(
                .deskAccountLocked,
                member.disabled
                    ? "This account is disabled. Ask your desk administrator."
                    : "This account is locked after too many failed sign-ins. Wait, or ask your desk administrator to unlock it."
            )
        }
        var ok = passwordOK
        var step: Int64?
        if let secret = member.totpSecret {
            step = Self.codeStep(code, secret: secret, at: time)
            ok = ok && step != nil
        }
        ok = try store.recordSignIn(
            username,
            succeeded: ok,
            lockAfter: sessions.lockoutAttempts,
            lockFor: sessions.lockoutDuration,
            codeStep: step,
            at: time
        )
        guard ok else { throw Self.failed }
        return member
    }

    static let failed = KetenpostError(
        .deskSignInFailed,
        "The username, password or code is not right. Check them and try again; after several failures the account is locked."
    )

    /// The 30-second step of a code from the authenticator app, when it is the current step's or a
    /// neighbour's (clock drift); nil when it is neither.
    static func codeStep(_ code: String?, secret: String, at time: Date) -> Int64? {
        guard let code, code.count == 6, code.allSatisfy(\.isASCII), let value = Int(code) else { return nil }
        let totp = TOTP(secret: secret)
        return [-30.0, 0, 30].first { totp.compute(date: time.addingTimeInterval($0)) == value }.map {
            Int64((time.timeIntervalSince1970 + $0) / 30)
        }
    }

    /// 20 random characters (the secret's UTF-8 bytes are the HMAC key).
    static func newSecret() -> String {
        let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<20).map { _ in alphabet.randomElement(using: &generator)! })
    }

    func authenticatorURL(for member: StaffMember, secret: String) -> String {
        TOTP(secret: secret).createAuthenticatorURL(label: "Ketenpost:\(member.username)", issuer: "Ketenpost")
    }

    /// The current code for a secret: for tests and the demo, which sign in without a phone.
    public static func currentCode(secret: String, at time: Date = Date()) -> String {
        String(format: "%06d", TOTP(secret: secret).compute(date: time))
    }

    // bcrypt takes a quarter second of CPU: off the cooperative threads.
    func hash(_ password: String) async -> String {
        let cost = cost
        return await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: Bcrypt.hash(password, cost: cost)) }
        }
    }

    func verify(_ password: String, hash: String) async -> Bool {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(returning: Bcrypt.verify(password, hash: hash)) }
        }
    }

    private static let decoyHash = Bcrypt.hash("decoy password that nobody has", cost: 12)
}
