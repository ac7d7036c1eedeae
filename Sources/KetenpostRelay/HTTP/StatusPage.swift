import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostStore
import Mustache

/// The administrators' status page: partners and their certificates, queues, rotations in
/// progress and recent failures, as metadata. Plain HTML and CSS, no scripts; it refreshes
/// itself every 30 seconds. The HTML is a Mustache template (`StatusPageTemplate`), which
/// escapes every value; this type only gathers the values.
enum StatusPage {
    static let template: MustacheTemplate = {
        do { return try MustacheTemplate(string: StatusPageTemplate.html) } catch {
            fatalError("the status page template does not parse: \(error)")  // a build-time constant; a test renders it
        }
    }()

    struct View {
        struct Certificate {
            let state: String
            let fingerprint: String
            let uses: String
            let note: String
            let soon: Bool
            let refused: Bool
            let refusal: String
        }
        struct Partner {
            let id: String
            let name: String
            let role: String
            let state: String
            let rowClass: String
            let certificates: [Certificate]
        }
        struct Rotation {
            let partner: String
            let fingerprint: String
            let retiresAt: String
        }
        struct Queue {
            let recipient: String
            let pending: Int
            let oldest: String
            let late: Bool
        }
        struct Failure {
            let when: String
            let what: String
            let message: String
            let recipient: String
            let sender: String
            let detail: String
        }
        let relayID: String
        let asOf: String
        let directoryVersion: Int64
        let store: String
        let warnDays: Int
        let staleCRL: Bool
        let staleCRLFiles: String
        let staleCRLConsequence: String
        let partners: [Partner]
        struct CRL {
            let ca: String
            let state: String
            let tag: String
            let rowClass: String
            let inEffect: Bool
            let thisUpdate: String
            let nextUpdate: String
            let revoked: Int
            let source: String
            let lastError: String
        }
        let hasCRLs: Bool
        let crls: [CRL]
        let hasRotations: Bool
        let rotations: [Rotation]
        let storeAnswers: Bool
        let queues: [Queue]
        let hasFailures: Bool
        let failures: [Failure]
    }

    static func render(_ core: RelayCore) async -> String {
        template.render(await view(core))
    }

