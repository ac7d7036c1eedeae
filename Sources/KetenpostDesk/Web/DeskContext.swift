import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import KetenpostAPI
import KetenpostCrypto
import Logging

/// What a signed-in browser carries (in the desk's memory, keyed by the session cookie): who,
/// for which desk, the CSRF token of its forms and when it was last used.
public struct DeskSession: Codable, Sendable {
    public var username: String
    public var partnerID: String
    public var csrf: String
    public var lastSeen: Date
}

/// The desk's request context: Hummingbird's storage, the session, and the staff member that
/// `StaffAuthentication` found for it.
public struct DeskRequestContext: SessionRequestContext, RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let sessions: SessionContext<DeskSession>
    public var staff: StaffMember?
    /// The case system's token, on API routes (behind `APIAuthentication`).
    public var token: APIToken?
    public var english = false

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        sessions = .init()
    }

    /// Form posts are small; a larger body is refused before it is read.
    public var maxUploadSize: Int { 512 * 1024 }

    public var labels: Labels { Labels(english: english) }

    /// The signed-in staff member; only routes behind `StaffAuthentication` have one.
    func member() throws(KetenpostError) -> StaffMember {
        guard let staff else { throw KetenpostError(.deskSignedOut, "Sign in first.") }
        return staff
    }

    var actor: AccessEvent.Actor {
        AccessEvent.Actor(staff: staff?.username ?? "(none)", role: staff?.role.rawValue ?? "none")
    }
}

/// Picks the screens' language: the configured default, or the other one when the browser's
/// first preference asks for it (`?lang=` overrides, for a link on the page).
struct LanguageMiddleware: RouterMiddleware {
    typealias Context = DeskRequestContext
    let englishByDefault: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.english = Self.english(request, default: englishByDefault)
        return try await next(request, context)
    }

    static func english(_ request: Request, default english: Bool) -> Bool {
        if let choice = request.uri.queryParameters.get("lang") { return choice == "en" }
        if let cookie = request.cookies["ketenpost_lang"]?.value { return cookie == "en" }
        guard let header = request.headers[.acceptLanguage] else { return english }
        let first = header.split(separator: ",").first?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        if first?.hasPrefix("nl") == true { return false }
        if first?.hasPrefix("en") == true { return true }
        return english
    }
}

/// Every page: security headers, no caching (pages hold personal data), and a failure shown as
/// a page with a code and a sentence (a signed-out browser is sent to the sign-in page).
struct DeskOutcomeMiddleware: RouterMiddleware {
    typealias Context = DeskRequestContext
    let pages: DeskPages

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as KetenpostError {
            context.logger.notice("request refused", metadata: ["error.code": "\(error.code)"])
            if error.code == .deskSignedOut {
                response = Response(status: .seeOther, headers: [.location: "/signin"])
            } else {
                response = pages.error(error, status: Self.status(error.code), context: context)
            }
        } catch let error as any HTTPResponseError where request.uri.path.hasPrefix("/api/") {
            response = APIAuthentication.render(error, logger: context.logger)
        } catch let error as any HTTPResponseError {
            let code: KetenpostError.Code = error.status == .notFound ? .deskNotFound : .deskInputInvalid
            let sentence =
                error.status == .notFound
                ? "There is no such page at this desk." : "The request could not be read (HTTP \(error.status.code))."
            response = pages.error(KetenpostError(code, sentence), status: error.status, context: context)
        } catch {
            context.logger.error("unexpected failure", metadata: ["error.type": "\(type(of: error))"])
            response = pages.error(
                KetenpostError(
                    .internalError,
                    "The desk failed unexpectedly; nothing was sent. Try again, and tell your administrator if it persists."
                ),
                status: .internalServerError,
                context: context
            )
        }
        response.headers[.cacheControl] = "no-store"
        response.headers[.contentSecurityPolicy] =
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        response.headers[.xContentTypeOptions] = "nosniff"
        response.headers[.referrerPolicy] = "no-referrer"
        response.headers[.xFrameOptions] = "DENY"
        return response
    }

    static func status(_ code: KetenpostError.Code) -> HTTPResponse.Status {
        switch code {
        case .deskNotFound: .notFound
        case .deskForbidden: .forbidden
        case .deskCSRF: .forbidden
        case .deskSignInFailed, .deskAccountLocked: .unauthorized
        case .deskInputInvalid: .badRequest
        case .deskWrongState, .deskConflict: .conflict
        case .deskRelayUnavailable, .storeUnavailable: .serviceUnavailable
        default: .internalServerError
        }
    }
}

