import AsyncHTTPClient
import Foundation
import Glibc
import KetenpostDesk
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// A case system's HTTP calls to a desk's JSON API, over real sockets.
struct CaseSystem: Sendable {
    let base: String
    let token: String

    struct Answer: Sendable {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    func call(
        _ method: HTTPMethod,
        _ path: String,
        body: Data? = nil,
        key: String? = nil,
        token: String? = nil,
        timeout: TimeAmount = .seconds(70)
    ) async throws -> Answer {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        let token = token ?? self.token
        if !token.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let key { request.headers.add(name: "Idempotency-Key", value: key) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 16 << 20)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Answer(status: Int(response.status.code), headers: headers, body: Data(buffer: bytes))
    }

    /// Sends a whole request over a plain socket and hangs up without reading the answer: a case
    /// system whose timeout struck after the desk had the request.
    func sendAndHangUp(_ path: String, body: Data, key: String, port: Int) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        precondition(connected == 0)
        let head =
            "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nIdempotency-Key: \(key)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n\r\n"
        let bytes = Data(head.utf8) + body
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        precondition(written == bytes.count)
    }
}

/// The API end to end: a coordinator's case system sends a referral, the shelter's system
/// receives and answers it, the coordinator's system sees the answer; plus every refusal.
@Suite(.serialized) struct DeskAPITests {
    static let coordinator = DeskHarness.coordinator
    static let shelter = DeskHarness.shelter
    static let canary = "Kanarie-Zaak-5512"

    static func example(_ type: String) throws -> [String: Any] {
        let data = try Data(contentsOf: Root.url.appendingPathComponent("config/examples/\(type).json"))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }

    static func body(_ object: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }

    static func referral(caseReference: String = "ZCZL-2026/0147") throws -> Data {
        var payload = try example("referral")
        payload["caseReference"] = caseReference
        return try body([
            "type": "referral", "to": shelter, "payload": payload, "priority": "urgent",
            "labels": ["region": "GM1903", "exploitationForm": "labour"],
        ])
    }

    /// Two running desks (coordinator and shelter) with a token each.
    static func withTwoDesks(_ body: (DeskHarness, RunningDesk, RunningDesk, CaseSystem, CaseSystem) async throws -> Void) async throws {
        try await withDesks { h in
            let lines = h.log
            let logger = Logger(label: "test.desk", factory: { _ in DeskLogHandler(lines: lines) })
            let coordinatorDesk = try await RunningDesk.start(try h.desk(coordinator, adjust: { $0.inbox.pollWait = 1 }), logger: logger)
            let shelterDesk = try await RunningDesk.start(try h.desk(shelter, adjust: { $0.inbox.pollWait = 1 }), logger: logger)
            let coordinatorToken = try coordinatorDesk.core.tokens.add(name: "zorg-systeem").secret
            let shelterToken = try shelterDesk.core.tokens.add(name: "opvang-systeem").secret
            do {
                try await body(
                    h,
                    coordinatorDesk,
                    shelterDesk,
                    CaseSystem(base: coordinatorDesk.url.absoluteString, token: coordinatorToken),
                    CaseSystem(base: shelterDesk.url.absoluteString, token: shelterToken)
                )
            } catch {
                await coordinatorDesk.stop()
                await shelterDesk.stop()
                throw error
            }
            await coordinatorDesk.stop()
            await shelterDesk.stop()
        }
    }