    static func view(_ core: RelayCore) async -> View {
        let now = core.clock()
        let directory = core.directory.snapshot
        let stats = try? await core.store.queueStats()
        let failures = await recentFailures(core)
        let staleCRLs = core.credentials.staleRevocationLists(at: Date())
        let warnWithin = core.configuration.directory.expiryWarning
        let partners = directory.partners.values.sorted { $0.id < $1.id }
        let trust = core.credentials.trust

        let partnerRows = partners.map { partner in
            let certificates = partner.certificates.map { certificate in
                let state = certificate.state(at: now)
                let days = Int((certificate.record.notAfter.timeIntervalSince(now) / 86_400).rounded(.down))
                var note = "until \(day(certificate.record.notAfter)) (\(days) days)"
                if let retiresAt = certificate.record.retiresAt, state == .retiring { note += ", retires \(time(retiresAt))" }
                if let reason = certificate.record.revocationReason { note += ", revoked: \(reason)" }
                if state == .pending { note += ", active from \(time(certificate.record.activatesAt))" }
                // The directory may list it, but the CA (CRL) or the chain may still refuse it.
                var refusal: String?
                if state.isUsable {
                    do throws(CryptoError) {
                        try trust.verify(certificate.certificate, chain: certificate.intermediates, for: .tlsClient)
                    } catch {
                        refusal = KetenpostError.certificate(error, role: "partner").code.rawValue
                    }
                }
                return View.Certificate(
                    state: state.rawValue,
                    fingerprint: String(certificate.fingerprint.prefix(16)),
                    uses: certificate.record.uses.map(\.rawValue).joined(separator: ", "),
                    note: note,
                    soon: state.isUsable && certificate.record.notAfter.timeIntervalSince(now) < warnWithin,
                    refused: refusal != nil,
                    refusal: refusal ?? ""
                )
            }
            let unusable = partner.certificates.allSatisfy {
                !$0.state(at: now).isUsable || (try? trust.verify($0.certificate, chain: $0.intermediates, for: .tlsClient)) == nil
            }
            let rowClass = partner.state == .suspended || unusable ? "bad" : certificates.contains(where: \.soon) ? "warn" : ""
            return View.Partner(
                id: partner.id,
                name: partner.name,
                role: partner.role.rawValue,
                state: partner.state.rawValue,
                rowClass: rowClass,
                certificates: certificates
            )
        }
        let rotations = partners.flatMap { partner in
            partner.certificates.filter { $0.state(at: now) == .retiring }.map {
                View.Rotation(
                    partner: partner.id,
                    fingerprint: String($0.fingerprint.prefix(16)),
                    retiresAt: $0.record.retiresAt.map(time) ?? "-"
                )
            }
        }
        let inboxes = Dictionary(uniqueKeysWithValues: (stats?.inboxes ?? []).map { ($0.recipient, $0) })
        let queues = partners.map { partner in
            let inbox = inboxes[partner.id]
            let age = inbox?.oldestAcceptedAt.map { now.timeIntervalSince($0) }
            return View.Queue(
                recipient: partner.id,
                pending: inbox?.pending ?? 0,
                oldest: age.map(duration) ?? "—",
                late: (age ?? 0) > 3600
            )
        }
        let failureRows = failures.map { record in
            // Rejections are recorded with the recipient as actor; expiry and dead-letters by the relay.
            View.Failure(
                when: time(record.date),
                what: record.action.replacingOccurrences(of: "message.", with: ""),
                message: String((record.messageId ?? "").prefix(8)),
                recipient: record.action == "message.rejected" ? record.actor : (record.partnerId ?? ""),
                sender: record.action == "message.rejected" ? (record.partnerId ?? "") : "",
                detail: record.detail ?? ""
            )
        }
        let crlRows = ((try? await core.administration.revocationLists(logger: core.logger))?.lists ?? []).map { list in
            View.CRL(
                ca: list.ca,
                state: list.state,
                tag: list.state == "current" ? "active" : "revoked",
                rowClass: list.state == "current" ? (list.lastError == nil ? "" : "warn") : "bad",
                inEffect: list.inEffect,
                thisUpdate: list.thisUpdate.map(time) ?? "–",
                nextUpdate: list.nextUpdate.map(time) ?? "–",
                revoked: list.revokedCount,
                source: list.source,
                lastError: list.lastError ?? ""
            )
        }
        return View(
            relayID: core.configuration.relay.id,
            asOf: time(now),
            directoryVersion: directory.version,
            store: core.configuration.storeLocation.redacted,
            warnDays: Int(warnWithin / 86_400),
            staleCRL: !staleCRLs.isEmpty,
            staleCRLFiles: staleCRLs.joined(separator: ", "),
            staleCRLConsequence: core.configuration.tls.acceptStaleCRL
                ? "still accepting (tls.staleCRL: accept)" : "certificates of that CA are refused until a fresh CRL is in place",
            partners: partnerRows,
            hasCRLs: !crlRows.isEmpty,
            crls: crlRows,
            hasRotations: !rotations.isEmpty,
            rotations: rotations,
            storeAnswers: stats != nil,
            queues: queues,
            hasFailures: !failureRows.isEmpty,
            failures: failureRows
        )
    }

    /// Expired, dead-lettered and rejected messages among the latest 2,000 audit records, newest first.
    static func recentFailures(_ core: RelayCore) async -> [AuditRecord] {
        guard let head = try? await core.store.auditHead() else { return [] }
        let records = (try? await core.store.auditRecords(after: max(0, head.sequence - 2_000), limit: 2_000)) ?? []
        return Array(
            records.filter { ["message.expired", "message.dead-lettered", "message.rejected"].contains($0.action) }.reversed().prefix(50)
        )
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
