import KetenpostAPI

/// The desk's own error codes (documented in docs/desk.md, never renamed). Like the relay's,
/// each comes with a sentence a person can act on, and neither holds a field's value.
extension KetenpostError.Code {
    /// An account, draft or message id that exists already.
    public static let deskConflict: Self = "desk.conflict"
    /// No such message, draft or account at this desk (also for one that belongs to somebody else).
    public static let deskNotFound: Self = "desk.not-found"
    /// The page needs a signed-in staff member.
    public static let deskSignedOut: Self = "desk.signed-out"
    /// The staff member's role does not allow this.
    public static let deskForbidden: Self = "desk.forbidden"
    /// A form arrived without the session's CSRF token.
    public static let deskCSRF: Self = "desk.csrf"
    /// Wrong username, password or code (which of them is not said).
    public static let deskSignInFailed: Self = "desk.sign-in-failed"
    /// The account is locked after repeated failures, or disabled.
    public static let deskAccountLocked: Self = "desk.account-locked"
    /// A form field or request is malformed or too large.
    public static let deskInputInvalid: Self = "desk.input-invalid"
    /// The message cannot be sent or answered in its current state.
    public static let deskWrongState: Self = "desk.wrong-state"
    /// The relay could not be reached or refused; the message stays queued at the desk.
    public static let deskRelayUnavailable: Self = "desk.relay-unavailable"
    /// An API call without a valid token (missing, unknown, revoked, or another desk's).
    public static let deskTokenInvalid: Self = "desk.token-invalid"
    /// The API token is valid but may not do this (its scopes).
    public static let deskTokenScope: Self = "desk.token-scope"
    /// An API send without an `Idempotency-Key` header, or with a malformed one.
    public static let deskIdempotencyKeyMissing: Self = "desk.idempotency-key-missing"
    /// The idempotency key was used before with a different body.
    public static let deskIdempotencyConflict: Self = "desk.idempotency-conflict"
    /// A send or answer whose content breaks the type's rules; `fields` says where.
    public static let deskMessageInvalid: Self = "desk.message-invalid"
}
