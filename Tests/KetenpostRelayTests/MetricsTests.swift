import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostConfiguration
import KetenpostStore
import Testing

@testable import KetenpostRelay

/// The metrics tell the truth about a scripted flow, on the plain listener for the monitoring
/// system, and carry metadata only.
@Suite struct MetricsTests {
    /// The value of the sample whose line starts with `prefix` (name and labels as exposed).
    func value(_ text: String, _ prefix: String) -> Double? {
        text.split(separator: "\n").first { $0.hasPrefix(prefix + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    /// A store may leave out a type and state with no messages (PostgreSQL's count does): the
    /// gauge then reads 0, not the count of the previous scrape.
    @Test func aStateTheStoreNoLongerReportsReadsZero() {
        let metrics = RelayMetrics()
        let now = Date()
        metrics.setQueue(
            QueueStats(
                inboxes: [.init(recipient: "r", pending: 2, oldestAcceptedAt: now)],
                byTypeAndState: [.init(type: "signal", state: "accepted", count: 2)]
            ),
            partners: ["r"],
            now: now
        )
        #expect(value(metrics.exposition(), #"ketenpost_messages{type="signal",state="accepted"}"#) == 2)
        metrics.setQueue(
            QueueStats(inboxes: [], byTypeAndState: [.init(type: "signal", state: "expired", count: 2)]),
            partners: ["r"],
            now: now
        )
        let text = metrics.exposition()
        #expect(value(text, #"ketenpost_messages{type="signal",state="accepted"}"#) == 0)
        #expect(value(text, #"ketenpost_messages{type="signal",state="expired"}"#) == 2)
        #expect(value(text, #"ketenpost_queue_depth{recipient="r"}"#) == 0)
    }

    @Test func aScriptedFlowShowsInTheMetrics() async throws {
        try await withRelay({ $0.metrics.listen = HostPort(host: "127.0.0.1", port: 0) }) { h in
            let metricsPort = try #require(h.relay.metricsPort)
            let sender = try h.client(municipality)
            let recipient = try h.client(coordinator)
            for _ in 0..<3 { _ = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator) }
            _ = try await sender.send(payload: try h.example(.referral), type: .referral, to: shelter)
            let received = try await recipient.receive(max: 10)
            try await recipient.acknowledge(received[0])
            try await recipient.acknowledge(received[1])
            try await recipient.acknowledge(received[2], rejectedWith: "payload.invalid")
            await expectHandshakeFailure { _ = try await h.client("gemeente-ingetrokken").inbox() }
            // A check of the credential files that finds them as they were (what SIGHUP does).
            #expect(!h.relay.core.reloadCredentials())

            let scrape = "curl -sS --max-time 30 http://127.0.0.1:\(metricsPort)/metrics"
            var text = try await shell(scrape).stdout
            #expect(value(text, #"ketenpost_credential_checks_total{result="unchanged"}"#) ?? 0 >= 1)
            #expect(value(text, #"ketenpost_messages_accepted_total{type="signal"}"#) == 3)
            #expect(value(text, #"ketenpost_messages_accepted_total{type="referral"}"#) == 1)
            #expect(value(text, #"ketenpost_messages_delivered_total{type="signal"}"#) == 3)
            #expect(value(text, #"ketenpost_messages_acknowledged_total{type="signal"}"#) == 2)
            #expect(value(text, #"ketenpost_messages_rejected_total{type="signal"}"#) == 1)
            #expect(value(text, "ketenpost_submit_duration_seconds_count") == 4)
            #expect(value(text, #"ketenpost_end_to_end_seconds_count{type="signal"}"#) == 3)
            #expect(value(text, #"ketenpost_tls_handshake_failures_total{reason="certificate.revoked"}"#) == 1)
            #expect(value(text, #"ketenpost_messages{type="signal",state="acknowledged"}"#) == 2)
            #expect(value(text, #"ketenpost_messages{type="signal",state="rejected"}"#) == 1)
            // The shelter has one waiting referral; the coordinator's inbox is empty.
            #expect(value(text, #"ketenpost_queue_depth{recipient="\#(shelter)"}"#) == 1)
            #expect(value(text, #"ketenpost_queue_depth{recipient="\#(coordinator)"}"#) == 0)
            #expect((value(text, #"ketenpost_crl_age_seconds{crl="crl.pem"}"#) ?? -1) >= 0)
            #expect(value(text, "ketenpost_crl_stale") == 0)
            #expect(text.contains(#"ketenpost_certificate_days_left{partner="\#(shelter)""#))

            // The referral expires unread: the gauges follow the store.
            h.clock.advance(by: 31 * 86_400)
            _ = try await h.relay.core.sweep()
            text = try await shell(scrape).stdout
            #expect(value(text, #"ketenpost_messages{type="referral",state="expired"}"#) == 1)
            // The state it left reads 0 (it had no other message), not its last value.
            #expect(value(text, #"ketenpost_messages{type="referral",state="accepted"}"#) == 0)
            #expect(value(text, #"ketenpost_queue_depth{recipient="\#(shelter)"}"#) == 0)

            // Metadata only: no organisation names, no payload, no message ids.
            for forbidden in ["Gemeente", "Zorgco", received[0].id.uuidString.lowercased(), "dossier"] {
                #expect(!text.contains(forbidden), "\(forbidden) in the metrics")
            }
            // The plain listener serves nothing else.
            let other = try await shell("curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:\(metricsPort)/v1/health")
            #expect(other.stdout == "404")
            // Administrators see the same on the main port; partners do not.
            #expect(try await h.admin().metrics().contains("ketenpost_messages_accepted_total"))

            // The operators' table (docs/OPERATIONS.md, "Monitoring") names exactly what is exposed.
            let exposed = Set(
                text.split(separator: "\n").compactMap { line -> String? in
                    let words = line.split(separator: " ")
                    return words.count >= 3 && words[0] == "#" && words[1] == "TYPE" ? String(words[2]) : nil
                }
            )
            let docs = try String(
                contentsOf: URL(fileURLWithPath: #filePath)
                    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                    .appendingPathComponent("docs/OPERATIONS.md"),
                encoding: .utf8
            )
            let section = try #require(
                docs.components(separatedBy: "## Monitoring").dropFirst().first?.components(separatedBy: "\n## ").first
            )
            let documented = Set(section.matches(of: /`(ketenpost_[a-z_]+)`/).map { String($0.output.1) })
            #expect(exposed.subtracting(documented).isEmpty, "exposed but not documented: \(exposed.subtracting(documented).sorted())")
            #expect(documented.subtracting(exposed).isEmpty, "documented but not exposed: \(documented.subtracting(exposed).sorted())")
        }
    }
}
