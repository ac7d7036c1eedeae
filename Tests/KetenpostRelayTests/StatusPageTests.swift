import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostConfiguration
import KetenpostCrypto
import KetenpostRelay
import Testing

/// The administrators' status page, rendered by a real headless Chromium after a scripted flow.
@Suite struct StatusPageTests {
    /// Debian's `chromium`; `.ci/run` installs it, so in CI its absence is a failure.
    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        }
    }

    @Test func aPopulatedStatusPageRendersInChromium() async throws {
        guard let chromium = Self.chromium else {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                Issue.record("chromium is not installed; .ci/run must install it")
            } else {
                print("⚠️  SKIPPED StatusPageTests: install Debian's chromium to check the status page in a real browser")
            }
            return
        }
        try await withRelay({ $0.admin.listen = HostPort(host: "127.0.0.1", port: 0) }) { h in
            let statusPort = try #require(h.relay.statusPort)
            let admin = try h.admin()
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            // Traffic: two signals (one rejected), one referral left waiting for the shelter.
            for _ in 0..<2 { _ = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator) }
            _ = try await sender.send(payload: try h.example(.referral), type: .referral, to: shelter)
            let received = try await recipient.receive(max: 10)
            try await recipient.acknowledge(received[0])
            try await recipient.acknowledge(received[1], rejectedWith: "payload.invalid")
            // Certificates: a rotation in progress, a revocation, one expiring soon, a suspension.
            let next = try h.issue(coordinator)
            _ = try await admin.adminRotate(
                coordinator,
                API.AdminRotation(certificate: API.AdminCertificateInput(pem: next.certificate.pem), overlapSeconds: 86_400)
            )
            let maastricht = try Certificate.load(pemFile: h.shared.pki.partnerDirectory("gemeente-maastricht") + "/cert.pem")[0]
            _ = try await admin.adminRevoke(fingerprint: maastricht.fingerprint, reason: "key-compromise")
            let soon = try h.issue(shelter, validDays: 10)
            _ = try await admin.adminAddCertificate(shelter, API.AdminCertificateInput(pem: soon.certificate.pem))
            _ = try await admin.adminSuspend("politie-avim-limburg")

            let url = "http://127.0.0.1:\(statusPort)/status"
            let flags = "--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --window-size=1280,1800"
            let dom = try await shell("'\(chromium)' \(flags) --dump-dom '\(url)' 2>/dev/null")
            #expect(dom.status == 0)
            let page = dom.stdout
            #expect(page.contains("<table id=\"partners\""), "\(page.prefix(500))")
            #expect(page.contains("id=\"partner-politie-avim-limburg\"") && page.contains("<span class=\"tag suspended\">suspended</span>"))
            #expect(page.contains("revoked: key-compromise"))
            #expect(page.contains("refused: certificate.revoked"), "the CA's CRL revokes gemeente-ingetrokken")
            #expect(page.contains("expires soon"))
            #expect(page.contains("<table id=\"rotations\"") && page.contains("retiring"))
            #expect(page.contains("<td>\(shelter)</td><td class=\"num\">1</td>"))
            #expect(page.contains("rejected") && page.contains("reason=payload.invalid"))
            // Metadata only: no message content.
            #expect(!page.contains("dossier") && !page.contains("Nationality"))

            let screenshot = h.work.appendingPathComponent("status.png")
            let shot = try await shell(
                "cd '\(h.work.path)' && '\(chromium)' \(flags) --screenshot='\(screenshot.path)' '\(url)' 2>/dev/null"
            )
            #expect(shot.status == 0)
            let png = try Data(contentsOf: screenshot)
            // KETENPOST_SCREENSHOTS=DIR keeps the screenshot, to look at it as an administrator would.
            if let keep = ProcessInfo.processInfo.environment["KETENPOST_SCREENSHOTS"] {
                try png.write(to: URL(fileURLWithPath: keep).appendingPathComponent("status-page.png"))
            }
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 20_000, "screenshot of \(png.count) bytes")
            // Width from the PNG header: the page was laid out at the window width.
            let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) }
            #expect(width == 1280)
            if let keep = ProcessInfo.processInfo.environment["KETENPOST_STATUS_SCREENSHOT"] {
                try? png.write(to: URL(fileURLWithPath: keep))
            }

            // The same page on the main port for administrators only.
            let me = h.shared.identityDirectory(municipality)
            let partner = try await shell(
                """
                curl -sS --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(me)/cert.pem' --key '\(me)/key.pem' \
                \(h.url.absoluteString)/v1/admin/status
                """
            )
            #expect(partner.stdout.contains("auth.not-administrator"))
        }
    }

    @Test func theUnauthenticatedPageMustStayOnLoopback() throws {
        #expect(throws: KetenpostError.self) { _ = try RelayConfiguration.parse("admin:\n  listen: 0.0.0.0:9465\n", file: "k.yaml") }
        let ok = try RelayConfiguration.parse("admin:\n  listen: 127.0.0.1:9465\n", file: "k.yaml")
        #expect(ok.admin.listen == HostPort(host: "127.0.0.1", port: 9465))
    }
}
