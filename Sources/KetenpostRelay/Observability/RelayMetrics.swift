import CoreMetrics
import Foundation
import KetenpostStore
import Prometheus
import Synchronization

/// The relay's metrics, in its own registry (several relays can run in one process, as in the
/// tests). Labels are partner ids, message types, states and reason codes: metadata only.
///
/// Counters and histograms count what this instance did (sum them over instances); the queue
/// and message-state gauges are read from the store at each scrape, so every instance shows
/// the shared truth.
public final class RelayMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory
    let crlStale: Prometheus.Gauge
    let directoryVersion: Prometheus.Gauge
    let connectionsOpen: Prometheus.Gauge
    private let certificateGauges = Mutex<[String: Prometheus.Gauge]>([:])
    private let dynamicGauges = Mutex<[String: Prometheus.Gauge]>([:])

    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Submissions take milliseconds; a message waits for its recipient seconds to days.
        factory.durationHistogramBuckets = [
            "ketenpost_submit_duration_seconds": [
                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(5),
            ],
            "ketenpost_end_to_end_seconds": [
                .seconds(1), .seconds(5), .seconds(30), .seconds(60), .seconds(300), .seconds(900), .seconds(3600),
                .seconds(4 * 3600), .seconds(86_400), .seconds(3 * 86_400), .seconds(7 * 86_400),
            ],
        ]
        self.factory = factory
        crlStale = registry.makeGauge(
            descriptor: .init(
                namespace: "ketenpost",
                metricName: "crl",
                unitName: "stale",
                helpText: "Number of configured CRLs past their next update (an alarm when above 0)."
            )
        )
        directoryVersion = registry.makeGauge(
            descriptor: .init(
                namespace: "ketenpost",
                metricName: "directory",
                unitName: "version",
                helpText: "Version of the partner directory this instance uses."
            )
        )
        connectionsOpen = registry.makeGauge(
            descriptor: .init(
                namespace: "ketenpost",
                metricName: "connections",
                unitName: "open",
                helpText: "TCP connections open on the partner port, TLS handshakes included (at most limits.maxConnections)."
            )
        )
    }

    // MARK: Events of this instance

    /// `accepted`, `delivered`, `acknowledged` or `rejected`, per message type.
    func count(_ event: String, type: String) {
        CoreMetrics.Counter(label: "ketenpost_messages_\(event)_total", dimensions: [("type", type)], factory: factory).increment()
    }

    /// A submission refused by the sender's storage quota.
    func quotaRefused(sender: String) {
        CoreMetrics.Counter(label: "ketenpost_quota_refusals_total", dimensions: [("partner", sender)], factory: factory).increment()
    }

    func submitted(after duration: Duration) {
        CoreMetrics.Timer(label: "ketenpost_submit_duration_seconds", factory: factory).recordNanoseconds(nanoseconds(duration))
    }

    /// From acceptance to the recipient's acknowledgement.
    func endToEnd(seconds: TimeInterval, type: String) {
        CoreMetrics.Timer(label: "ketenpost_end_to_end_seconds", dimensions: [("type", type)], factory: factory)
            .recordNanoseconds(Int64(max(0, seconds) * 1e9))
    }

    /// A check of the credential files (SIGHUP, the schedule, the admin API): `unchanged`,
    /// `installed` (a new set in use) or `refused` (unreadable or invalid; the old set stays).
    func credentialCheck(_ result: String) {
        CoreMetrics.Counter(label: "ketenpost_credential_checks_total", dimensions: [("result", result)], factory: factory).increment()
    }

    /// A refused TLS handshake: the certificate error code or the directory state.
    func handshakeFailed(reason: String) {
        CoreMetrics.Counter(label: "ketenpost_tls_handshake_failures_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    // MARK: Gauges

    func setCRLAge(file: String, seconds: Double) {
        gauge(
            "ketenpost_crl_age_seconds",
            [("crl", URL(fileURLWithPath: file).lastPathComponent)],
            help: "Seconds since the CRL's lastUpdate."
        ).set(seconds)
    }

    /// Queue depth and oldest age per recipient, and messages by type and state, from the store.
    /// Every partner of the directory gets a queue gauge, 0 when its inbox is empty.
    func setQueue(_ stats: QueueStats, partners: some Sequence<String>, now: Date) {
        let pending = Dictionary(uniqueKeysWithValues: stats.inboxes.map { ($0.recipient, $0) })
        // Recipients seen before and empty now drop to 0 rather than keep their last value.
        let known = dynamicGauges.withLock { gauges in
            Set(gauges.keys.filter { $0.hasPrefix("ketenpost_queue_depth|") }.map { String($0.dropFirst("ketenpost_queue_depth|".count)) })
        }
        for recipient in known.union(pending.keys).union(partners) {
            let inbox = pending[recipient]
            gauge("ketenpost_queue_depth", [("recipient", recipient)], help: "Messages waiting for or leased to the recipient.")
                .set(Double(inbox?.pending ?? 0))
            gauge("ketenpost_queue_oldest_age_seconds", [("recipient", recipient)], help: "Age of the recipient's oldest pending message.")
                .set(inbox?.oldestAcceptedAt.map { max(0, now.timeIntervalSince($0)) } ?? 0)
        }
        // A type and state the store no longer reports (its last message moved on) drops to 0
        // rather than keep its last value, as the inbox gauges do.
        let counted = Dictionary(stats.byTypeAndState.map { ("\($0.type)|\($0.state)", $0.count) }, uniquingKeysWith: +)
        let seen = dynamicGauges.withLock { gauges in
            Set(gauges.keys.filter { $0.hasPrefix("ketenpost_messages|") }.map { String($0.dropFirst("ketenpost_messages|".count)) })
        }
        for key in seen.union(counted.keys) {
            let parts = key.split(separator: "|", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            gauge(
                "ketenpost_messages",
                [("type", parts[0]), ("state", parts[1])],
                help: "Messages in the store by type and state (final states included)."
            ).set(Double(counted[key] ?? 0))
        }
    }

    /// One `ketenpost_certificate_days_left` gauge per usable certificate; gauges of
    /// certificates that are no longer usable are removed.
    func setCertificateDays(_ values: [(partner: String, fingerprint: String, days: Double)]) {
        certificateGauges.withLock { gauges in
            var keep = Set<String>()
            for value in values {
                let key = value.fingerprint
                keep.insert(key)
                let gauge =
                    gauges[key]
                    ?? registry.makeGauge(
                        descriptor: .init(
                            namespace: "ketenpost",
                            metricName: "certificate_days",
                            unitName: "left",
                            helpText: "Days until a partner certificate's notAfter (active and retiring certificates)."
                        ),
                        labels: [("partner", value.partner), ("fingerprint", String(value.fingerprint.prefix(16)))]
                    )
                gauge.set(value.days)
                gauges[key] = gauge
            }
            for (key, gauge) in gauges where !keep.contains(key) {
                registry.unregisterGauge(gauge)
                gauges[key] = nil
            }
        }
    }

    public func exposition() -> String { registry.emitToString() }

    private func gauge(_ name: String, _ labels: [(String, String)], help: String) -> Prometheus.Gauge {
        let key = name + "|" + labels.map(\.1).joined(separator: "|")
        return dynamicGauges.withLock { gauges in
            if let gauge = gauges[key] { return gauge }
            // "ketenpost_queue_oldest_age_seconds" → namespace, metric name, unit.
            var parts = name.split(separator: "_").map(String.init)
            let namespace = parts.removeFirst()
            let unit = parts.count > 1 ? parts.removeLast() : ""
            let gauge = registry.makeGauge(
                descriptor: .init(
                    namespace: namespace,
                    metricName: parts.joined(separator: "_"),
                    unitName: unit,
                    helpText: help
                ),
                labels: labels
            )
            gauges[key] = gauge
            return gauge
        }
    }

    private func nanoseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
    }
}
