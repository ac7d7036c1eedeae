import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostModel
import KetenpostStore
import KetenpostTestSupport
import Testing

/// Promise 1: no plaintext payload is ever at rest on the relay: not in its store files,
/// its logs (at trace level) or its error messages.
@Suite struct NoPlaintextAtRestTests {
    /// Submit, lease, acknowledge, reject, status and the retention purge with canaries in the
    /// personal fields; returns the canary. The relay is stopped at the end.
    static func canaryFlow(_ h: Harness) async throws -> String {
        let canary = "CANARY\(UUID().uuidString.replacingOccurrences(of: "-", with: ""))"
        // Personal fields of a referral and a signal carry the canary.
        var signal = try JSONSerialization.jsonObject(with: try h.example(.signal)) as! [String: Any]
        signal["notes"] = "Zie \(canary) voor details."
        var person = signal["person"] as? [String: Any] ?? [:]
        person["alias"] = canary
        signal["person"] = person
        var reporter = signal["reporter"] as! [String: Any]
        reporter["name"] = "Reporter \(canary)"
        signal["reporter"] = reporter
        let payload = try JSONSerialization.data(withJSONObject: signal)

        let sender = try h.client(municipality)
        let recipient = try h.client(coordinator)
        var sentIDs: [UUID] = []
        for _ in 0..<3 {
            sentIDs.append(try await sender.send(payload: payload, type: .signal, to: coordinator).header.id)
        }
        // A rejected submission with the canary in it (wrong route) leaves nothing either.
        await expectRelayError(.policyForbidden) { _ = try await sender.send(payload: payload, type: .signal, to: shelter) }
        let received = try await recipient.receive(max: 10)
        #expect(received.count == 3)
        let opened = try received[0].result.get()
        guard case .signal(let decoded) = opened.payload else {
            Issue.record("not a signal")
            return canary
        }
        #expect(decoded.person?.alias == canary, "the recipient does read it")
        try await recipient.acknowledge(received[0])
        try await recipient.acknowledge(received[1], rejectedWith: "payload.invalid")
        for id in sentIDs { _ = try await sender.status(id) }
        h.clock.advance(by: h.configuration.queue.retention + 60)
        _ = try await h.relay.core.sweep()
        await h.relay.stop()
        return canary
    }

    static let personal = ["Joëlle", "Meertens", "stacaravan", "Fruitteeltbedrijf"]

    @Test func canariesNeverReachTheStoreOrTheLogs() async throws {
        try await withRelay { h in
            let canary = try await Self.canaryFlow(h)
            // Every file the store wrote (database, WAL, shared memory), byte for byte.
            let storeDir = URL(fileURLWithPath: h.configuration.store.path).deletingLastPathComponent()
            let files = try FileManager.default.contentsOfDirectory(atPath: storeDir.path)
            #expect(!files.isEmpty)
            let needles = ([canary] + Self.personal).map { Data($0.utf8) }
            for file in files {
                let bytes = try Data(contentsOf: storeDir.appendingPathComponent(file))
                for needle in needles {
                    #expect(bytes.range(of: needle) == nil, "\(file) holds plaintext")
                }
            }
            let logs = h.log.all.joined(separator: "\n")
            #expect(!h.log.all.isEmpty, "the relay logged its events")
            for needle in [canary, "Joëlle", "Meertens", "stacaravan"] {
                #expect(!logs.contains(needle), "the logs hold plaintext")
            }
            try await h.start()  // withRelay stops it again
        }
    }

    /// The same flow on PostgreSQL: a full `pg_dump` of the database (queue, directory, audit
    /// trail) holds no canary, as text or as the hex that bytea columns are dumped in.
    @Test func canariesNeverReachAPostgreSQLDump() async throws {
        try await withPostgresDatabase { server, database in
            try await withRelay({ $0.store.url = server.url(database: database) }) { h in
                let canary = try await Self.canaryFlow(h)
                let dump = try await shell("'\(server.binDirectory)/pg_dump' -h 127.0.0.1 -p \(server.port) -U postgres -d \(database)")
                #expect(dump.status == 0 && dump.stdout.contains("audit_log") && dump.stdout.contains("message.accepted"), "\(dump.stderr)")
                for needle in [canary] + Self.personal {
                    let hex = Data(needle.utf8).map { String(format: "%02x", $0) }.joined()
                    #expect(!dump.stdout.contains(needle) && !dump.stdout.contains(hex), "the dump holds plaintext")
                }
                try await h.start()  // withRelay stops it again
            }
        }
    }
}
