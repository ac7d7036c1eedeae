import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdAuth
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel

/// The desk's routes. Every page that shows or changes a message is behind
/// `StaffAuthentication`, checks the role, writes its access-log entry before it answers, and
/// reads form posts only with the session's CSRF token.
public enum DeskRoutes {
    public static func addRoutes(to router: Router<DeskRequestContext>, core: DeskCore) {
        let pages = DeskPages(core: core)
        router.add(middleware: DeskOutcomeMiddleware(pages: pages))
        router.add(middleware: LanguageMiddleware(englishByDefault: core.configuration.language.english))
        router.get("/desk.css") { _, _ in
            var response = Response(
                status: .ok,
                headers: [.contentType: "text/css; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: DeskTemplates.css))
            )
            response.headers[.cacheControl] = "max-age=3600"
            return response
        }
        router.get("/health") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: "ok")))
        }
        APIRoutes.add(to: router, core: core)
        addSignIn(router, core: core, pages: pages)
        let staff = router.group().add(middleware: StaffAuthentication(core: core, pages: pages))
        addHome(staff)
        addLists(staff, core: core, pages: pages)
        addCompose(staff, core: core, pages: pages)
        addMessage(staff, core: core, pages: pages)
        addLog(staff, core: core, pages: pages)
        addUsers(staff, core: core, pages: pages)
        StatusPage.add(to: staff, core: core, pages: pages)
    }

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location])
    }

    static func require(_ context: DeskRequestContext, _ allowed: (StaffRole) -> Bool) throws(KetenpostError) -> StaffMember {
        let member = try context.member()
        guard allowed(member.role) else {
            throw KetenpostError(.deskForbidden, "Your role does not allow this page. Ask your desk administrator if you need it.")
        }
        return member
    }

    // MARK: Sign-in

    static let preSessionCookie = "ketenpost_signin"

    private static func addSignIn(_ router: Router<DeskRequestContext>, core: DeskCore, pages: DeskPages) {
        @Sendable func signInPage(
            _ context: DeskRequestContext,
            error: KetenpostError?,
            username: String,
            status: HTTPResponse.Status
        ) -> Response {
            let labels = context.labels
            // Sign-in has no session yet: its CSRF token is a cookie that the form must repeat.
            let token = randomToken()
            var response = pages.page(
                "signIn",
                title: labels["signin.title"],
                [
                    "title": labels["signin.title"], "intro": labels["signin.intro"], "csrf": token,
                    "usernameLabel": labels["signin.username"],
                    "passwordLabel": labels["signin.password"], "codeFieldLabel": labels["signin.code"],
                    "codeHelp": labels["signin.code.help"],
                    "submit": labels["signin.submit"], "username": username, "error": error.map { Labels.sentence($0, labels) } ?? "",
                    "code": error?.code.rawValue ?? "", "codeLabel": labels["error.code"],
                ],
                context: context,
                status: status
            )
            response.headers[values: .setCookie].append(
                Cookie(
                    name: preSessionCookie,
                    value: token,
                    path: "/signin",
                    secure: core.configuration.listen.certificate != nil,
                    sameSite: .strict
                )
                .description
            )
            return response
        }
        router.get("/signin") { _, context in signInPage(context, error: nil, username: "", status: .ok) }
        router.post("/signin") { request, context in
            let fields = try await FormBody.read(request, context: context)
            guard let cookie = request.cookies[preSessionCookie]?.value, let given = fields["_csrf"], cookie == given, !given.isEmpty else {
                throw KetenpostError(.deskCSRF, "The sign-in form was too old or not from this desk. Reload the page and sign in again.")
            }
            let username = (fields["username"] ?? "").trimmingCharacters(in: .whitespaces).lowercased()
            do throws(KetenpostError) {
                let member = try await core.accounts.signIn(
                    username: username,
                    password: fields["password"] ?? "",
                    code: fields["code"],
                    at: core.clock()
                )
                context.sessions.createSession(
                    DeskSession(username: member.username, partnerID: core.partnerID, csrf: randomToken(), lastSeen: core.clock()),
                    expiresIn: .seconds(core.configuration.sessions.idleTimeout)
                )
                let home = member.role.handlesMessages ? "/inbox" : member.role == .logReader ? "/log" : "/users"
                return redirect(home)
            } catch {
                let shown = StaffMember.isValidUsername(username) ? username : ""
                return signInPage(context, error: error, username: shown, status: .unauthorized)
            }
        }
        router.post("/signout") { request, context in
            if let session = context.sessions.session {
                let fields = try await FormBody.read(request, context: context)
                try FormBody.checkCSRF(fields, context: context)
                let role = (try? core.store.staff(session.username))??.role.rawValue ?? "unknown"
                try core.store.accessLog.recordEvent(AccessEvent(staff: session.username, role: role, action: .signOut))
                context.sessions.clearSession()
            }
            return redirect("/signin")
        }
    }

    private static func addHome(_ staff: RouterGroup<DeskRequestContext>) {
        staff.get("/") { _, context in
            let member = try context.member()
            return redirect(member.role.handlesMessages ? "/inbox" : member.role == .logReader ? "/log" : "/users")
        }
    }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    // MARK: Worklists

    private static func addLists(_ staff: RouterGroup<DeskRequestContext>, core: DeskCore, pages: DeskPages) {
        staff.get("/inbox") { request, context in
            try await list(request, context, direction: .incoming, core: core, pages: pages)
        }
        staff.get("/sent") { request, context in
            try await list(request, context, direction: .outgoing, core: core, pages: pages)
        }
    }

    private static func list(
        _ request: Request,
        _ context: DeskRequestContext,
        direction: Direction,
        core: DeskCore,
        pages: DeskPages
    ) async throws -> Response {
        let member = try require(context) { $0.handlesMessages }
        let labels = context.labels
        let parameters = request.uri.queryParameters
        var query = DeskStore.Query(direction: direction)
        let stateFilter = parameters.get("state") ?? ""
        let overdue = stateFilter == "overdue"
        if overdue {
            query.states = direction == .incoming ? [.new, .opened] : [.accepted, .delivered, .acknowledged]
            query.type = "intake-notice"
            query.until = Date().addingTimeInterval(-core.configuration.inbox.urgentAnswerWithin)
        } else if let state = DeskState(rawValue: stateFilter) {
            query.states = [state]
        } else if stateFilter == "failed" {
            query.states = DeskState.allCases.filter(\.isFailure)
        }
        if let type = parameters.get("type"), MessageType(rawValue: type) != nil { query.type = type }
        if let partner = parameters.get("partner"), PartnerID.isValid(partner) { query.counterpart = partner }
        if let priority = parameters.get("priority"), Priority(rawValue: priority) != nil { query.priority = priority }
        let from = parameters.get("from").flatMap(Self.day)
        let until = parameters.get("until").flatMap(Self.day)
        if let from { query.from = from }
        if let until { query.until = min(until.addingTimeInterval(86_400), query.until ?? .distantFuture) }
        // Caseworkers see their own sent messages, and received ones assigned to them or nobody;
        // team leads see the team's.
        let mine = parameters.get("mine") == "1"
        if direction == .outgoing && member.role == .caseworker { query.createdBy = member.username }
        if direction == .incoming && mine { query.assignedTo = member.username }
        if direction == .incoming && member.role == .caseworker && !mine { query.assignedToOrNobody = member.username }
        let page = max(0, parameters.get("page").flatMap(Int.init) ?? 0)
        query.offset = min(page, 10_000) * query.limit
        let (messages, total) = try core.store.list(query)
        let directory = (try? await core.directory()) ?? []
        let names = Dictionary(directory.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        let urgentCutoff = DeskStore.milliseconds(Date().addingTimeInterval(-core.configuration.inbox.urgentAnswerWithin))
        let rows: [[String: Any]] = messages.map { m in
            let isOverdue =
                m.type == "intake-notice" && m.outcome == nil && m.answerId == nil && m.createdAt < urgentCutoff && !m.state.isFailure
            return [
                "href": m.state == .draft ? "/drafts/\(m.id)" : "/messages/\(m.id)",
                "time": DeskFormat.dateTime(milliseconds: m.createdAt, english: labels.english),
                "type": labels.type(m.type),
                "partner": names[m.counterpart] ?? m.counterpart,
                "state": labels.state(m.state),
                "stateClass": stateClass(m.state),
                "rowClass": m.state.isFailure ? "failure" : m.state == .new ? "new" : "",
                "urgent": m.priority == "urgent",
                "urgentLabel": labels.value("urgent"),
                "overdue": isOverdue,
                "overdueLabel": labels["list.overdue"],
                "answer": m.outcome.map { labels.value($0) + (m.outcomeReason.map { " (\(labels.value($0)))" } ?? "") } ?? "",
                "assigned": m.assignedTo ?? "",
            ]
        }
        func options(_ pairs: [(String, String)], selected: String?) -> [[String: Any]] {
            [["value": "", "label": labels["list.all"], "selected": (selected ?? "").isEmpty]]
                + pairs.map { ["value": $0.0, "label": $0.1, "selected": $0.0 == selected] }
        }
        let stateChoices: [DeskState] =
            direction == .incoming
            ? [.new, .opened, .answered, .refused]
            : [.draft, .sending, .accepted, .delivered, .acknowledged, .rejected, .expired, .dead, .failed]
        var statePairs = stateChoices.map { ($0.rawValue, labels.state($0)) }
        statePairs.append(("overdue", labels["list.overdue"]))
        if direction == .outgoing { statePairs.append(("failed", labels.english ? "All failures" : "Alle mislukte")) }
        let base = direction == .incoming ? "/inbox" : "/sent"
        func pageLink(_ number: Int) -> String {
            var components = URLComponents()
            components.path = base
            var items = [URLQueryItem]()
            for key in ["state", "type", "partner", "priority", "from", "until", "mine"] {
                if let value = parameters.get(key), !value.isEmpty { items.append(URLQueryItem(name: key, value: value)) }
            }
            items.append(URLQueryItem(name: "page", value: String(number)))
            components.queryItems = items
            return components.string ?? base
        }
        let title = direction == .incoming ? labels["inbox.title"] : labels["sent.title"]
        let values: [String: Any] = [
            "title": title, "action": base, "filterLabel": labels["list.filter"],
            "stateLabel": labels["list.state"], "states": options(statePairs, selected: stateFilter),
            "typeLabel": labels["list.type"],
            "types": options(MessageType.allCases.map { ($0.rawValue, labels.type($0.rawValue)) }, selected: query.type),
            "partnerLabel": direction == .incoming ? labels["list.from"] : labels["list.to"],
            "partners": options(directory.filter { $0.id != core.partnerID }.map { ($0.id, $0.name) }, selected: query.counterpart),
            "priorityLabel": labels["list.priority"],
            "priorities": options(Priority.allCases.map { ($0.rawValue, labels.value($0.rawValue)) }, selected: query.priority),
            "fromLabel": labels.english ? "From date" : "Vanaf datum", "from": parameters.get("from").map { String($0) } ?? "",
            "untilLabel": labels.english ? "Until date" : "Tot en met datum", "until": parameters.get("until").map { String($0) } ?? "",
            "showMine": direction == .incoming, "mine": mine, "mineLabel": labels["list.mine"],
            "total": total, "countLabel": labels["list.count"], "emptyLabel": labels["inbox.empty"],
            "rows": rows, "hasRows": !rows.isEmpty,
            "timeLabel": direction == .incoming ? labels["list.received"] : labels["list.created"],
            "answerLabel": labels["list.answer"], "assignedLabel": labels["list.assigned"],
            "previous": page > 0 ? pageLink(page - 1) : "", "previousLabel": labels["list.previous"],
            "next": (page + 1) * query.limit < total ? pageLink(page + 1) : "", "nextLabel": labels["list.next"],
        ]
        return pages.page("list", title: title, values, context: context, current: base)
    }

    static func day(_ text: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = DeskFormat.timeZone
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.date(from: text)
    }

    static func stateClass(_ state: DeskState) -> String {
        if state.isFailure { return "failure" }
        return [.acknowledged, .answered].contains(state) ? "done" : [.sending, .draft, .new].contains(state) ? "waiting" : ""
    }

    // MARK: Compose and drafts

    private static func addCompose(_ staff: RouterGroup<DeskRequestContext>, core: DeskCore, pages: DeskPages) {
        staff.get("/compose") { _, context in
            let member = try require(context) { $0.handlesMessages }
            let labels = context.labels
            let types = try await core.composableTypes()
            let help: [String: (String, String)] = [
                "signal": (
                    "Een waarneming van mogelijke mensenhandel, voor de zorgcoördinator.",
                    "An observation of possible trafficking, for the care coordinator."
                ),
                "referral": ("Iemand overdragen aan een opvang of zorgaanbieder.", "Hand someone over to a shelter or care provider."),
                "intake-notice": ("Een opvang vragen iemand op te nemen.", "Ask a shelter to take someone in."),
                "enforcement-signal": (
                    "Informatie over vermoedelijke daders, zonder gegevens van het slachtoffer.",
                    "Information about suspected perpetrators, without victim data."
                ),
                "registration": (
                    "Een pseudonieme registratie voor de landelijke cijfers.", "A pseudonymous registration for the national figures."
                ),
            ]
            _ = member
            return pages.page(
                "choose",
                title: labels["compose.title"],
                [
                    "title": labels["compose.title"], "intro": labels["compose.choose"], "none": labels["compose.noRecipients"],
                    "csrf": context.sessions.session?.csrf ?? "",
                    "types": types.map { type in
                        [
                            "value": type.rawValue, "label": labels.type(type.rawValue),
                            "help": help[type.rawValue].map { labels.english ? $0.1 : $0.0 } ?? "",
                        ]
                    },
                ],
                context: context,
                current: "/compose"
            )
        }
        staff.post("/compose") { request, context in
            let member = try require(context) { $0.handlesMessages }
            let fields = try await FormBody.read(request, context: context)
            try FormBody.checkCSRF(fields, context: context)
            guard let type = fields["type"].flatMap(MessageType.init(rawValue:)), try await core.composableTypes().contains(type) else {
                throw KetenpostError(.deskInputInvalid, "This kind of message cannot be sent from this desk; choose one from the list.")
            }
            let draft = try core.createDraft(type: type, staff: member)
            return redirect("/drafts/\(draft.id)")
        }
        staff.get("/drafts/:id") { _, context in
            let member = try require(context) { $0.handlesMessages }
            let message = try ownDraft(context, core: core, member: member)
            if message.state != .draft { return redirect("/messages/\(message.id)") }
            let draft = try core.draft(of: message)
            return try await draftPage(message, draft, problems: .init(), saved: false, context: context, core: core, pages: pages)
        }
        staff.post("/drafts/:id") { request, context in
            let member = try require(context) { $0.handlesMessages }
            let fields = try await FormBody.read(request, context: context)
            try FormBody.checkCSRF(fields, context: context)
            let message = try ownDraft(context, core: core, member: member)
            // A second press of "send" after the first went through lands here: show the message.
            if message.state != .draft { return redirect("/messages/\(message.id)") }
            var draft = try core.draft(of: message)
            guard let type = MessageType(rawValue: draft.type) else {
                throw KetenpostError(.deskInputInvalid, "The draft's type is unknown.")
            }
            let form = PayloadForms.form(for: type)
            // The routing fields, then every payload field the form knows (nothing else is kept).
            if draft.correlationId == nil { draft.to = fields["_to"] }
            draft.priority = fields["_priority"] == "urgent" ? "urgent" : "normal"
            draft.lifetimeDays = fields["_lifetimeDays"]
            draft.region = fields["_region"]?.trimmingCharacters(in: .whitespaces).uppercased()
            draft.exploitationForm = fields["_exploitationForm"]
            draft.values = FormValues(fields.filter { !$0.key.hasPrefix("_") && Self.isFormPath($0.key, in: form) })
            if let path = fields["_add"], let list = Self.field(at: path, in: form) {
                draft.values.addRow(path, field: list)
            } else if let target = fields["_remove"], let dot = target.lastIndex(of: "."),
                let index = Int(target[target.index(after: dot)...]),
                let list = Self.field(at: String(target[..<dot]), in: form)
            {
                draft.values.removeRow(String(target[..<dot]), index: index, field: list)
            }
            try core.saveDraft(message.id, draft)
            let saved = (try core.store.message(message.id)) ?? message
            guard fields["_action"] == "send", fields["_add"] == nil, fields["_remove"] == nil else {
                return try await draftPage(
                    saved,
                    draft,
                    problems: .init(),
                    saved: fields["_action"] == "save",
                    context: context,
                    core: core,
                    pages: pages
                )
            }
            switch try await core.send(message.id, staff: member, labels: context.labels) {
            case .invalid(let problems):
                return try await draftPage(
                    saved,
                    draft,
                    problems: problems,
                    saved: false,
                    context: context,
                    core: core,
                    pages: pages,
                    status: .unprocessableContent
                )
            case .sent(let sent):
                return redirect("/messages/\(sent.id)")
            }
        }
    }

    /// A draft of this desk, made by this staff member (or any, for a team lead).
    private static func ownDraft(_ context: DeskRequestContext, core: DeskCore, member: StaffMember) throws -> DeskMessage {
        guard let id = context.parameters.get("id"), let message = try core.store.message(id.lowercased()), message.direction == .outgoing,
            message.createdBy == member.username || member.role == .teamLead
        else {
            throw KetenpostError(.deskNotFound, "There is no such draft at this desk.")
        }
        return message
    }

    /// Whether `path` names a field of `form` (so that a posted form cannot smuggle other keys into a draft).
    static func isFormPath(_ path: String, in form: FormField) -> Bool {
        if path.hasSuffix("._rows") { return field(at: String(path.dropLast(6)), in: form) != nil }
        return field(at: path, in: form) != nil
    }

    static func field(at path: String, in form: FormField) -> FormField? {
        var current = form
        let parts = path.split(separator: ".", omittingEmptySubsequences: false)
        var index = 0
        while index < parts.count {
            let part = parts[index]
            switch current.kind {
            case .object(let children):
                guard let child = children.first(where: { $0.name == part }) else { return nil }
                current = child
            case .list(let item, _, let maxItems):
                guard let row = Int(part), row >= 0, row < (maxItems ?? Limits.listItems) else { return nil }
                current = item
            default:
                return nil
            }
            index += 1
        }
        return current
    }

    private static func draftPage(
        _ message: DeskMessage,
        _ draft: DeskCore.Draft,
        problems: DeskCore.Problems,
        saved: Bool,
        context: DeskRequestContext,
        core: DeskCore,
        pages: DeskPages,
        status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let labels = context.labels
        guard let type = MessageType(rawValue: draft.type) else { throw KetenpostError(.deskInputInvalid, "The draft's type is unknown.") }
        let form = PayloadForms.form(for: type)
        let recipients = try await core.recipients(for: type)
        let fixed = draft.correlationId != nil ? draft.to : nil
        var recipientOptions = recipients.map {
            ["value": $0.id, "label": "\($0.name) (\(labels.value($0.role)))", "selected": $0.id == draft.to] as [String: Any]
        }
        if let fixed, !recipients.contains(where: { $0.id == fixed }) {
            recipientOptions.append(["value": fixed, "label": await core.partnerName(fixed), "selected": true])
        }
        func firstError(_ path: String) -> String { problems.fields[path]?.joined(separator: " ") ?? "" }
        var errorList: [[String: Any]] = []
        for (path, sentences) in problems.fields.sorted(by: { $0.key < $1.key }) {
            let name: String
            switch path {
            case "_to": name = labels["compose.to"]
            case "_region": name = labels["compose.region"]
            case "_lifetimeDays": name = labels["compose.expires"]
            default:
                name =
                    (Self.field(at: path, in: form).map { labels.field($0) } ?? path)
                    + (path.split(separator: ".").last.flatMap { Int($0) }.map { " \($0 + 1)" } ?? "")
            }
            errorList.append([
                "anchor": "f-" + path.replacingOccurrences(of: ".", with: "-"), "field": name, "text": sentences.joined(separator: " "),
            ])
        }
        var formErrors = problems.fields
        formErrors.removeValue(forKey: "_to")
        let formHTML = FormHTML(labels: labels, values: draft.values, errors: formErrors).render(form)
        let values: [String: Any] = [
            "title": "\(labels["compose.title"]): \(labels.type(type.rawValue))",
            "id": message.id, "csrf": context.sessions.session?.csrf ?? "",
            "answering": draft.correlationId ?? "", "answeringLabel": labels["compose.answering"],
            "answeringType": type == .intakeResponse ? labels.type("intake-notice") : labels.type("referral"),
            "saved": saved ? labels["compose.saved"] : "",
            "hasErrors": !problems.isEmpty, "errors": errorList, "errorsLabel": labels["compose.errors"],
            "routingLabel": labels.english ? "Recipient and delivery" : "Ontvanger en bezorging",
            "toLabel": labels["compose.to"], "toHelp": recipients.isEmpty ? labels["compose.noRecipients"] : labels["compose.to.help"],
            "toError": firstError("_to"), "requiredLabel": labels["compose.required"], "noneLabel": labels["compose.none"],
            "recipients": recipientOptions, "fixedRecipient": fixed ?? "",
            "priorityLabel": labels["compose.priority"],
            "priorities": Priority.allCases.map {
                ["value": $0.rawValue, "label": labels.value($0.rawValue), "selected": $0.rawValue == draft.priority]
            },
            "lifetimeLabel": labels["compose.expires"], "lifetimeHelp": labels["compose.expires.help"],
            "lifetimeDays": draft.lifetimeDays ?? String(Int(Drafting.defaultLifetime(for: type) / 86_400)),
            "lifetimeError": firstError("_lifetimeDays"),
            "statisticsLabel": labels["compose.labels"], "regionLabel": labels["compose.region"], "region": draft.region ?? "",
            "regionError": firstError("_region"), "exploitationLabel": labels["compose.exploitation"],
            "exploitationForms": [["value": "", "label": labels["compose.none"], "selected": (draft.exploitationForm ?? "").isEmpty]]
                + ExploitationForm.allCases.map {
                    ["value": $0.rawValue, "label": labels.value($0.rawValue), "selected": $0.rawValue == draft.exploitationForm]
                        as [String: Any]
                },
            "contentLabel": labels["message.content"], "form": formHTML,
            "sendLabel": labels["compose.send"], "saveLabel": labels["compose.save"],
        ]
        return pages.page("draft", title: labels["compose.title"], values, context: context, current: "/compose", status: status)
    }

    // MARK: A message

    /// A message of this desk that this staff member may see: caseworkers their own sent ones and
    /// received ones assigned to them or nobody; team leads all.
    static func visibleMessage(_ context: DeskRequestContext, core: DeskCore, member: StaffMember) throws -> DeskMessage {
        guard let id = context.parameters.get("id"), UUID(uuidString: id) != nil, let message = try core.store.message(id.lowercased())
        else {
            throw KetenpostError(.deskNotFound, "There is no such message at this desk.")
        }
        if member.role == .caseworker {
            let visible =
                message.direction == .outgoing
                ? message.createdBy == member.username : (message.assignedTo == nil || message.assignedTo == member.username)
            guard visible else { throw KetenpostError(.deskNotFound, "There is no such message at this desk.") }
        }
        return message
    }

    private static func addMessage(_ staff: RouterGroup<DeskRequestContext>, core: DeskCore, pages: DeskPages) {
        staff.get("/messages/:id") { _, context in
            let member = try require(context) { $0.handlesMessages }
            var message = try visibleMessage(context, core: core, member: member)
            if message.state == .draft { return redirect("/drafts/\(message.id)") }
            // The view is logged before anything is shown; the first view of a new message opens it.
            let event = AccessEvent(staff: member.username, role: member.role.rawValue, action: .view, messageId: message.id)
            if message.direction == .incoming && message.state == .new {
                message = try core.store.update(message.id, when: { $0.state == .new }, event: event) { $0.state = .opened } ?? message
                if message.state == .new { try core.store.accessLog.recordEvent(event) }
            } else {
                try core.store.accessLog.recordEvent(event)
            }
            return try await messagePage(message, member: member, context: context, core: core, pages: pages)
        }
        staff.post("/messages/:id/answer") { request, context in
            let member = try require(context) { $0.handlesMessages }
            let fields = try await FormBody.read(request, context: context)
            try FormBody.checkCSRF(fields, context: context)
            let message = try visibleMessage(context, core: core, member: member)
            guard message.direction == .incoming, let type = MessageType(rawValue: message.type),
                let answerType = MessageType.allCases.first(where: { $0.answers == type }), message.state != .refused
            else {
                throw KetenpostError(.deskWrongState, "Only a received intake notice or referral can be answered.")
            }
            // One answer draft per message: pressing "answer" again opens the same draft.
            if let existing = try core.store.answers(to: message.id).first(where: { $0.direction == .outgoing && $0.state == .draft }) {
                return redirect("/drafts/\(existing.id)")
            }
            let draft = try core.createDraft(type: answerType, staff: member, answering: message)
            return redirect("/drafts/\(draft.id)")
        }
        staff.post("/messages/:id/assign") { request, context in
            let member = try require(context) { $0 == .teamLead }
            let fields = try await FormBody.read(request, context: context)
            try FormBody.checkCSRF(fields, context: context)
            let message = try visibleMessage(context, core: core, member: member)
            let assignee = fields["assignee"] ?? ""
            if !assignee.isEmpty {
                guard let target = try core.store.staff(assignee), target.role.handlesMessages, !target.disabled else {
                    throw KetenpostError(.deskInputInvalid, "Messages can be assigned only to active caseworkers and team leads.")
                }
            }
            let event = AccessEvent(
                staff: member.username,
                role: member.role.rawValue,
                action: .assign,
                messageId: message.id,
                detail: assignee.isEmpty ? "unassigned" : "to \(assignee)"
            )
            try core.store.update(message.id, event: event) { $0.assignedTo = assignee.isEmpty ? nil : assignee }
            return redirect("/messages/\(message.id)")
        }
        staff.get("/messages/:id/evidence.zip") { _, context in
            let member = try require(context) { $0.handlesMessages }
            let message = try visibleMessage(context, core: core, member: member)
            guard message.sealed != nil, message.state != .draft else {
                throw KetenpostError(.deskWrongState, "There is no evidence for a draft; send it first.")
            }
            return try await Evidence.download(
                message,
                core: core,
                by: AccessEvent.Actor(staff: member.username, role: member.role.rawValue),
                english: context.labels.english
            )
        }
    }

    private static func messagePage(
        _ message: DeskMessage,
        member: StaffMember,
        context: DeskRequestContext,
        core: DeskCore,
        pages: DeskPages
    ) async throws -> Response {
        let labels = context.labels
        let english = labels.english
        func time(_ ms: Int64?) -> String { ms.map { DeskFormat.dateTime(milliseconds: $0, english: english) } ?? "" }
        var meta: [[String: Any]] = [
            ["label": labels["list.type"], "value": labels.type(message.type)],
            [
                "label": message.direction == .incoming ? labels["list.from"] : labels["list.to"],
                "value": "\(await core.partnerName(message.counterpart)) (\(message.counterpart))",
            ],
            ["label": labels["list.priority"], "value": labels.value(message.priority)],
            ["label": labels["message.id"], "value": message.id],
        ]
        if let sent = message.sentAt { meta.append(["label": labels.english ? "Sent" : "Verzonden", "value": time(sent)]) }
        if message.direction == .incoming { meta.append(["label": labels["list.received"], "value": time(message.createdAt)]) }
        if let expires = message.expiresAt { meta.append(["label": labels["message.expires"], "value": time(expires)]) }
        if let by = message.createdBy { meta.append(["label": labels["message.sentby"], "value": by]) }
        if let assigned = message.assignedTo { meta.append(["label": labels["list.assigned"], "value": assigned]) }
        var contentHTML = ""
        var correlation: String?
        if message.state != .refused {
            let content = try core.content(of: message)
            correlation = content.header.correlationId?.uuidString.lowercased()
            let json = try JSONSerialization.jsonObject(with: try KetenpostJSON.encoder().encode(content.payload))
            contentHTML = PayloadHTML(labels: labels).render(json, form: PayloadForms.form(for: content.payload.type))
            if let region = content.header.region { meta.append(["label": labels["compose.region"], "value": region]) }
            if let form = content.header.exploitationForm {
                meta.append(["label": labels["compose.exploitation"], "value": labels.value(form.rawValue)])
            }
        }
        // The timeline: delivery layer, then the business answer.
        var timeline: [[String: Any]] = []
        if message.direction == .outgoing {
            let order: [DeskState] = [.accepted, .delivered, .acknowledged]
            let reached = order.firstIndex(of: message.state).map { order[...$0] } ?? []
            func step(_ key: String, done: Bool, when: String = "", failure: Bool = false) {
                timeline.append([
                    "label": labels[key], "when": done ? when : labels["timeline.pending"],
                    "stepClass": failure ? "failure" : done ? "done" : "pending",
                ])
            }
            step("timeline.sealed", done: message.sealed != nil, when: time(message.sentAt))
            step("timeline.accepted", done: message.acceptanceReceipt != nil)
            step("timeline.delivered", done: reached.contains(.delivered) || message.recipientReceipt != nil || message.state == .rejected)
            if message.state.isFailure {
                timeline.append(["label": labels.state(message.state), "when": message.reasonCode ?? "", "stepClass": "failure"])
            } else {
                step("timeline.acknowledged", done: message.state == .acknowledged)
            }
            if MessageType(rawValue: message.type).map({ t in MessageType.allCases.contains { $0.answers == t } }) == true {
                step(
                    "timeline.answered",
                    done: message.outcome != nil,
                    when: message.outcome.map { labels.value($0) + " · " + time(message.answeredAt) } ?? ""
                )
            }
        }
        let nextStep: String =
            switch message.state {
            case .rejected: labels["next.rejected"]
            case .expired: labels["next.expired"]
            case .dead: labels["next.dead"]
            case .failed: labels["next.failed"]
            case .sending: labels["next.sending"]
            default: ""
            }
        // The case: what this message answers, and every answer to it.
        var related = try core.store.answers(to: message.id)
        if let correlation, let original = try core.store.message(correlation) { related.insert(original, at: 0) }
        let caseRows: [[String: Any]] = related.filter { $0.id != message.id && $0.state != .draft }.map { m in
            [
                "id": m.id, "type": labels.type(m.type), "time": time(m.createdAt), "state": labels.state(m.state),
                "stateClass": stateClass(m.state),
                "direction": m.direction == .incoming ? labels["list.received"] : labels["nav.sent"],
                "outcome": m.outcome.map { labels.value($0) } ?? "",
            ]
        }
        let answerable =
            message.direction == .incoming && message.state != .refused
            && MessageType(rawValue: message.type).map { t in MessageType.allCases.contains { $0.answers == t } } == true
        var staffOptions: [[String: Any]] = []
        if member.role == .teamLead {
            staffOptions.append(["value": "", "label": labels["compose.none"], "selected": message.assignedTo == nil])
            for s in (try core.store.allStaff()).filter({ $0.role.handlesMessages && !$0.disabled }) {
                staffOptions.append([
                    "value": s.username, "label": "\(s.displayName) (\(s.username))", "selected": s.username == message.assignedTo,
                ])
            }
        }
        let outcomeText = message.outcome.map { labels.value($0) + (message.outcomeReason.map { " (\(labels.value($0)))" } ?? "") } ?? ""
        let values: [String: Any] = [
            "title": "\(labels.type(message.type))", "id": message.id, "csrf": context.sessions.session?.csrf ?? "",
            "state": labels.state(message.state), "stateClass": stateClass(message.state), "outcome": outcomeText,
            "nextStep": nextStep, "reason": message.reasonCode ?? "", "reasonLabel": labels["error.code"],
            "refused": message.state == .refused ? labels["message.refused"] : "",
            "aboutLabel": labels["message.header"], "meta": meta,
            "hasTimeline": !timeline.isEmpty, "timeline": timeline, "timelineLabel": labels["message.timeline"],
            "canAnswer": answerable && message.answerId == nil, "answerLabel": labels["message.answer"],
            "canEvidence": message.sealed != nil, "evidenceLabel": labels["message.evidence"],
            "canAssign": member.role == .teamLead && message.direction == .incoming, "assignLabel": labels["message.assign"],
            "staffOptions": staffOptions,
            "hasContent": !contentHTML.isEmpty, "content": contentHTML, "contentLabel": labels["message.content"],
            "hasCase": !caseRows.isEmpty, "case": caseRows, "caseLabel": labels["message.answers"],
        ]
        return pages.page(
            "message",
            title: labels.type(message.type),
            values,
            context: context,
            current: message.direction == .incoming ? "/inbox" : "/sent"
        )
    }

    // MARK: Access log and staff

    private static func addLog(_ staff: RouterGroup<DeskRequestContext>, core: DeskCore, pages: DeskPages) {
        @Sendable func entries(_ request: Request) throws -> (staff: String?, message: String?, [AccessEntry]) {
            let parameters = request.uri.queryParameters
            let staffFilter = parameters.get("staff").map { String($0) }.flatMap { $0.isEmpty ? nil : $0 }
            let messageFilter = parameters.get("message").map { String($0).lowercased() }.flatMap { $0.isEmpty ? nil : $0 }
            if let staffFilter, !StaffMember.isValidUsername(staffFilter) && staffFilter != "(command line)" {
                throw KetenpostError(.deskInputInvalid, "That is not a username.")
            }
            if let messageFilter, UUID(uuidString: messageFilter) == nil {
                throw KetenpostError(.deskInputInvalid, "That is not a message id.")
            }
            let all = try core.store.accessLog.entries(message: messageFilter, staff: staffFilter, limit: 100_000)
            return (staffFilter, messageFilter, all)
        }
        staff.get("/log") { request, context in
            let member = try require(context) { $0 == .logReader }
            let labels = context.labels
            let (staffFilter, messageFilter, all) = try entries(request)
            // Reading the log is itself logged.
            try core.store.accessLog.recordEvent(
                AccessEvent(
                    staff: member.username,
                    role: member.role.rawValue,
                    action: .logRead,
                    messageId: messageFilter,
                    detail: staffFilter.map { "staff \($0)" }
                )
            )
            let verification = try core.store.accessLog.verify()
            let shown = all.suffix(500).reversed()
            let values: [String: Any] = [
                "title": labels["log.title"],
                "verification": verification.intact
                    ? "\(labels["log.intact"]) (\(verification.entries))" : "\(labels["log.broken"]) \(verification.firstBroken ?? 0).",
                "verifyClass": verification.intact ? "" : "alert",
                "staff": staffFilter ?? "", "message": messageFilter ?? "",
                "staffLabel": labels["log.staff"], "messageLabel": labels["log.message"], "filterLabel": labels["list.filter"],
                "csvLabel": labels["log.csv"], "timeLabel": labels["log.time"], "roleLabel": labels["log.role"],
                "actionLabel": labels["log.action"], "detailLabel": labels["log.detail"],
                "entries": shown.map { e in
                    [
                        "sequence": e.sequence, "time": DeskFormat.dateTime(milliseconds: e.at, english: labels.english), "staff": e.staff,
                        "role": StaffRole(rawValue: e.role).map { labels.role($0) } ?? e.role,
                        "action": "\(labels.action(e.action)) (\(e.action))", "message": e.messageId ?? "", "detail": e.detail ?? "",
                    ] as [String: Any]
                },
            ]
            return pages.page("log", title: labels["log.title"], values, context: context, current: "/log")
        }
        staff.get("/log.csv") { request, context in
            let member = try require(context) { $0 == .logReader }
            let (staffFilter, messageFilter, all) = try entries(request)
            try core.store.accessLog.recordEvent(
                AccessEvent(staff: member.username, role: member.role.rawValue, action: .export, messageId: messageFilter, detail: "csv")
            )
            var response = Response(
                status: .ok,
                headers: [.contentType: "text/csv; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: SQLiteAccessLog.csv(all)))
            )
            let suffix = staffFilter ?? messageFilter ?? "all"
            response.headers[.contentDisposition] = "attachment; filename=\"ketenpost-access-log-\(suffix).csv\""
            return response
        }
    }

    private static func addUsers(_ staff: RouterGroup<DeskRequestContext>, core: DeskCore, pages: DeskPages) {
        staff.get("/users") { _, context in
            _ = try require(context) { $0 == .administrator }
            let labels = context.labels
            let now = Date()
            let values: [String: Any] = [
                "title": labels["users.title"],
                "intro": labels.english
                    ? "Accounts are added, reset and disabled on the desk's machine: ketenpost desk users add|reset|disable."
                    : "Accounts maakt, herstelt en blokkeert u op de server van de desk: ketenpost desk users add|reset|disable.",
                "usernameLabel": labels["users.username"], "nameLabel": labels["users.name"], "roleLabel": labels["users.role"],
                "secondFactorLabel": labels["users.secondFactor"], "stateLabel": labels["users.state"],
                "users": try core.store.allStaff().map { s in
                    [
                        "username": s.username, "name": s.displayName, "role": labels.role(s.role),
                        "secondFactor": s.totpSecret != nil ? labels["yes"] : labels["no"],
                        "state": s.disabled
                            ? labels["users.disabled"] : s.isLocked(at: now) ? labels["users.locked"] : labels["users.active"],
                    ] as [String: Any]
                },
            ]
            return pages.page("users", title: labels["users.title"], values, context: context, current: "/users")
        }
    }
}

extension Labels {
    /// The sentence for an error in the screen's language: Dutch for the desk's own codes.
    static func sentence(_ error: any Error, _ labels: Labels) -> String {
        guard let error = error as? KetenpostError else { return labels.english ? "Something went wrong." : "Er ging iets mis." }
        if labels.english { return error.message }
        if let dutch = errorNL[error.code.rawValue] { return dutch }
        // Codes from the relay and the envelope: a Dutch sentence per family, never English on a
        // Dutch screen; the code below it is what an administrator looks up.
        let family = error.code.rawValue.split(separator: ".").first.map(String.init) ?? ""
        return errorFamilyNL[family]
            ?? "Dit lukte niet; er is niets gewijzigd. Vraag uw beheerder de foutcode hieronder na te kijken."
    }

    static let errorFamilyNL: [String: String] = [
        "envelope":
            """
        Het bericht kon niet worden geopend of de ondertekening klopt niet. Er is niets gewijzigd. Vraag uw beheerder de foutcode \
        hieronder na te kijken.
        """,
        "receipt": "Een ontvangstbewijs klopt niet. Er is niets gewijzigd. Vraag uw beheerder de foutcode hieronder na te kijken.",
        "certificate":
            "Een certificaat is verlopen, ingetrokken of niet vertrouwd. Vraag uw beheerder de foutcode hieronder na te kijken.",
        "policy": "De afspraken in de keten staan dit bericht aan deze ontvanger niet toe. Kies een andere ontvanger of soort bericht.",
        "payload": "De inhoud van het bericht voldoet niet aan het berichtformaat. Controleer het formulier en probeer het opnieuw.",
        "message": "Dit kan niet meer met dit bericht (verlopen of al afgehandeld). Bekijk het bericht voor de actuele status.",
    ]

    static let errorNL: [String: String] = [
        "desk.sign-in-failed":
            """
        De gebruikersnaam, het wachtwoord of de code klopt niet. Controleer ze en probeer het opnieuw; na meerdere mislukte \
        pogingen wordt het account geblokkeerd.
        """,
        "desk.account-locked":
            "Dit account is geblokkeerd of uitgeschakeld. Wacht even, of vraag uw beheerder het te deblokkeren.",
        "desk.csrf": "Het formulier kwam niet van deze desk of was te oud. Ga terug, laad de pagina opnieuw en probeer het nog eens.",
        "desk.forbidden": "Uw rol geeft geen toegang tot deze pagina. Vraag uw beheerder als u die nodig hebt.",
        "desk.not-found": "Dit bericht of deze pagina bestaat niet op deze desk.",
        "desk.input-invalid":
            "Het formulier kon niet worden gelezen of een veld is te lang. Controleer wat u invulde en probeer het opnieuw.",
        "desk.wrong-state": "Dit kan niet meer in de huidige stand van het bericht; bekijk het bericht voor de actuele status.",
        "desk.relay-unavailable": "De relay is nu niet bereikbaar. Het bericht blijft klaarstaan en wordt later verzonden.",
        "store.unavailable": "De desk kan niet in zijn database schrijven; er is niets gewijzigd. Waarschuw uw beheerder.",
        "internal": "De desk liep onverwacht vast; er is niets verzonden. Probeer het opnieuw en meld het als het blijft gebeuren.",
    ]
}
