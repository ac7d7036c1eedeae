import Foundation
import HTTPTypes
import Hummingbird
import KetenpostAPI
import Mustache

/// Renders the desk's pages: a page template inside the layout, with the navigation for the
/// staff member's role and the urgent banner on every page.
struct DeskPages: Sendable {
    let core: DeskCore

    static let templates: [String: MustacheTemplate] = {
        let sources: [String: String] = [
            "layout": DeskTemplates.layout, "signIn": DeskTemplates.signIn, "list": DeskTemplates.list, "choose": DeskTemplates.choose,
            "draft": DeskTemplates.draft, "message": DeskTemplates.message, "log": DeskTemplates.log, "users": DeskTemplates.users,
            "error": DeskTemplates.error, "status": StatusPage.template,
        ]
        var result: [String: MustacheTemplate] = [:]
        for (name, source) in sources {
            do { result[name] = try MustacheTemplate(string: source) } catch {
                fatalError("desk template \(name) does not parse: \(error)")  // constants; every page is rendered by a test
            }
        }
        return result
    }()

    /// A whole page.
    func page(
        _ template: String,
        title: String,
        _ values: [String: Any],
        context: DeskRequestContext,
        current: String? = nil,
        status: HTTPResponse.Status = .ok
    ) -> Response {
        let labels = context.labels
        let body = Self.templates[template]!.render(Self.compact(values))
        var layout: [String: Any] = [
            "lang": labels.english ? "en" : "nl",
            "title": title,
            "appName": labels["app.name"],
            "partnerName": core.ownName,
            "skip": labels["nav.skip"],
            "body": body,
        ]
        if let staff = context.staff {
            var nav: [[String: Any]] = []
            func item(_ href: String, _ key: String) { nav.append(["href": href, "label": labels[key], "current": current == href]) }
            if staff.role.handlesMessages {
                item("/inbox", "nav.inbox")
                item("/sent", "nav.sent")
                item("/compose", "nav.compose")
            }
            if staff.role == .logReader { item("/log", "nav.log") }
            if staff.role == .administrator { item("/users", "nav.users") }
            if staff.role == .teamLead || staff.role == .administrator { item("/status", "nav.status") }
            layout["staff"] = true
            layout["nav"] = nav
            layout["csrf"] = context.sessions.session?.csrf ?? ""
            layout["signedInAs"] = labels["signedInAs"]
            layout["staffName"] = staff.displayName
            layout["roleName"] = labels.role(staff.role)
            layout["signOut"] = labels["nav.signout"]
            if staff.role.handlesMessages { layout["banners"] = banners(labels) }
        }
        var response = Response(
            status: status,
            headers: [.contentType: "text/html; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: Self.templates["layout"]!.render(Self.compact(layout))))
        )
        response.headers[.contentLanguage] = labels.english ? "en" : "nl"
        return response
    }

    /// Mustache treats every string as true in `{{#x}}`; an empty one is left out so that a
    /// section like `{{#error}}` shows only when there is something to show.
    static func compact(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]:
            var result: [String: Any] = [:]
            for (key, element) in dictionary {
                if let text = element as? String, text.isEmpty { continue }
                result[key] = compact(element)
            }
            return result
        case let array as [[String: Any]]:
            return array.map { compact($0) }
        default:
            return value
        }
    }

    /// Urgent intake notices (sent or received) still without an answer after `urgentAnswerWithin`.
    private func banners(_ labels: Labels) -> [[String: Any]] {
        let cutoff = Date().addingTimeInterval(-core.configuration.inbox.urgentAnswerWithin)
        let messages = (try? core.store.unansweredUrgent(before: cutoff)) ?? []
        return messages.map { m in
            [
                "id": m.id,
                "text": labels["banner.urgent"],
                "label":
                    """
                \(labels.type(m.type)) · \(m.direction == .incoming ? labels["list.from"] : labels["list.to"]) \
                \(core.cachedName(m.counterpart)) · 
                """
                    + DeskFormat.dateTime(milliseconds: m.createdAt, english: labels.english),
            ]
        }
    }

    func error(_ error: KetenpostError, status: HTTPResponse.Status, context: DeskRequestContext) -> Response {
        let labels = context.labels
        return page(
            "error",
            title: labels["error.title"],
            [
                "title": labels["error.title"], "sentence": Labels.sentence(error, labels), "code": error.code.rawValue,
                "codeLabel": labels["error.code"],
                "back": labels["error.back"],
            ],
            context: context,
            status: status
        )
    }
}