    @Test func aReferralIsSentOnceDespiteATimeoutAnsweredAndFollowed() async throws {
        try await Self.withTwoDesks { h, coordinatorDesk, shelterDesk, zorg, opvang in
            let key = "zaak-2026-0147-verwijzing"
            let referral = try Self.referral()
            // The case system gives up after sending: the desk has the request and goes on.
            try zorg.sendAndHangUp("/api/v1/messages", body: referral, key: key, port: coordinatorDesk.port)
            var taken = false
            for _ in 0..<80 where !taken {
                taken = try coordinatorDesk.core.store.list(.init(direction: .outgoing)).total == 1
                if !taken { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(taken, "the desk took the request that the client hung up on")
            // The retry with the same key and body: the first message, not a second one.
            let retry = try await zorg.call(.POST, "/api/v1/messages", body: referral, key: key)
            #expect(retry.status == 201 && retry.headers["idempotent-replayed"] == "true", "\(retry.text)")
            let id = try #require(retry.json["id"] as? String)
            #expect(retry.headers["location"] == "/api/v1/messages/\(id)")
            // Two more at once: the same message again.
            async let first = zorg.call(.POST, "/api/v1/messages", body: referral, key: key)
            async let second = zorg.call(.POST, "/api/v1/messages", body: referral, key: key)
            for answer in try await [first, second] { #expect(answer.json["id"] as? String == id) }
            // The same key with another body is refused.
            let other = try await zorg.call(.POST, "/api/v1/messages", body: try Self.referral(caseReference: "ZCZL-2026/0999"), key: key)
            #expect(other.status == 409 && other.errorCode == "desk.idempotency-conflict")
            // The same request serialised otherwise (key order, spaces) is the same request.
            let reordered = try JSONSerialization.data(
                withJSONObject: try JSONSerialization.jsonObject(with: referral),
                options: [.prettyPrinted, .withoutEscapingSlashes]
            )
            let same = try await zorg.call(.POST, "/api/v1/messages", body: reordered, key: key)
            #expect(same.status == 201 && same.json["id"] as? String == id, "\(same.text)")
            #expect(try coordinatorDesk.core.store.list(.init(direction: .outgoing)).total == 1)

            // The shelter's system long-polls its inbox and gets the referral once, opened.
            let inbox = try await opvang.call(.GET, "/api/v1/inbox?after=0&wait=30")
            #expect(inbox.status == 200, "\(inbox.text)")
            let messages = try #require(inbox.json["messages"] as? [[String: Any]])
            #expect(messages.count == 1)
            let item = try #require(messages.first)
            #expect(item["id"] as? String == id && item["type"] as? String == "referral" && item["partner"] as? String == Self.coordinator)
            #expect((item["payload"] as? [String: Any])?["caseReference"] as? String == "ZCZL-2026/0147")
            #expect((item["labels"] as? [String: Any])?["region"] as? String == "GM1903")
            let cursor = try #require(inbox.json["cursor"] as? String)
            let empty = try await opvang.call(.GET, "/api/v1/inbox?after=\(cursor)&wait=1")
            #expect((empty.json["messages"] as? [Any])?.isEmpty == true && empty.json["cursor"] as? String == cursor)

            // It answers; a retry of the answer changes nothing.
            let answer = try Self.body(["payload": try Self.example("referral-response")])
            let answered = try await opvang.call(.POST, "/api/v1/inbox/\(id)/answer", body: answer, key: "antwoord-\(id)")
            #expect(answered.status == 201, "\(answered.text)")
            let again = try await opvang.call(.POST, "/api/v1/inbox/\(id)/answer", body: answer, key: "antwoord-\(id)")
            #expect(again.json["id"] as? String == answered.json["id"] as? String && again.headers["idempotent-replayed"] == "true")

            // The coordinator's system sees delivery, the shelter's signed receipt and the answer.
            var status = CaseSystem.Answer(status: 0, headers: [:], body: Data())
            for _ in 0..<100 {
                status = try await zorg.call(.GET, "/api/v1/messages/\(id)")
                let answerState = (status.json["answer"] as? [String: Any])?["outcome"] as? String
                if status.json["state"] as? String == "acknowledged" && answerState != nil { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(status.json["state"] as? String == "acknowledged", "\(status.text)")
            let business = try #require(status.json["answer"] as? [String: Any])
            #expect(business["outcome"] as? String == "accepted" && business["messageId"] as? String == answered.json["id"] as? String)
            let receipts = try #require(status.json["receipts"] as? [String: Any])
            #expect(receipts["acceptance"] is String && receipts["recipient"] is String)
            // The evidence package, for the case file: every signature in it checks out with openssl.
            let evidence = try await zorg.call(.GET, "/api/v1/messages/\(id)/evidence.zip")
            #expect(evidence.status == 200 && evidence.headers["content-type"] == "application/zip")
            try EvidenceCheck.verify(evidence.body, expect: ["message.cms", "acceptance-receipt.cms", "recipient-receipt.cms"])
            #expect(
                try coordinatorDesk.core.store.accessLog.entries(message: id).contains {
                    $0.staff == "token:zorg-systeem" && $0.action == "download"
                }
            )

            // Exactly one referral reached the shelter; its system's reading is in the access log.
            #expect(try shelterDesk.core.store.list(.init(direction: .incoming)).messages.filter { $0.type == "referral" }.count == 1)
            let log = try shelterDesk.core.store.accessLog.entries(message: id)
            #expect(log.contains { $0.staff == "token:opvang-systeem" && $0.action == "view" })
            #expect(log.contains { $0.staff == "token:opvang-systeem" && $0.action == "answer" })
            _ = h
        }
    }

    @Test func refusalsAreClearAndLeakNothing() async throws {
        try await Self.withTwoDesks { h, coordinatorDesk, shelterDesk, zorg, opvang in
            let referral = try Self.referral()
            // No token, a made-up one, another desk's, a revoked one.
            for token in ["", "kpd_AAAAAAAAAAAA_" + String(repeating: "A", count: 40), opvang.token] {
                let answer = try await zorg.call(.POST, "/api/v1/messages", body: referral, key: "k1", token: token)
                #expect(answer.status == 401 && answer.errorCode == "desk.token-invalid", "\(answer.text)")
            }
            let revoked = try coordinatorDesk.core.tokens.add(name: "oud-systeem").secret
            try coordinatorDesk.core.store.revokeToken(named: "oud-systeem", actor: .commandLine)
            #expect(try await zorg.call(.GET, "/api/v1/inbox", token: revoked).status == 401)
            // A token that may only read cannot send; one that may only send cannot read the inbox.
            let reader = CaseSystem(base: zorg.base, token: try coordinatorDesk.core.tokens.add(name: "lezer", scopes: [.read]).secret)
            let readerSend = try await reader.call(.POST, "/api/v1/messages", body: referral, key: "k-scope")
            #expect(readerSend.status == 403 && readerSend.errorCode == "desk.token-scope", "\(readerSend.text)")
            #expect(try await reader.call(.GET, "/api/v1/inbox").status == 200)
            let sender = CaseSystem(base: opvang.base, token: try shelterDesk.core.tokens.add(name: "zender", scopes: [.send]).secret)
            #expect(try await sender.call(.GET, "/api/v1/inbox").errorCode == "desk.token-scope")
            // No idempotency key; a body too large; not JSON.
            let noKey = try await zorg.call(.POST, "/api/v1/messages", body: referral)
            #expect(noKey.status == 400 && noKey.errorCode == "desk.idempotency-key-missing")
            let huge = try await zorg.call(.POST, "/api/v1/messages", body: Data(repeating: 0x20, count: 600 * 1024), key: "k2")
            #expect(huge.status == 413 && huge.errorCode == "request.too-large", "\(huge.text)")
            let notJSON = try await zorg.call(.POST, "/api/v1/messages", body: Data("type=referral".utf8), key: "k3")
            #expect(notJSON.status == 422 && notJSON.errorCode == "desk.message-invalid")
            // A payload that breaks the rules: every problem by path, no value in the answer.
            var payload = try Self.example("referral")
            var person = payload["person"] as? [String: Any] ?? [:]
            person["bsn"] = "123456789"  // fails the eleven test
            person["givenName"] = Self.canary
            person["nickname"] = "x"
            payload["person"] = person
            let invalid = try await zorg.call(
                .POST,
                "/api/v1/messages",
                body: try Self.body(["type": "referral", "to": DeskHarness.municipality, "payload": payload, "extra": 1]),
                key: "k4"
            )
            #expect(invalid.status == 422 && invalid.errorCode == "desk.message-invalid")
            let fields = ((invalid.json["error"] as? [String: Any])?["fields"] as? [[String: Any]] ?? []).compactMap {
                $0["path"] as? String
            }
            #expect(fields.contains("payload.person.nickname"), "\(fields)")
            #expect(fields.contains("to") && fields.contains("extra"), "\(fields)")  // a municipality receives no referrals
            #expect(!invalid.text.contains(Self.canary) && !invalid.text.contains("123456789"))
            // Without the unknown field, the model's rules speak: the BSN fails its check.
            person.removeValue(forKey: "nickname")
            payload["person"] = person
            let badBSN = try await zorg.call(
                .POST,
                "/api/v1/messages",
                body: try Self.body(["type": "referral", "to": Self.shelter, "payload": payload]),
                key: "k4b"
            )
            let bsnFields = ((badBSN.json["error"] as? [String: Any])?["fields"] as? [[String: Any]] ?? [])
            #expect(bsnFields.map { $0["path"] as? String } == ["payload.person.bsn"], "\(badBSN.text)")
            #expect(bsnFields.first?["rule"] as? String == "bsn")
            #expect(!badBSN.text.contains(Self.canary) && !badBSN.text.contains("123456789"))
            // Unknown and foreign message ids; an answer to something that is not answerable.
            #expect(try await zorg.call(.GET, "/api/v1/messages/\(UUID().uuidString)").status == 404)
            #expect(try await zorg.call(.GET, "/api/v1/messages/..%2F..%2Fetc").status == 404)
            let notAnswerable = try await opvang.call(.POST, "/api/v1/inbox/\(UUID().uuidString)/answer", body: Data("{}".utf8), key: "k5")
            #expect(notAnswerable.status == 404)
            // An unknown API path answers JSON, not a page.
            let unknown = try await zorg.call(.GET, "/api/v1/nothing-here")
            #expect(unknown.status == 404 && unknown.headers["content-type"] == "application/json", "\(unknown.text)")
            // Nothing was sent, and nothing typed reached a log line.
            #expect(try coordinatorDesk.core.store.list(.init(direction: .outgoing)).total == 0)
            for line in h.log.all { #expect(!line.contains(Self.canary), "\(line)") }
        }
    }
}
