import Foundation
import KetenpostAPI
import KetenpostEnvelope
import KetenpostCrypto
import KetenpostModel
import KetenpostStore

/// The administrators' status page: partners and their certificates, queues, rotations in
/// progress and recent failures, as metadata. Plain HTML and CSS, no scripts; it refreshes
/// itself every 30 seconds.
enum StatusPage {
    static func render(_ core: RelayCore) async -> String {
        let now = core.clock()
        let directory = core.directory.snapshot
        let stats = try? await core.store.queueStats()
        let failures = await recentFailures(core)
        let staleCRLs = core.credentials.value.staleCRLs(at: now)
        let warnWithin = core.configuration.directory.expiryWarning
        let partners = directory.partners.values.sorted { $0.id < $1.id }

        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>Ketenpost relay status</title>
            <style>
            body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
            h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; }
            table { border-collapse: collapse; width: 100%; background: #fff; }
            th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e2e2e6; vertical-align: top; }
            th { background: #f0f0f4; font-weight: 600; }
            td.num { text-align: right; font-variant-numeric: tabular-nums; }
            .ok { color: #166534; } .warn { background: #fff7d6; } .bad { background: #fde2e2; }
            .tag { display: inline-block; padding: 0 .4rem; border-radius: .3rem; font-size: .85em; border: 1px solid #ccc; }
            .tag.revoked, .tag.expired, .tag.suspended { border-color: #b91c1c; color: #b91c1c; }
            .tag.retiring, .tag.pending { border-color: #a16207; color: #a16207; }
            .tag.active { border-color: #166534; color: #166534; }
            .alarm { padding: .6rem .8rem; background: #fde2e2; border: 1px solid #b91c1c; margin: .8rem 0; }
            code { font-size: .9em; } .muted { color: #666; }
            </style></head><body>
            <h1>Ketenpost relay <code>\(e(core.configuration.relay.id))</code></h1>
            <p class="muted">As of \(e(time(now))) · directory version \(directory.version) · store \(e(core.configuration.storeLocation.redacted)) · certificates expiring within \(Int(warnWithin / 86_400)) days are highlighted</p>

            """
        if !staleCRLs.isEmpty {
            html += "<div class=\"alarm\" id=\"crl-alarm\"><strong>CRL past its next update:</strong> \(staleCRLs.map { e(URL(fileURLWithPath: $0).lastPathComponent) }.joined(separator: ", ")) — \(core.configuration.tls.acceptStaleCRL ? "still accepting (tls.staleCRL: accept)" : "certificates of that CA are refused until a fresh CRL is in place")</div>\n"
        }

        // Partners and certificates.
        html += "<h2>Partners</h2>\n<table id=\"partners\"><thead><tr><th>Partner</th><th>Role</th><th>State</th><th>Certificates</th></tr></thead><tbody>\n"
        for partner in partners {
            let certificates = partner.certificates.map { certificate -> String in
                let state = certificate.state(at: now)
                let days = Int((certificate.record.notAfter.timeIntervalSince(now) / 86_400).rounded(.down))
                var note = "until \(e(day(certificate.record.notAfter))) (\(days) days)"
                if let retiresAt = certificate.record.retiresAt, state == .retiring { note += ", retires \(e(time(retiresAt)))" }
                if let reason = certificate.record.revocationReason { note += ", revoked: \(e(reason))" }
                if state == .pending { note += ", active from \(e(time(certificate.record.activatesAt)))" }
                // The directory may list it, but the CA (CRL) or the chain may still refuse it.
                var refusal = ""
                if state.isUsable {
                    do throws(CryptoError) { try core.credentials.trust.verify(certificate.certificate, for: .tlsClient) } catch {
                        refusal = " <span class=\"tag revoked\">refused: \(e(KetenpostError.certificate(error, role: "partner").code.rawValue))</span>"
                    }
                }
                let soon = state.isUsable && certificate.record.notAfter.timeIntervalSince(now) < warnWithin
                return "<div class=\"\(soon ? "warn" : "")\"><span class=\"tag \(state.rawValue)\">\(state.rawValue)</span> <code>\(e(String(certificate.fingerprint.prefix(16))))</code> \(e(certificate.record.uses.map(\.rawValue).joined(separator: ", "))) · \(note)\(soon ? " · <strong>expires soon</strong>" : "")\(refusal)</div>"
            }.joined()
            let trust = core.credentials.trust
            let rowClass = partner.state == .suspended || partner.certificates.allSatisfy({
                !$0.state(at: now).isUsable || (try? trust.verify($0.certificate, for: .tlsClient)) == nil
            }) ? "bad"
                : partner.certificates.contains { $0.state(at: now).isUsable && $0.record.notAfter.timeIntervalSince(now) < warnWithin } ? "warn" : ""
            html += "<tr class=\"\(rowClass)\" id=\"partner-\(e(partner.id))\"><td><strong>\(e(partner.id))</strong><br><span class=\"muted\">\(e(partner.name))</span></td><td>\(e(partner.role.rawValue))</td><td><span class=\"tag \(partner.state.rawValue)\">\(partner.state.rawValue)</span></td><td>\(certificates)</td></tr>\n"
        }
        html += "</tbody></table>\n"

        // Rotations in progress.
        let rotations = partners.flatMap { partner in
            partner.certificates.filter { $0.state(at: now) == .retiring }.map { (partner.id, $0) }
        }
        html += "<h2>Rotations in progress</h2>\n"
        if rotations.isEmpty {
            html += "<p class=\"muted\" id=\"rotations\">None.</p>\n"
        } else {
            html += "<table id=\"rotations\"><thead><tr><th>Partner</th><th>Old certificate</th><th>Keeps working until</th></tr></thead><tbody>\n"
            for (partner, certificate) in rotations {
                html += "<tr><td>\(e(partner))</td><td><code>\(e(String(certificate.fingerprint.prefix(16))))</code></td><td>\(e(certificate.record.retiresAt.map(time) ?? "-"))</td></tr>\n"
            }
            html += "</tbody></table>\n"
        }

        // Queues.
        html += "<h2>Queues</h2>\n"
        if let stats {
            let inboxes = Dictionary(uniqueKeysWithValues: stats.inboxes.map { ($0.recipient, $0) })
            html += "<table id=\"queues\"><thead><tr><th>Recipient</th><th>Pending</th><th>Oldest waiting</th></tr></thead><tbody>\n"
            for partner in partners {
                let inbox = inboxes[partner.id]
                let age = inbox?.oldestAcceptedAt.map { now.timeIntervalSince($0) }
                let late = (age ?? 0) > 3600
                html += "<tr class=\"\(late ? "warn" : "")\"><td>\(e(partner.id))</td><td class=\"num\">\(inbox?.pending ?? 0)</td><td>\(age.map(duration) ?? "—")</td></tr>\n"
            }
            html += "</tbody></table>\n"
        } else {
            html += "<p class=\"alarm\">The store does not answer.</p>\n"
        }

        // Recent failures.
        html += "<h2>Recent failures</h2>\n"
        if failures.isEmpty {
            html += "<p class=\"muted\" id=\"failures\">None among the latest events.</p>\n"
        } else {
            html += "<table id=\"failures\"><thead><tr><th>When</th><th>What</th><th>Message</th><th>Recipient</th><th>Sender</th><th>Detail</th></tr></thead><tbody>\n"
            for record in failures {
                // Rejections are recorded with the recipient as actor; expiry and dead-letters by the relay.
                let recipient = record.action == "message.rejected" ? record.actor : (record.partnerId ?? "")
                let sender = record.action == "message.rejected" ? (record.partnerId ?? "") : ""
                html += "<tr><td>\(e(time(record.date)))</td><td>\(e(record.action.replacingOccurrences(of: "message.", with: "")))</td><td><code>\(e(String((record.messageId ?? "").prefix(8))))</code></td><td>\(e(recipient))</td><td>\(e(sender))</td><td>\(e(record.detail ?? ""))</td></tr>\n"
            }
            html += "</tbody></table>\n"
        }
        html += "</body></html>\n"
        return html
    }

    /// Expired, dead-lettered and rejected messages among the latest 2,000 audit records, newest first.
    static func recentFailures(_ core: RelayCore) async -> [AuditRecord] {
        guard let head = try? await core.store.auditHead() else { return [] }
        let records = (try? await core.store.auditRecords(after: max(0, head.sequence - 2_000), limit: 2_000)) ?? []
        return Array(records.filter { ["message.expired", "message.dead-lettered", "message.rejected"].contains($0.action) }.reversed().prefix(50))
    }

    static func e(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&": out += "&amp;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    static func time(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    static func day(_ date: Date) -> String { String(time(date).prefix(10)) }

    static func duration(_ seconds: TimeInterval) -> String {
        let s = Int(max(0, seconds))
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        if s < 172_800 { return "\(s / 3600) h" }
        return "\(s / 86_400) days"
    }
}
