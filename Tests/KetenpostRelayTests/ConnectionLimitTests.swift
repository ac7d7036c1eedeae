import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostRelay
import Synchronization
import Testing

/// Slow and idle clients cannot hold the relay: a trickled request head is cut off by the idle
/// timeout, a trickled body by the body timeout, and open connections are bounded. Each time
/// the relay goes on serving others and nothing is stored.
@Suite struct ConnectionLimitTests {
    func sClient(_ h: Harness) throws -> InteractiveProcess {
        let me = h.shared.identityDirectory(municipality)
        return try InteractiveProcess(
            """
            exec openssl s_client -quiet -connect 127.0.0.1:\(h.relay.port) -CAfile '\(h.shared.pki.caCertificatePath)' -cert \
            '\(me)/cert.pem' -key '\(me)/key.pem' -ign_eof
            """
        )
    }

    /// Sends `chunk` every 300 ms while the connection is open, for at most `seconds`; returns
    /// whether the relay closed the connection within that time.
    func trickle(_ connection: InteractiveProcess, _ chunk: String, for seconds: Double) async throws -> Bool {
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        while connection.isRunning && ContinuousClock.now < end {
            connection.send(chunk)
            try await Task.sleep(for: .milliseconds(300))
        }
        return !connection.isRunning
    }

