import Foundation
import Hummingbird
import KetenpostDesk
import Testing

/// The desk end to end through its router, with a real relay behind it: a municipality sends an
/// intake notice, the shelter answers it, and the municipality sees delivery and the answer.
@Suite(.serialized) struct DeskFlowTests {
    static let municipality = DeskHarness.municipality
    static let shelter = DeskHarness.shelter
    /// Canaries: these strings are typed into forms and must never reach a log or the desks' files.
    static let canaryAlias = "Kanarie-Roos-7731"
    static let canaryInstructions = "Achteringang-Kanarie-4410 om 21.00 uur"

    static func intakeFields(languages: [String]) -> [(String, String)] {
        var fields: [(String, String)] = [
            ("_to", shelter), ("_priority", "urgent"), ("_lifetimeDays", "3"), ("_region", "GM1903"), ("_exploitationForm", "sexual"),
            ("person.alias", canaryAlias), ("person.dateOfBirth", "2003-09-30"), ("person.gender", "female"),
            ("languages._rows", String(languages.count)), ("dependants._rows", "0"), ("safetyRisks._rows", "0"),
            ("urgency", "acute"), ("requestedArrival", "2026-12-05T21:00"),
            ("referrer.organisation", municipality), ("referrer.name", "Anna Jansen"), ("referrer.phone", "043-1234567"),
            ("legalBasis", "vital-interest"),
        ]
        for (index, language) in languages.enumerated() { fields.append(("languages.\(index)", language)) }
        return fields
    }