/// Routes for staff: the session must name an active account of this desk and must not have
/// been idle longer than `sessions.idleTimeout`; every form post must carry the session's CSRF token.
struct StaffAuthentication: RouterMiddleware {
    typealias Context = DeskRequestContext
    let core: DeskCore
    let pages: DeskPages

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let session = context.sessions.session, session.partnerID == core.partnerID,
            core.clock().timeIntervalSince(session.lastSeen) < core.configuration.sessions.idleTimeout
        else {
            context.sessions.clearSession()
            throw KetenpostError(.deskSignedOut, "Sign in first.")
        }
        guard let member = try? core.store.staff(session.username), !member.disabled, !member.isLocked(at: core.clock()) else {
            context.sessions.clearSession()
            throw KetenpostError(.deskSignedOut, "Sign in first.")
        }
        var context = context
        context.staff = member
        var updated = session
        updated.lastSeen = core.clock()
        _ = context.sessions.updateSession(updated, expiresIn: .seconds(core.configuration.sessions.idleTimeout))
        // Refusals render here, with the staff member known: the error page keeps the menu and
        // the urgent banner, which must not vanish because one page failed.
        do {
            return try await next(request, context)
        } catch let error as KetenpostError where error.code != .deskSignedOut {
            context.logger.notice("request refused", metadata: ["error.code": "\(error.code)"])
            return pages.error(error, status: DeskOutcomeMiddleware.status(error.code), context: context)
        }
    }
}

/// Reads a urlencoded form body (bounded), and checks its CSRF token against the session's.
enum FormBody {
    static let maximumFields = 2000
    static let maximumValue = 20_000

    static func read(_ request: Request, context: DeskRequestContext) async throws -> [String: String] {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        let text = String(buffer: buffer)
        var fields: [String: String] = [:]
        let pairs = text.split(separator: "&", omittingEmptySubsequences: true)
        guard pairs.count <= maximumFields else {
            throw KetenpostError(.deskInputInvalid, "The form has too many fields; reload the page and try again.")
        }
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = decode(parts[0]), let value = decode(parts.count > 1 ? parts[1] : "") else {
                throw KetenpostError(.deskInputInvalid, "The form could not be read (bad encoding); reload the page and try again.")
            }
            guard value.count <= maximumValue, name.count <= 200 else {
                throw KetenpostError(.deskInputInvalid, "A field is longer than the desk accepts (20,000 characters); shorten it.")
            }
            fields[name] = value
        }
        return fields
    }

    private static func decode(_ part: Substring) -> String? {
        part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// A form post must carry the session's token: another site cannot make a signed-in browser
    /// send, answer or change anything.
    static func checkCSRF(_ fields: [String: String], context: DeskRequestContext) throws(KetenpostError) {
        guard let expected = context.sessions.session?.csrf, let given = fields["_csrf"],
            Digest.sha256(Data(expected.utf8)) == Digest.sha256(Data(given.utf8))
        else {
            throw KetenpostError(
                .deskCSRF,
                "The form was not sent from this desk's own page, or the page was too old. Go back, reload the page and try again."
            )
        }
    }
}

extension HTTPField.Name {
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xFrameOptions = Self("X-Frame-Options")!
}
