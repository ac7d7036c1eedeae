import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostModel
import Testing

/// The inbox's binary form (`Accept: multipart/mixed`, issue 21): the format on its own, then
/// a live relay read with curl and opened with openssl, and JSON still the default.
@Suite struct InboxMultipartTests {
    static func delivery(_ n: Int, message: Data) -> API.InboxDelivery {
        API.InboxDelivery(
            id: UUID(),
            from: "gemeente-\(n)",
            type: "referral",
            leaseToken: String(repeating: "ab", count: 16),
            leaseExpiresAt: Date(timeIntervalSince1970: 1_796_000_000 + Double(n)),
            attempt: n + 1,
            message: message
        )
    }

    @Test func partsComeBackAsTheyWent() throws {
        // Bytes that look like the format's own: line breaks, dashes, a header-like line.
        let messages = [Data([0x30, 0x82, 0x0d, 0x0a, 0x2d, 0x2d]), Data("\r\n\r\nContent-Length: 1\r\n--x".utf8), Data([0])]
        let deliveries = messages.enumerated().map { Self.delivery($0.offset, message: $0.element) }
        let boundary = InboxMultipart.boundary(avoiding: messages)
        let body = InboxMultipart.encode(deliveries, boundary: boundary)
        #expect(try InboxMultipart.parse(body, boundary: boundary) == deliveries)
        #expect(InboxMultipart.boundary(ofContentType: InboxMultipart.contentType(boundary: boundary)) == boundary)
        #expect(InboxMultipart.boundary(ofContentType: "multipart/mixed; boundary=\"quoted-one\"") == "quoted-one")
        #expect(InboxMultipart.boundary(ofContentType: "application/json") == nil)
    }

    /// The JSON form and the binary form carry the same delivery (a client reading a relay that
    /// answers JSON converts); a JSON message that is not base64 becomes no bytes, so opening
    /// fails for it alone.
    @Test func bothFormsCarryTheSameDelivery() {
        let delivery = Self.delivery(2, message: Data([0x30, 0x03, 0x02, 0x01, 0x00]))
        let json = API.InboxMessage(delivery)
        #expect(json.message == delivery.message.base64EncodedString())
        #expect(API.InboxDelivery(json) == delivery)
        var broken = json
        broken.message = "not base64!"
        #expect(API.InboxDelivery(broken).message.isEmpty && API.InboxDelivery(broken).id == delivery.id)
    }

    @Test func theBoundaryNeverOccursInAMessage() throws {
        // A message that holds the first boundary drawn would be cut there; the relay draws again.
        for _ in 0..<50 {
            let boundary = InboxMultipart.boundary(avoiding: [])
            let message = Data("prefix\r\n--\(boundary)\r\nsuffix".utf8)
            let other = InboxMultipart.boundary(avoiding: [message])
            #expect(!message.contains(Data("--\(other)".utf8)))
            let body = InboxMultipart.encode([Self.delivery(0, message: message)], boundary: other)
            #expect(try InboxMultipart.parse(body, boundary: other).first?.message == message)
        }
    }

    /// Each case: what is wrong, and the text replaced in a valid body to make it so.
    static let malformed: [(String, String, String)] = [
        ("no opening delimiter", "--b0\r\nContent-Type", "-b0\r\nContent-Type"),
        ("truncated", "hello\r\n--b0--\r\n", "hello\r\n--b0"),
        ("bytes after the end", "--b0--\r\n", "--b0--\r\nmore"),
        ("length not the size", "Content-Length: 5", "Content-Length: 6"),
        ("no lease token", "Ketenpost-Lease-Token: tok\r\n", ""),
        ("header twice", "Ketenpost-Attempt: 1\r\n", "Ketenpost-Attempt: 1\r\nketenpost-attempt: 2\r\n"),
        ("not a UUID", "Ketenpost-Message-Id: ", "Ketenpost-Message-Id: x"),
        ("attempt zero", "Ketenpost-Attempt: 1", "Ketenpost-Attempt: 0"),
        ("not CMS", "application/cms", "text/plain"),
        ("a bad date", "Expires-At: 20", "Expires-At: 20xx"),
        ("a header without colon", "Ketenpost-Type: ", "Ketenpost-Type "),
        ("no blank line after the headers", "\r\n\r\nhello", "\r\nhello"),
    ]