    @Test func intakeNoticeIsSentAnsweredAndFollowed() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            try await h.addStaff(Self.shelter, "i.peters", role: .caseworker)
            let logSecret = try await h.addStaff(Self.shelter, "l.smit", role: .logReader)
            let municipalityDesk = try h.desk(Self.municipality)
            let shelterDesk = try h.desk(Self.shelter)
            let messageID = try await withBrowser(municipalityDesk) { browser in
                #expect(try await browser.signIn("a.jansen").location == "/inbox")
                let compose = try await browser.get("/compose")
                // Only types a municipality may start, and the recipients the policy allows.
                #expect(compose.body.contains("value=\"intake-notice\"") && !compose.body.contains("value=\"intake-response\""))
                let created = try await browser.post("/compose", [("type", "intake-notice")])
                let draft = try #require(created.location)
                let form = try await browser.get(draft)
                #expect(form.body.contains("value=\"\(Self.shelter)\""))
                #expect(!form.body.contains("value=\"politie-avim-limburg\""))
                // A language code in capitals: refused next to its field, nothing sent.
                let invalid = try await browser.post(draft, Self.intakeFields(languages: ["ro", "EN"]) + [("_action", "send")])
                #expect(invalid.status == .unprocessableContent)
                #expect(invalid.body.contains("id=\"f-languages-1-error\""))
                #expect(invalid.body.contains("href=\"#f-languages-1\""))
                #expect(invalid.body.contains("value=\"EN\""))  // what was typed stays
                let sent = try await browser.post(draft, Self.intakeFields(languages: ["ro", "en"]) + [("_action", "send")])
                let location = try #require(sent.location)
                #expect(location.hasPrefix("/messages/"))
                let messageID = String(location.dropFirst("/messages/".count))
                // A second press of "send" (double click, browser retry) sends nothing more.
                let again = try await browser.post(draft, Self.intakeFields(languages: ["ro", "en"]) + [("_action", "send")])
                #expect(again.location == location)
                let page = try await browser.get(location)
                #expect(page.body.contains("Aangenomen door de relay"))
                #expect(page.body.contains(Self.canaryAlias))  // opened from the desk's own encrypted copy
                return messageID
            }
            let status = try await municipalityDesk.core.client.status(try #require(UUID(uuidString: messageID)))
            #expect(status.state == "accepted" && status.attempts == 0)
            // The shelter's desk receives (stores, then acknowledges) and shows it as new.
            #expect(try await shelterDesk.core.receiveOnce(wait: 0) == 1)
            let answerID = try await withBrowser(shelterDesk) { browser in
                try await browser.signIn("i.peters")
                let inbox = try await browser.get("/inbox?state=new")
                #expect(inbox.body.contains("/messages/\(messageID)") && inbox.body.contains("Nieuw"))
                let view = try await browser.get("/messages/\(messageID)")
                #expect(view.body.contains(Self.canaryAlias) && view.body.contains("30-09-2003") && view.body.contains("acuut"))
                #expect(try await browser.get("/inbox?state=new").body.contains("0 berichten"))
                let answer = try await browser.post("/messages/\(messageID)/answer", [])
                let draft = try #require(answer.location)
                // Answering again opens the same draft.
                #expect(try await browser.post("/messages/\(messageID)/answer", []).location == draft)
                try await browser.get(draft)
                let sent = try await browser.post(
                    draft,
                    [
                        ("outcome", "accepted"), ("arrivalInstructions", Self.canaryInstructions), ("legalBasis", "vital-interest"),
                        ("_priority", "urgent"), ("_action", "send"),
                    ]
                )
                let answerID = String(try #require(sent.location).dropFirst("/messages/".count))
                let original = try await browser.get("/messages/\(messageID)")
                #expect(original.body.contains("Beantwoord") && original.body.contains("aangenomen"))
                return answerID
            }
            // Back at the municipality: delivery confirmed by the shelter's signed receipt, and the answer.
            #expect(try await municipalityDesk.core.receiveOnce(wait: 0) == 1)
            await municipalityDesk.core.followOutgoing()
            try await withBrowser(municipalityDesk) { browser in
                try await browser.signIn("a.jansen")
                let page = try await browser.get("/messages/\(messageID)")
                #expect(page.body.contains("Ontvangst bevestigd"))
                #expect(page.body.contains("aangenomen"))
                #expect(page.body.contains("/messages/\(answerID)"))
                let answer = try await browser.get("/messages/\(answerID)")
                #expect(answer.body.contains("Achteringang-Kanarie-4410"))
                let sentList = try await browser.get("/sent")
                #expect(sentList.body.contains("1 berichten"))
                let english = try await browser.get("/sent?lang=en")
                #expect(english.body.contains("Sent messages") && english.body.contains("Receipt confirmed"))
                // The evidence package verifies with openssl.
                let zip = try await browser.client.execute(
                    uri: "/messages/\(messageID)/evidence.zip",
                    method: .get,
                    headers: [
                        .cookie: browser.cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
                    ]
                ) { Data(buffer: $0.body) }
                try EvidenceCheck.verify(zip, expect: ["message.cms", "acceptance-receipt.cms", "recipient-receipt.cms"])
            }
            // The shelter's access log shows the view, the answer and the log reader's own reading.
            try await withBrowser(shelterDesk) { browser in
                try await browser.signIn("l.smit", code: StaffAccounts.currentCode(secret: try #require(logSecret)))
                let log = try await browser.get("/log?message=\(messageID)")
                #expect(log.status == .ok)
                #expect(log.body.contains("i.peters") && log.body.contains(">bekeken (view)<"))
                #expect(!log.body.contains("(sign-in)<"), "the filter shows only entries about the message")
                #expect(log.body.contains("De keten van het log is intact"))
                #expect(try await browser.get("/log?staff=l.smit").body.contains("log-read"))
            }
            #expect(try shelterDesk.core.store.accessLog.verify().intact)
            // Nothing typed into the forms is in any log line or in the desks' files.
            for line in h.log.all {
                #expect(!line.contains(Self.canaryAlias) && !line.contains("Kanarie"), "log line leaks: \(line)")
            }
            for desk in [municipalityDesk, shelterDesk] {
                for suffix in ["", "-wal"] {
                    let path = desk.core.configuration.data.directory + "/desk.sqlite" + suffix
                    guard let bytes = FileManager.default.contents(atPath: path) else { continue }
                    #expect(bytes.range(of: Data(Self.canaryAlias.utf8)) == nil, "\(path) holds plaintext")
                    #expect(bytes.range(of: Data("Kanarie".utf8)) == nil, "\(path) holds plaintext")
                }
            }
        }
    }

    @Test func anUrgentIntakeNoticeWithoutAnswerRaisesABannerOnEveryPage() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.shelter, "i.peters", role: .caseworker)
            let desk = try h.desk(Self.shelter)  // answers are due within an hour here
            let twoHoursAgo = Int64(Date().addingTimeInterval(-7200).timeIntervalSince1970 * 1000)
            func received(priority: String, createdAt: Int64, outcome: String? = nil) throws -> String {
                let id = UUID().uuidString.lowercased()
                try desk.core.store.insert(
                    DeskMessage(
                        id: id,
                        direction: .incoming,
                        type: "intake-notice",
                        counterpart: Self.municipality,
                        priority: priority,
                        createdAt: createdAt,
                        updatedAt: createdAt,
                        state: outcome == nil ? .new : .answered,
                        sealed: Data([0x30]),
                        outcome: outcome
                    )
                )
                return id
            }
            let overdue = try received(priority: "urgent", createdAt: twoHoursAgo)
            let normal = try received(priority: "normal", createdAt: twoHoursAgo)
            let answered = try received(priority: "urgent", createdAt: twoHoursAgo, outcome: "accepted")
            let recent = try received(priority: "urgent", createdAt: Int64(Date().timeIntervalSince1970 * 1000))
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("i.peters")
                // Even on an error page (this one's sealed bytes cannot be opened), in Dutch.
                let broken = try await browser.get("/messages/\(normal)").body
                #expect(broken.contains("Het bericht kon niet worden geopend") && broken.contains("envelope.malformed"))
                for page in ["/inbox", "/sent", "/compose", "/messages/\(normal)"] {
                    let body = try await browser.get(page).body
                    #expect(body.contains("role=\"alert\"") && body.contains("Urgente aanmelding zonder antwoord"), "\(page)")
                    #expect(body.contains("href=\"/messages/\(overdue)\""), "\(page)")
                    for quiet in [answered, recent] where page != "/inbox" {
                        #expect(!body.contains("/messages/\(quiet)"), "\(page)")
                    }
                }
                // Answered: the banner goes.
                try desk.core.store.update(overdue) { $0.outcome = "accepted" }
                #expect(!(try await browser.get("/sent").body.contains("role=\"alert\"")))
            }
        }
    }
}

/// Unpacks an evidence ZIP with Python's zipfile and runs the `openssl` commands it lists.
enum EvidenceCheck {
    static func verify(_ zip: Data, expect files: [String]) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-evidence-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try zip.write(to: folder.appendingPathComponent("evidence.zip"))
        try run("python3 -c 'import zipfile; zipfile.ZipFile(\"evidence.zip\").extractall(\".\")'", in: folder)
        for file in files + ["summary.txt", "VERIFY.txt", "ca.pem"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file) missing")
        }
        let commands = try String(contentsOf: folder.appendingPathComponent("VERIFY.txt"), encoding: .utf8)
            .split(separator: "\n").filter { $0.hasPrefix("openssl cms -verify") }
        #expect(commands.count == files.count)
        for command in commands {
            let output = try run(String(command), in: folder)
            #expect(output.contains("Verification successful"), "\(command): \(output)")
        }
    }

    @discardableResult
    static func run(_ command: String, in folder: URL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command + " 2>&1"]
        process.currentDirectoryURL = folder
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw EvidenceFailure(command: command, output: output) }
        return output
    }

    struct EvidenceFailure: Error, CustomStringConvertible {
        let command: String
        let output: String
        var description: String { "\(command) failed: \(output)" }
    }
}
