import Foundation
import KetenpostRelay
import Logging
import Synchronization
import Testing

/// One log line per event with ids, partners, type, state and the request id; JSON output.
@Suite struct LoggingTests {
    @Test func eventsCarryTheRequestIDThatTheAnswerNames() async throws {
        try await withRelay { h in
            let me = h.shared.identityDirectory(municipality)
            let sent = try await h.client(municipality).send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let accepted = try #require(h.log.all.first { $0.contains("message accepted") && $0.contains("message.id=\(sent.header.id)") })
            #expect(accepted.contains("partner.from=\(municipality)") && accepted.contains("partner.to=\(coordinator)"))
            #expect(accepted.contains("message.type=signal") && accepted.contains("message.state=accepted"))
            #expect(accepted.range(of: #"hb\.request\.id=[0-9a-f]{17,32}"#, options: .regularExpression) != nil)
            // A refused request: the id in the answer header is the one in the log line.
            let answer = try await shell(
                """
                curl -sS -i --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(me)/cert.pem' --key '\(me)/key.pem' \
                \(h.url.absoluteString)/v1/messages/not-a-uuid
                """
            )
            let header = try #require(answer.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("x-request-id:") })
            let id = header.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)
            // Hummingbird's request id (`hb.request.id`): 17 to 32 hex digits.
            #expect((17...32).contains(id.count) && id.allSatisfy(\.isHexDigit))
            #expect(
                h.log.all.contains {
                    $0.contains("request refused") && $0.contains("request.id=\(id)") && $0.contains("error.code=request.invalid")
                }
            )
        }
    }

    @Test func jsonLinesParse() throws {
        let lines = Mutex<[String]>([])
        var logger = Logger(label: "ketenpost.relay") { label in
            JSONLogHandler(label: label, level: .debug) { line in lines.withLock { $0.append(line) } }
        }
        logger[metadataKey: "instance"] = "a"
        logger.info("message accepted", metadata: ["message.id": "1234", "message.type": "signal"])
        logger.trace("not at this level")
        let written = lines.withLock { $0 }
        #expect(written.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(written[0].utf8)) as? [String: String])
        #expect(object["message"] == "message accepted" && object["level"] == "info" && object["label"] == "ketenpost.relay")
        #expect(object["message.id"] == "1234" && object["message.type"] == "signal" && object["instance"] == "a" && object["time"] != nil)
        #expect(!written[0].contains("\n"))
    }
}
