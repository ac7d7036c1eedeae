import Foundation
import Hummingbird
import KetenpostAPI

/// `/status`: is the desk working? The relay connection, the queue of outgoing messages, the case
/// systems' routes (webhook deliveries, watched folders). For team leads and desk administrators;
/// anything that needs a person is red, with what to do.
enum StatusPage {
    static let template = """
        <h1>{{title}}</h1>
        <p>{{intro}}</p>
        <table class="worklist status">
        <tbody>
        {{#rows}}<tr class="{{rowClass}}"><th scope="row">{{label}}</th><td><span class="state {{stateClass}}">{{state}}</span> \
        {{detail}}{{#action}}<br><strong>{{action}}</strong>{{/action}}</td></tr>{{/rows}}
        </tbody>
        </table>
        """

    static func add(to staff: RouterGroup<DeskRequestContext>, core: DeskCore, pages: DeskPages) {
        staff.get("/status") { _, context in
            _ = try DeskRoutes.require(context) { $0 == .teamLead || $0 == .administrator }
            let labels = context.labels
            let english = labels.english
            func text(_ nl: String, _ en: String) -> String { english ? en : nl }
            func time(_ date: Date?) -> String { date.map { DeskFormat.dateTime($0, english: english) } ?? "–" }
            var rows: [[String: Any]] = []
            func row(_ label: String, ok: Bool, _ state: String, _ detail: String, action: String = "") {
                rows.append([
                    "label": label, "state": state, "detail": detail, "action": action,
                    "stateClass": ok ? "done" : "failure", "rowClass": ok ? "" : "failure",
                ])
            }
            // The relay.
            let contact = core.relayContact
            let relayOK = contact.lastErrorAt == nil || (contact.lastSuccess ?? .distantPast) > (contact.lastErrorAt ?? .distantPast)
            row(
                text("Relay", "Relay"),
                ok: relayOK,
                relayOK ? text("bereikbaar", "reachable") : text("niet bereikbaar", "not reachable"),
                relayOK
                    ? text("Laatste contact: ", "Last contact: ") + time(contact.lastSuccess)
                    : text("Sinds ", "Since ") + time(contact.lastErrorAt) + " (\(contact.lastError ?? "network"))",
                action: relayOK
                    ? ""
                    : text(
                        """
                        Berichten blijven klaarstaan en worden verzonden zodra de relay er weer is. Meld het aan uw beheerder als het \
                        blijft.
                        """,
                        "Messages stay queued and are sent once the relay is back. Tell your administrator if it persists."
                    )
            )
            // Outgoing messages waiting or failed.
            var waitingQuery = DeskStore.Query(direction: .outgoing)
            waitingQuery.states = [.sending]
            let queued = try core.store.list(waitingQuery).total
            row(
                text("Wachtrij", "Queue"),
                ok: queued == 0 || relayOK,
                queued == 0 ? text("leeg", "empty") : text("\(queued) wachtend", "\(queued) waiting"),
                text("Verzegelde berichten die nog naar de relay gaan.", "Sealed messages still to go to the relay.")
            )
            var failedQuery = DeskStore.Query(direction: .outgoing)
            failedQuery.states = DeskState.allCases.filter(\.isFailure)
            let failed = try core.store.list(failedQuery).total
            row(
                text("Mislukte berichten", "Failed messages"),
                ok: failed == 0,
                failed == 0 ? text("geen", "none") : "\(failed)",
                failed == 0 ? "" : text("Zie Verzonden, filter Alle mislukte.", "See Sent, filter All failures."),
                action: failed == 0
                    ? "" : text("Open elk bericht voor de reden en wat te doen.", "Open each message for the reason and what to do.")
            )
            // Webhook.
            if core.configuration.webhooks.url != nil {
                let summary = try core.store.webhookSummary()
                let ok = summary.failing == 0 && summary.abandoned == 0
                row(
                    text("Meldingen aan het zaaksysteem (webhook)", "Notifications to the case system (webhook)"),
                    ok: ok,
                    ok ? text("werkt", "working") : text("mislukt", "failing"),
                    text(
                        """
                        \(summary.delivered) afgeleverd, \(summary.pending) wachtend, \(summary.failing) mislukt, \
                        \(summary.abandoned) opgegeven
                        """,
                        """
                        \(summary.delivered) delivered, \(summary.pending) waiting, \(summary.failing) failing, \(summary.abandoned) \
                        given up
                        """
                    ) + (summary.lastError.map { " (\($0))" } ?? ""),
                    action: ok
                        ? ""
                        : text(
                            """
                            Het zaaksysteem neemt meldingen niet aan. Vraag de beheerder van het zaaksysteem het adres en de sleutel \
                            te controleren.
                            """,
                            "The case system does not take the notifications. Ask its administrator to check the address and the secret."
                        )
                )
            } else {
                row(
                    text("Meldingen aan het zaaksysteem (webhook)", "Notifications to the case system (webhook)"),
                    ok: true,
                    text("uit", "off"),
                    ""
                )
            }
            // Watched folders.
            if let directory = core.configuration.folders.directory {
                let root = URL(fileURLWithPath: directory)
                func count(_ folder: String) -> Int {
                    ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path)) ?? [])
                        .filter { $0.hasSuffix(".json") && !$0.hasSuffix(".error.json") && !$0.hasPrefix(".") }.count
                }
                let waiting = count("outbox")
                let refused = count("failed")
                row(
                    text("Mappen voor het zaaksysteem", "Folders for the case system"),
                    ok: refused == 0,
                    refused == 0 ? text("werken", "working") : text("\(refused) geweigerd", "\(refused) refused"),
                    text("\(waiting) in outbox/, \(count("sent")) in sent/", "\(waiting) in outbox/, \(count("sent")) in sent/"),
                    action: refused == 0
                        ? ""
                        : text(
                            "Naast elk bestand in failed/ staat een .error.json met de reden. Laat het zaaksysteem ze opnieuw aanmaken.",
                            "Beside each file in failed/ an .error.json gives the reason. Have the case system make them again."
                        )
                )
            } else {
                row(text("Mappen voor het zaaksysteem", "Folders for the case system"), ok: true, text("uit", "off"), "")
            }
            let values: [String: Any] = [
                "title": text("Status van de desk", "Desk status"),
                "intro": text(
                    "Wat de desk nu doet en wat aandacht nodig heeft. Rood vraagt om actie.",
                    "What the desk is doing and what needs attention. Red needs action."
                ),
                "rows": rows,
            ]
            return pages.page("status", title: text("Status", "Status"), values, context: context, current: "/status")
        }
    }
}