    @Test(arguments: 0..<malformed.count)
    func aMalformedBodyIsRefused(_ index: Int) throws {
        let (name, from, to) = Self.malformed[index]
        let delivery = API.InboxDelivery(
            id: UUID(),
            from: "a",
            type: "signal",
            leaseToken: "tok",
            leaseExpiresAt: Date(timeIntervalSince1970: 1_796_000_000),
            attempt: 1,
            message: Data("hello".utf8)
        )
        let body = String(decoding: InboxMultipart.encode([delivery], boundary: "b0"), as: UTF8.self)
        #expect(try InboxMultipart.parse(Data(body.utf8), boundary: "b0").count == 1)
        let broken = body.replacingOccurrences(of: from, with: to)
        #expect(broken != body, "the mutation \(name) changed nothing")
        #expect(throws: InboxMultipart.Malformed.self, "\(name)") { try InboxMultipart.parse(Data(broken.utf8), boundary: "b0") }
    }

    /// A part is read by its Content-Length, and the delimiter must follow right there: a
    /// length that stops early must not leave the rest of the bytes to pass for a close.
    @Test func theDelimiterMustFollowAtTheContentLength() throws {
        let delivery = Self.delivery(0, message: Data("hello".utf8))
        let valid = String(decoding: InboxMultipart.encode([delivery], boundary: "b0"), as: UTF8.self)
        let forged = valid.replacingOccurrences(of: "Content-Length: 5\r\n", with: "Content-Length: 2\r\n")
            .replacingOccurrences(of: "hello\r\n--b0--\r\n", with: "hiXXXXXX--\r\n")
        #expect(forged.hasSuffix("hiXXXXXX--\r\n") && forged.contains("Content-Length: 2\r\n"))
        #expect(throws: InboxMultipart.Malformed.self) { try InboxMultipart.parse(Data(forged.utf8), boundary: "b0") }
    }

