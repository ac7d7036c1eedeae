import Foundation
import Hummingbird
import KetenpostDesk
import Testing

/// What a careless or hostile browser, colleague or neighbour desk can try: each gets a clear
/// refusal, nothing is sent or changed, and nothing leaks into the logs.
@Suite(.serialized) struct DeskHostileTests {
    static let municipality = DeskHarness.municipality
    static let shelter = DeskHarness.shelter

    @Test func formsWithoutTheSessionsCSRFTokenChangeNothing() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            let desk = try h.desk(Self.municipality)
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.jansen")
                for token in ["", "0000", String(repeating: "a", count: 64)] {
                    let answer = try await browser.post("/compose", [("type", "signal"), ("_csrf", token)])
                    #expect(answer.status == .forbidden)
                    #expect(answer.body.contains("desk.csrf"))
                }
                #expect(try desk.core.store.list(.init(direction: .outgoing)).total == 0)
                // The sign-in form too: without the cookie's token nobody is signed in.
                browser.forgetCookies()
                let signIn = try await browser.post(
                    "/signin",
                    [("username", "a.jansen"), ("password", DeskHarness.password), ("_csrf", "x")]
                )
                #expect(signIn.status == .forbidden)
                #expect(try await browser.get("/inbox").location == "/signin")
            }
        }
    }

    @Test func aSessionCookieOfAnotherDeskIsNotASession() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            try await h.addStaff(Self.shelter, "a.jansen", role: .caseworker)
            let stolen = try await withBrowser(try h.desk(Self.municipality)) { (browser: Browser) async throws in
                try await browser.signIn("a.jansen")
                return try #require(browser.cookies.first { $0.key.hasPrefix("ketenpost_desk_") })
            }
            #expect(stolen.key == "ketenpost_desk_gemeente_eijsden_margraten")
            try await withBrowser(try h.desk(Self.shelter)) { (browser: Browser) async throws in
                // The same value under the shelter desk's cookie name, and under its own name.
                browser.setCookie("ketenpost_desk_opvang_zuid_limburg", stolen.value)
                #expect(try await browser.get("/inbox").location == "/signin")
                browser.forgetCookies()
                browser.setCookie(stolen.key, stolen.value)
                #expect(try await browser.get("/inbox").location == "/signin")
            }
        }
    }

    @Test func rolesKeepToTheirPages() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            let secret = try #require(try await h.addStaff(Self.municipality, "l.smit", role: .logReader))
            let adminSecret = try #require(try await h.addStaff(Self.municipality, "b.beheer", role: .administrator))
            let desk = try h.desk(Self.municipality)
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.jansen")
                for page in ["/log", "/log.csv", "/users"] {
                    let answer = try await browser.get(page)
                    #expect(answer.status == .forbidden, "\(page)")
                    #expect(answer.body.contains("desk.forbidden"))
                }
            }
            try await withBrowser(desk) { (browser: Browser) async throws in
                // A log reader needs the second factor; without it the sign-in fails like a wrong password.
                #expect(try await browser.signIn("l.smit").status == .unauthorized)
                #expect(try await browser.signIn("l.smit", code: StaffAccounts.currentCode(secret: secret)).location == "/log")
                for page in ["/compose", "/inbox", "/sent", "/users"] {
                    #expect(try await browser.get(page).status == .forbidden, "\(page)")
                }
                #expect(try await browser.post("/compose", [("type", "signal")]).status == .forbidden)
            }
            try await withBrowser(desk) { (browser: Browser) async throws in
                #expect(try await browser.signIn("b.beheer", code: StaffAccounts.currentCode(secret: adminSecret)).location == "/users")
                let users = try await browser.get("/users")
                #expect(users.body.contains("a.jansen") && !users.body.contains("$2"))  // no hashes on the page
                #expect(try await browser.get("/inbox").status == .forbidden)
                #expect(try await browser.get("/log").status == .forbidden)
            }
            // The log records the refusals' sign-ins, never a password.
            let entries = try desk.core.store.accessLog.entries()
            #expect(entries.contains { $0.staff == "l.smit" && $0.action == "sign-in-failed" })
            #expect(!entries.contains { ($0.detail ?? "").contains(DeskHarness.password) })
        }
    }

    @Test func repeatedFailuresLockTheAccount() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            let desk = try h.desk(Self.municipality)
            try await withBrowser(desk) { (browser: Browser) async throws in
                for _ in 0..<5 {
                    let answer = try await browser.signIn("a.jansen", password: "wrong password here")
                    #expect(answer.status == .unauthorized && answer.body.contains("desk.sign-in-failed"))
                }
                let locked = try await browser.signIn("a.jansen")
                #expect(locked.status == .unauthorized)
                #expect(locked.body.contains("desk.account-locked"))
                // An unknown user gets the same answer as a wrong password.
                let unknown = try await browser.signIn("n.iemand")
                #expect(unknown.status == .unauthorized && unknown.body.contains("desk.sign-in-failed"))
            }
            let reset = try await desk.core.accounts.reset(username: "a.jansen", password: "a new long password 2")
            #expect(reset.member.lockedUntil == nil)
            try await withBrowser(desk) { (browser: Browser) async throws in
                #expect(try await browser.signIn("a.jansen", password: "a new long password 2").location == "/inbox")
            }
            // A disabled account ends its session at the next request.
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.jansen", password: "a new long password 2")
                try desk.core.accounts.setDisabled("a.jansen", true)
                #expect(try await browser.get("/inbox").location == "/signin")
            }
        }
    }

    @Test func oversizedAndMalformedFormsAreRefused() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            let desk = try h.desk(Self.municipality)
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.jansen")
                try await browser.get("/compose")
                let draft = try #require(try await browser.post("/compose", [("type", "signal")]).location)
                try await browser.get(draft)
                let csrf = try #require(browser.csrf)
                let long = try await browser.post(draft, [("notes", String(repeating: "x", count: 20_001)), ("_action", "save")])
                #expect(long.status == .badRequest && long.body.contains("desk.input-invalid"))
                let bad = try await browser.client.execute(
                    uri: draft,
                    method: .post,
                    headers: [
                        .contentType: "application/x-www-form-urlencoded",
                        .cookie: browser.cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "),
                    ],
                    body: ByteBuffer(string: "_csrf=\(csrf)&notes=%E0%A4%A")
                ) { $0.status }
                #expect(bad == .badRequest)
                let huge = try await browser.client.execute(
                    uri: draft,
                    method: .post,
                    headers: [
                        .contentType: "application/x-www-form-urlencoded",
                        .cookie: browser.cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "),
                    ],
                    body: ByteBuffer(string: "_csrf=\(csrf)&" + String(repeating: "a=b&", count: 200_000))
                ) { $0.status }
                #expect(huge == .contentTooLarge)
                // Fields the form does not have are not kept in the draft.
                try await browser.post(draft, [("smuggled.field", "x"), ("_action", "save")])
                let id = String(draft.dropFirst("/drafts/".count))
                let saved = try desk.core.draft(of: try #require(try desk.core.store.message(id)))
                #expect(saved.values.fields["smuggled.field"] == nil)
            }
        }
    }

    @Test func messageIdsThatAreNotYoursAreNotFound() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            try await h.addStaff(Self.municipality, "b.bakker", role: .caseworker)
            let desk = try h.desk(Self.municipality)
            let draft = try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.jansen")
                try await browser.get("/compose")
                return try #require(try await browser.post("/compose", [("type", "signal")]).location)
            }
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("b.bakker")
                // A colleague's draft, an unknown id, something that is no id at all.
                for uri in [
                    draft, "/messages/\(draft.dropFirst("/drafts/".count))", "/messages/\(UUID().uuidString)", "/messages/..%2Fetc",
                    "/drafts/x",
                ] {
                    let answer = try await browser.get(uri)
                    #expect(answer.status == .notFound, "\(uri)")
                    #expect(answer.body.contains("desk.not-found"))
                }
                try await browser.get("/inbox")
                #expect(try await browser.post("/messages/\(UUID().uuidString)/answer", []).status == .notFound)
                #expect(try await browser.get("/messages/\(UUID().uuidString)/evidence.zip").status == .notFound)
            }
        }
    }

    @Test func pagesCarrySecurityHeadersAndEscapeWhatWasTyped() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            let desk = try h.desk(Self.municipality)
            try await withBrowser(desk) { (browser: Browser) async throws in
                let signIn = try await browser.get("/signin")
                #expect(signIn.headers[.cacheControl] == "no-store")
                #expect(signIn.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
                #expect(signIn.headers[values: .setCookie].allSatisfy { $0.contains("HttpOnly") && $0.contains("SameSite=Strict") })
                try await browser.signIn("a.jansen")
                #expect(browser.cookies.keys.contains("ketenpost_desk_gemeente_eijsden_margraten"))
                try await browser.get("/compose")
                let draft = try #require(try await browser.post("/compose", [("type", "signal")]).location)
                try await browser.get(draft)
                let page = try await browser.post(draft, [("notes", "<script>alert(1)</script>\" onfocus=\"x"), ("_action", "save")])
                #expect(!page.body.contains("<script>alert(1)"))
                #expect(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot; onfocus=&quot;x"))
            }
        }
    }

    @Test func aTeamLeadAssignsAndCaseworkersSeeOnlyTheirs() async throws {
        try await withDesks { h in
            try await h.addStaff(Self.shelter, "t.leider", role: .teamLead)
            try await h.addStaff(Self.shelter, "a.eerste", role: .caseworker)
            try await h.addStaff(Self.shelter, "b.tweede", role: .caseworker)
            let desk = try h.desk(Self.shelter)
            // A received message that could not be opened (its page needs no decryption).
            let id = UUID().uuidString.lowercased()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            try desk.core.store.insert(
                DeskMessage(
                    id: id,
                    direction: .incoming,
                    type: "intake-notice",
                    counterpart: Self.municipality,
                    priority: "urgent",
                    createdAt: now,
                    updatedAt: now,
                    state: .refused,
                    sealed: Data([0x30]),
                    reasonCode: "envelope.malformed"
                )
            )
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.eerste")
                #expect(try await browser.get("/messages/\(id)").status == .ok)
                #expect(try await browser.post("/messages/\(id)/assign", [("assignee", "b.tweede")]).status == .forbidden)
            }
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("t.leider")
                let page = try await browser.get("/messages/\(id)")
                #expect(page.body.contains("Kon niet worden geopend") && page.body.contains("envelope.malformed"))
                #expect(try await browser.post("/messages/\(id)/assign", [("assignee", "b.tweede")]).location == "/messages/\(id)")
                #expect(try await browser.post("/messages/\(id)/assign", [("assignee", "nobody.here")]).status == .badRequest)
            }
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.eerste")
                #expect(try await browser.get("/messages/\(id)").status == .notFound)
                #expect(!(try await browser.get("/inbox").body.contains(id)))
            }
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("b.tweede")
                #expect(try await browser.get("/messages/\(id)").status == .ok)
                #expect(try await browser.get("/inbox?mine=1").body.contains(id))
            }
            #expect(try desk.core.store.accessLog.entries(message: id).contains { $0.action == "assign" && $0.detail == "to b.tweede" })
        }
    }

    @Test func idleSessionsEndAndLockoutsExpire() async throws {
        try await withDesks { h in
            let clock = DeskClock()
            let desk = try h.desk(Self.municipality, clock: { clock() })
            try await h.addStaff(Self.municipality, "a.jansen", role: .caseworker)
            try await withBrowser(desk) { (browser: Browser) async throws in
                try await browser.signIn("a.jansen")
                // Each request restarts the idle time (30 minutes by default).
                clock.advance(minutes: 29)
                #expect(try await browser.get("/inbox").status == .ok)
                clock.advance(minutes: 29)
                #expect(try await browser.get("/inbox").status == .ok)
                clock.advance(minutes: 31)
                #expect(try await browser.get("/inbox").location == "/signin")
                // Locked for 15 minutes after five failures; then the right password works again.
                for _ in 0..<5 { try await browser.signIn("a.jansen", password: "not the password at all") }
                #expect(try await browser.signIn("a.jansen").body.contains("desk.account-locked"))
                clock.advance(minutes: 16)
                #expect(try await browser.signIn("a.jansen").location == "/inbox")
            }
        }
    }

    @Test func aSecondFactorCodeWorksOnce() async throws {
        try await withDesks { h in
            let clock = DeskClock()
            let desk = try h.desk(Self.municipality, clock: { clock() })
            let secret = try #require(try await h.addStaff(Self.municipality, "l.smit", role: .logReader))
            let code = StaffAccounts.currentCode(secret: secret, at: clock())
            try await withBrowser(desk) { (browser: Browser) async throws in
                #expect(try await browser.signIn("l.smit", code: code).location == "/log")
            }
            // The same code again, still within its 30 seconds (seen over a shoulder, say): refused.
            try await withBrowser(desk) { (browser: Browser) async throws in
                let replay = try await browser.signIn("l.smit", code: code)
                #expect(replay.status == .unauthorized && replay.body.contains("desk.sign-in-failed"))
                // The next code works.
                clock.advance(minutes: 0.5)
                let next = StaffAccounts.currentCode(secret: secret, at: clock())
                #expect(try await browser.signIn("l.smit", code: next).location == "/log")
            }
            // A code from before the last one used is refused too, even when the clock allows it.
            clock.advance(minutes: -0.5)
            try await withBrowser(desk) { (browser: Browser) async throws in
                #expect(try await browser.signIn("l.smit", code: code).status == .unauthorized)
            }
        }
    }
}