    @Test func aTrickledRequestHeadIsCutOffByTheIdleTimeout() async throws {
        try await withRelay({ $0.limits.idleTimeout = 2 }) { h in
            let connection = try sClient(h)
            defer { connection.stop() }
            connection.send("GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            // One header byte every 300 ms would go on for 15 s; the relay closes long before.
            #expect(try await trickle(connection, "a", for: 15), "the relay kept a trickling request head open")
            _ = try await h.client(coordinator).directory(municipality)
        }
    }

    @Test func aTrickledBodyIsCutOffByTheBodyTimeout() async throws {
        // The idle timeout alone would not cut it: every body byte counts as activity.
        try await withRelay({
            $0.limits.idleTimeout = 30
            $0.limits.bodyTimeout = 2
        }) { h in
            let connection = try sClient(h)
            defer { connection.stop() }
            connection.send(
                "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cms\r\nContent-Length: 100000\r\n\r\n"
            )
            #expect(try await trickle(connection, "0", for: 15), "the relay kept a trickling body open")
            #expect(try await h.store.pendingCount(recipient: coordinator) == 0)
            _ = try await h.client(municipality).send(payload: try h.example(.signal), type: .signal, to: coordinator)
        }
    }

    /// Issue 20: one partner opening connections up to the global limit kept every other partner
    /// out. Now a partner holds at most `maxConnectionsPerPartner`; its further connections are
    /// closed right after the handshake, and another partner still gets through. Certificates the
    /// directory does not list share a small budget and are closed after 10 s.
    @Test func onePartnerCannotTakeEveryConnection() async throws {
        try await withRelay({
            $0.limits.maxConnections = 8
            $0.limits.maxConnectionsPerPartner = 3
            $0.limits.idleTimeout = 60
        }) { h in
            let held = try (0..<5).map { _ in try sClient(h) }
            defer { for connection in held { connection.stop() } }
            var open = 5
            for _ in 0..<100 where open != 3 {
                try await Task.sleep(for: .milliseconds(100))
                open = held.filter(\.isRunning).count
            }
            #expect(open == 3, "\(open) connections of one partner stay open")
            // Another partner, and an administrator, still get through.
            _ = try await h.client(coordinator).directory(municipality)
            _ = try await h.admin().adminPartners()
            // The connections that stayed still serve their partner.
            let running = held.first { $0.isRunning }
            let survivor = try #require(running)
            survivor.send("GET /v1/directory HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(await survivor.waitFor("\"partners\"", count: 1), "\(survivor.text.suffix(300))")

            // A certificate the directory does not list: answered (403 with its code), then closed after 10 s.
            let rogue = h.shared.identityDirectory("unregistered-maastricht")
            let unregistered = try InteractiveProcess(
                """
                exec openssl s_client -quiet -connect 127.0.0.1:\(h.relay.port) -CAfile '\(h.shared.pki.caCertificatePath)' -cert \
                '\(rogue)/cert.pem' -key '\(rogue)/key.pem' -ign_eof
                """
            )
            defer { unregistered.stop() }
            unregistered.send("GET /v1/directory HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            #expect(await unregistered.waitFor("auth.unknown-partner", count: 1), "\(unregistered.text.suffix(300))")
            var closed = false
            for _ in 0..<150 where !closed {
                try await Task.sleep(for: .milliseconds(100))
                closed = !unregistered.isRunning
            }
            #expect(closed, "an unregistered certificate kept its connection past 10 s")
            let metrics = try await h.admin().metrics()
            #expect(metrics.contains("ketenpost_tls_handshake_failures_total{reason=\"connection-cap\"} 2"), "\(metrics.count)")
        }
    }

    @Test func openConnectionsAreBounded() async throws {
        // Idle timeout 10 s: the fourth connection must be tried while the idle ones still hold
        // their slots, also on a busy CI machine where starting curl takes a while.
        try await withRelay({
            $0.limits.maxConnections = 3
            $0.limits.idleTimeout = 10
        }) { h in
            let me = h.shared.identityDirectory(municipality)
            let curl =
                """
                curl -sS --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(me)/cert.pem' --key '\(me)/key.pem' \
                \(h.url.absoluteString)/v1/health
                """
            // Three idle TCP connections that never say anything take every slot.
            let idle = try (0..<3).map { _ in
                try InteractiveProcess("exec 3<>/dev/tcp/127.0.0.1/\(h.relay.port) && echo connected; sleep 60")
            }
            defer { for process in idle { process.stop() } }
            for connection in idle { #expect(await connection.waitFor("connected", count: 1), "an idle connection did not connect") }
            #expect(await openConnections(h, reach: 3), "the relay did not take the idle connections")
            let refused = try await shell("\(curl) --max-time 1.5")
            #expect(refused.status != 0, "a fourth connection was served: \(refused.stdout)")
            // The idle timeout frees the slots; then the relay serves again.
            let served = try await shell("\(curl) --max-time 25")
            #expect(served.status == 0 && served.stdout.contains("ok"), "\(served.stderr)")
        }
    }

    /// When slots free up while clients wait in the listen backlog, the relay takes only as
    /// many as fit. (NIO accepts up to four connections per read of the listening socket and
    /// the limit is only checked between reads: without one accept per read, one freed slot
    /// let in four.)
    @Test func freedSlotsAreRefilledOnlyUpToTheLimit() async throws {
        try await withRelay({
            $0.limits.maxConnections = 3
            $0.limits.idleTimeout = 2
        }) { h in
            let port = h.relay.port
            let connect = { (fds: ClosedRange<Int>) in
                "exec " + fds.map { "\($0)<>/dev/tcp/127.0.0.1/\(port)" }.joined(separator: " ") + " && echo connected && exec sleep 60"
            }
            // Sampled on a thread of its own: the test's tasks may wait seconds for a turn on a
            // busy machine, and an overshoot lasts only until the idle timeout.
            let highest = Mutex(0.0)
            let sampling = Atomic(true)
            let sampler = Thread { [self] in
                while sampling.load(ordering: .relaxed) {
                    let open = openConnectionCount(h) ?? 0
                    highest.withLock { $0 = max($0, open) }
                    usleep(10_000)
                }
            }
            sampler.start()
            defer { sampling.store(false, ordering: .relaxed) }
            // Three take every slot, six more wait in the backlog. The idle timeout closes the
            // first three (their slots free one by one), then the waiting ones are taken in and
            // closed in turn: the relay is full for six seconds and never above the limit.
            let holders = try InteractiveProcess(connect(3...5))
            defer { holders.stop() }
            #expect(await holders.waitFor("connected", count: 1))
            let waiting = try InteractiveProcess(connect(3...8))
            defer { waiting.stop() }
            #expect(await waiting.waitFor("connected", count: 1), "the kernel did not queue the waiting connections")
            try await Task.sleep(for: .seconds(7))
            let seen = highest.withLock { $0 }
            #expect(seen == 3, "the relay held at most \(seen) connections with a limit of 3")
        }
    }

    func openConnectionCount(_ h: Harness) -> Double? {
        h.relay.core.metrics.exposition().split(separator: "\n").first { $0.hasPrefix("ketenpost_connections_open ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    /// Waits (up to ten seconds, from `after`) until the relay holds exactly `count` connections.
    func openConnections(_ h: Harness, reach count: Double, after delay: Duration = .zero) async -> Bool {
        try? await Task.sleep(for: delay)
        for _ in 0..<200 {
            if openConnectionCount(h) == count { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}
