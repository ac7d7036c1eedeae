import AsyncHTTPClient
import Foundation
import KetenpostDesk
import Logging
import NIOCore
import Testing

/// The desk in a real browser (headless Chromium over WebDriver), as the people who use it would
/// go through it: a municipality caseworker sends an intake notice and fixes the error the form
/// shows; the shelter's intake worker opens it and accepts it; the municipality sees it
/// acknowledged and accepted. Screenshots of every step are kept (KETENPOST_SCREENSHOTS=DIR).
@Suite(.serialized) struct DeskBrowserTests {
    static let municipality = DeskHarness.municipality
    static let shelter = DeskHarness.shelter

    static var screenshots: URL {
        if let folder = ProcessInfo.processInfo.environment["KETENPOST_SCREENSHOTS"] {
            return URL(fileURLWithPath: folder)
        }
        return FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-desk-screenshots")
    }

    @Test func aCaseworkerAndAnIntakeWorkerCloseTheLoopInChromium() async throws {
        guard WebDriver.chromium != nil, WebDriver.chromedriver != nil else {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                Issue.record("chromium and chromium-driver are not installed; .ci/run must install them")
            } else {
                print("⚠️  SKIPPED DeskBrowserTests: install Debian's chromium and chromium-driver to check the desk in a real browser")
            }
            return
        }
        let folder = Self.screenshots
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            try await h.addStaff(Self.shelter, "i.peters", role: .caseworker)
            let logSecret = try #require(try await h.addStaff(Self.shelter, "l.smit", role: .logReader))
            let logger = Logger(label: "test.desk", factory: { _ in SwiftLogNoOpLogHandler() })
            let municipality = try await RunningDesk.start(try h.desk(Self.municipality, adjust: { $0.inbox.pollWait = 1 }), logger: logger)
            let shelter = try await RunningDesk.start(try h.desk(Self.shelter, adjust: { $0.inbox.pollWait = 1 }), logger: logger)
            let browser = try await WebDriver.start()
            do {
                let m = "http://127.0.0.1:\(municipality.port)"
                let s = "http://127.0.0.1:\(shelter.port)"
                // 1. The caseworker signs in.
                try await browser.open("\(m)/signin")
                try await browser.screenshot("01-sign-in", into: folder)
                try await browser.type("#username", "a.jansen")
                try await browser.type("#password", DeskHarness.password)
                try await browser.submit("form.narrow button[type=submit]")
                #expect(try await browser.url.hasSuffix("/inbox"))
                try await browser.screenshot("02-inbox-empty", into: folder)
                // 2. Composes an intake notice, with a language code in capitals.
                try await browser.open("\(m)/compose")
                try await browser.screenshot("03-choose-type", into: folder)
                try await browser.submit("form:has(input[value=\"intake-notice\"]) button")
                try await browser.select("#f-_to", value: Self.shelter)
                try await browser.select("#f-_priority", value: "urgent")
                try await browser.type("#f-person-alias", "Rosa")
                try await browser.setValue("#f-person-dateOfBirth", "2003-09-30")
                try await browser.select("#f-person-gender", value: "female")
                try await browser.type("#f-languages-0", "RO")
                try await browser.select("#f-urgency", value: "acute")
                try await browser.type("#f-referrer-organisation", Self.municipality)
                try await browser.type("#f-referrer-name", "Anna Jansen")
                try await browser.type("#f-referrer-phone", "043-1234567")
                try await browser.select("#f-legalBasis", value: "vital-interest")
                try await browser.submit("button[value=send]")
                // The form shows what is wrong, next to the field, and keeps what was typed.
                let errorPage = try await browser.text
                #expect(errorPage.contains("Het bericht is nog niet verzonden"))
                #expect(errorPage.contains("Gebruik taalcodes van twee kleine letters"))
                #expect(errorPage.contains("Dit veld is verplicht"))  // the requested arrival is missing
                try await browser.screenshot("04-form-with-errors", into: folder)
                try await browser.type("#f-languages-0", "ro")
                try await browser.setValue("#f-requestedArrival", "2026-12-05T21:00")
                try await browser.submit("button[value=send]")
                let sentURL = try await browser.url
                #expect(sentURL.contains("/messages/"))
                let messageID = String(sentURL.split(separator: "/").last ?? "")
                #expect(try await browser.text.contains("Aangenomen door de relay"))
                try await browser.screenshot("05-sent", into: folder)
                // 3. The shelter's intake worker sees it as new, opens it and accepts.
                try await browser.open("\(s)/signin")
                try await browser.type("#username", "i.peters")
                try await browser.type("#password", DeskHarness.password)
                try await browser.submit("form.narrow button[type=submit]")
                try await browser.waitFor("Nieuw", at: "\(s)/inbox")
                // The header names the desk's own organisation, as the relay's directory has it.
                #expect(try await browser.text.contains("Opvang Zuid-Limburg"))
                try await browser.screenshot("06-shelter-inbox-new", into: folder)
                try await browser.open("\(s)/messages/\(messageID)")
                let received = try await browser.text
                #expect(received.contains("Rosa") && received.contains("30-09-2003") && received.contains("acuut"))
                try await browser.screenshot("07-shelter-reads", into: folder)
                try await browser.submit("form[action$=\"/answer\"] button")
                try await browser.select("#f-outcome", value: "accepted")
                try await browser.type("#f-arrivalInstructions", "Vanavond om 21.00 uur bij de achteringang; vraag naar Ilse.")
                try await browser.select("#f-legalBasis", value: "vital-interest")
                try await browser.screenshot("08-shelter-answers", into: folder)
                try await browser.submit("button[value=send]")
                #expect(try await browser.text.contains("Aangenomen door de relay"))
                // 4. The municipality's sent view: acknowledged by the shelter's receipt, and accepted.
                // Steps 4 and 5 of the timeline (acknowledged, answered) done, not merely named.
                try await browser.waitFor(element: "ol.timeline li.done:nth-child(4)", at: "\(m)/messages/\(messageID)")
                try await browser.waitFor(element: "ol.timeline li.done:nth-child(5)", at: "\(m)/messages/\(messageID)")
                #expect(try await browser.text.contains("aangenomen"))
                try await browser.screenshot("09-municipality-sees-acknowledged-and-accepted", into: folder)
                try await browser.open("\(m)/sent")
                try await browser.screenshot("10-sent-list", into: folder)
                // 5. The evidence package verifies with openssl.
                let cookies = try await browser.cookies()
                var request = HTTPClientRequest(url: "\(m)/messages/\(messageID)/evidence.zip")
                request.headers.add(name: "Cookie", value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "))
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                #expect(response.status == .ok)
                let zip = Data(try await response.body.collect(upTo: 16 << 20).readableBytesView)
                try EvidenceCheck.verify(zip, expect: ["message.cms", "acceptance-receipt.cms", "recipient-receipt.cms"])
                // 6. The shelter's log reader sees the intake worker's view of it.
                try await browser.open("\(s)/signin")
                try await browser.type("#username", "l.smit")
                try await browser.type("#password", DeskHarness.password)
                try await browser.type("#code", StaffAccounts.currentCode(secret: logSecret))
                try await browser.submit("form.narrow button[type=submit]")
                try await browser.open("\(s)/log?message=\(messageID)")
                let log = try await browser.text
                #expect(log.contains("i.peters") && log.contains("view") && log.contains("answer"))
                try await browser.screenshot("11-access-log", into: folder)
                // And the municipality's log holds the caseworker's view of her sent message.
                let views = try municipality.core.store.accessLog.entries(message: messageID).filter { $0.action == "view" }
                #expect(views.contains { $0.staff == "a.jansen" })
                // 7. The same pages in English when the browser asks for it.
                try await browser.open("\(m)/sent?lang=en")
                #expect(try await browser.text.contains("Sent messages"))
            } catch {
                await browser.quit()
                await municipality.stop()
                await shelter.stop()
                throw error
            }
            await browser.quit()
            await municipality.stop()
            await shelter.stop()
        }
    }
}