    @Test func moreThanAHundredPartsAreRefused() throws {
        let many = (0...100).map { Self.delivery($0, message: Data([1])) }
        #expect(throws: InboxMultipart.Malformed.self) {
            try InboxMultipart.parse(InboxMultipart.encode(many, boundary: "b"), boundary: "b")
        }
        #expect(try InboxMultipart.parse(InboxMultipart.encode(Array(many.prefix(100)), boundary: "b"), boundary: "b").count == 100)
    }

    @Test(
        arguments: [
            (nil, false), ("application/json", false), ("*/*", false), ("multipart/mixed", true),
            ("Multipart/Mixed; q=0.9", true), ("multipart/mixed;q=0", false), ("application/json, multipart/mixed", true),
            ("multipart/mixed;q=0.4, application/json;q=0.5", false), ("multipart/mixed, application/json;q=0.5", true),
            ("text/html", false),
        ] as [(String?, Bool)]
    )
    func acceptDecidesTheForm(accept: String?, multipart: Bool) {
        #expect(InboxMultipart.isPreferred(byAccept: accept) == multipart)
    }

    /// The relay streams the parts to curl; each part's bytes are the sealed message openssl
    /// opens (the open recipe of docs/FORMAT.md); the lease headers acknowledge it; without the
    /// Accept header the same inbox is JSON; an empty inbox is 204.
    @Test func curlReadsTheBinaryInboxAndOpensslOpensIt() async throws {
        try await withRelay { h in
            let sender = "gemeente-maastricht"
            let coordinator = "zorgcoordinatie-zuid-limburg"
            var sent: [UUID] = []
            for _ in 0..<3 {
                sent.append(try await h.client(sender).send(payload: try h.example(.signal), type: .signal, to: coordinator).header.id)
            }
            let work = h.work.appendingPathComponent("multipart")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            let me = h.shared.identityDirectory(coordinator)
            func curl(_ query: String, accept: String?) async throws -> Shell {
                try await shell(
                    """
                    curl -sS --fail-with-body --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(me)/cert.pem' \
                    --key '\(me)/key.pem' \(accept.map { "-H 'Accept: \($0)'" } ?? "") -D headers.txt -o body.bin \
                    -w '%{http_code}' 'https://127.0.0.1:\(h.relay.port)/v1/inbox?\(query)'
                    """,
                    in: work
                )
            }
            let leased = try await curl("max=2", accept: "multipart/mixed")
            #expect(leased.status == 0 && leased.stdout == "200", "\(leased.stderr)")
            let headers = try String(contentsOf: work.appendingPathComponent("headers.txt"), encoding: .utf8).lowercased()
            #expect(headers.contains("vary: accept"))
            let contentType = try #require(
                headers.components(separatedBy: "\r\n").first { $0.hasPrefix("content-type:") }?.dropFirst("content-type:".count)
            )
            let boundary = try #require(InboxMultipart.boundary(ofContentType: String(contentType)))
            let parts = try InboxMultipart.parse(Data(contentsOf: work.appendingPathComponent("body.bin")), boundary: boundary)
            #expect(parts.map(\.id) == Array(sent.prefix(2)))
            #expect(parts.allSatisfy { $0.from == sender && $0.type == "signal" && $0.attempt == 1 && !$0.leaseToken.isEmpty })

            // The first part's bytes are the sealed message: openssl verifies and decrypts it.
            try parts[0].message.write(to: work.appendingPathComponent("message.der"))
            // The CRLs as the receive recipe fetches them (its first command), then the open recipe.
            let fetchCRLs = try MinimalPartnerTests.recipe("receive").components(separatedBy: "\n").prefix(2).joined(separator: "\n")
            let opened = try await shell(
                "set -euo pipefail\n" + fetchCRLs + "\n" + (try MinimalPartnerTests.recipe("open")),
                in: work,
                env: ["ME": me, "CA": h.shared.pki.caCertificatePath, "CRLS": "crls.pem", "RELAY": h.url.absoluteString]
            )
            #expect(opened.status == 0 && opened.stdout.contains("\"from\":\"\(sender)\""), "\(opened.stderr)")

            // The lease headers acknowledge, as the JSON fields do (the acknowledge recipe, curl and openssl).
            for part in parts {
                try part.message.write(to: work.appendingPathComponent("message.der"))
                let acknowledged = try await shell(
                    "set -euo pipefail\n" + (try MinimalPartnerTests.recipe("acknowledge")),
                    in: work,
                    env: [
                        "ME": me, "CA": h.shared.pki.caCertificatePath, "RELAY": h.url.absoluteString, "ME_ID": coordinator,
                        "SENDER_ID": part.from, "MESSAGE_ID": part.id.uuidString.lowercased(), "LEASE": part.leaseToken,
                    ]
                )
                #expect(acknowledged.status == 0, "\(acknowledged.stderr)")
            }
            // Without Accept: JSON with base64, as before.
            let json = try await curl("max=5", accept: nil)
            #expect(json.status == 0 && json.stdout == "200")
            let inbox = try KetenpostJSON.decoder().decode(
                API.InboxResponse.self,
                from: Data(contentsOf: work.appendingPathComponent("body.bin"))
            )
            #expect(inbox.messages.map(\.id) == [sent[2]])
            // Nothing waiting: 204 with no body.
            let empty = try await curl("max=5", accept: "multipart/mixed")
            #expect(empty.status == 0 && empty.stdout == "204")
            #expect(try Data(contentsOf: work.appendingPathComponent("body.bin")).isEmpty)
        }
    }

    /// RelayClient reads the binary form (receive() uses it) and gets the same leases.
    @Test func theClientReceivesTheBinaryForm() async throws {
        try await withRelay { h in
            let coordinator = "zorgcoordinatie-zuid-limburg"
            let sent = try await h.client("gemeente-maastricht").send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let recipient = try h.client(coordinator)
            let received = try await recipient.receive(max: 5)
            #expect(received.map(\.id) == [sent.header.id])
            let opened = try received[0].result.get()
            #expect(opened.header.id == sent.header.id)
            try await recipient.acknowledge(received[0])
            #expect(try await recipient.deliveries(max: 5, wait: 0).isEmpty)
        }
    }
}
