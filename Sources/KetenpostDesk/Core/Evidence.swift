import Foundation
import Hummingbird
import KetenpostAPI
import KetenpostCrypto
import NIOCore
import ZIPFoundation

/// The evidence package of one message: the sealed message, the receipts, a readable summary
/// (metadata only: the content stays sealed, so the package can go to an auditor or a judge
/// without sharing the person's data) and the `openssl` commands that let anybody check them.
enum Evidence {
    /// The ZIP as a download, logged as one for `actor` (staff on the page, a case system's token).
    static func download(_ message: DeskMessage, core: DeskCore, by actor: AccessEvent.Actor, english: Bool) async throws -> Response {
        let zip = try await zip(message, core: core, english: english)
        try core.store.accessLog.recordEvent(
            AccessEvent(staff: actor.staff, role: actor.role, action: .download, messageId: message.id, detail: "evidence")
        )
        var response = Response(status: .ok, headers: [.contentType: "application/zip"], body: .init(byteBuffer: ByteBuffer(bytes: zip)))
        response.headers[.contentDisposition] = "attachment; filename=\"ketenpost-\(message.id).zip\""
        return response
    }

    static func zip(_ message: DeskMessage, core: DeskCore, english: Bool) async throws -> Data {
        guard let sealed = message.sealed else { throw KetenpostError(.deskWrongState, "There is no sealed message to package yet.") }
        var files: [(String, Data)] = [("message.cms", sealed)]
        if let receipt = message.acceptanceReceipt { files.append(("acceptance-receipt.cms", receipt)) }
        if let receipt = message.recipientReceipt { files.append(("recipient-receipt.cms", receipt)) }
        files.append(("ca.pem", Data(core.trust.anchors.map(\.pem).joined().utf8)))
        files.append(("summary.txt", Data(summary(message, core: core, english: english).utf8)))
        files.append(("VERIFY.txt", Data(commands(message).utf8)))
        let archive: Archive
        do {
            archive = try Archive(data: Data(), accessMode: .create)
            for (name, data) in files {
                try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(data.count), compressionMethod: .deflate) {
                    position,
                    size in
                    data.subdata(in: Int(position)..<Int(position) + size)
                }
            }
        } catch {
            throw KetenpostError(.internalError, "The evidence package could not be made; try again.")
        }
        guard let data = archive.data else { throw KetenpostError(.internalError, "The evidence package could not be made; try again.") }
        return data
    }

    static func summary(_ m: DeskMessage, core: DeskCore, english: Bool) -> String {
        let labels = Labels(english: english)
        func time(_ ms: Int64?) -> String {
            guard let ms else { return "-" }
            return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
        }
        let outgoing = m.direction == .outgoing
        var lines = [
            english ? "Ketenpost evidence package" : "Ketenpost-bewijspakket",
            "",
            "message id:      \(m.id)",
            "type:            \(m.type) (\(labels.type(m.type)))",
            "from:            \(outgoing ? core.partnerID : m.counterpart)",
            "to:              \(outgoing ? m.counterpart : core.partnerID)",
            "priority:        \(m.priority)",
            "sent at:         \(time(m.sentAt))",
            "expires at:      \(time(m.expiresAt))",
            "state at desk:   \(m.state.rawValue) (\(labels.state(m.state)))",
            "sha-256 of message.cms: \(m.digest ?? "-")",
        ]
        if let reason = m.reasonCode { lines.append("reason code:     \(reason)") }
        if let outcome = m.outcome { lines.append("answer:          \(outcome)\(m.outcomeReason.map { " (\($0))" } ?? "")") }
        if let answer = m.answerId { lines.append("answered by:     \(answer) at \(time(m.answeredAt))") }
        lines += [
            "",
            english
                ? """
                The content is not in this package: message.cms is sealed (encrypted) for the recipient. The receipts name the \
                message by its id and the SHA-256 digest above.
                """
                : """
                De inhoud zit niet in dit pakket: message.cms is versleuteld voor de ontvanger. De ontvangstbewijzen noemen het \
                bericht bij zijn id en de SHA-256 hierboven.
                """,
            "",
        ]
        return lines.joined(separator: "\n")
    }

    static func commands(_ m: DeskMessage) -> String {
        var lines = [
            "# Check this package with OpenSSL (3.0 or later), in the folder where it was unpacked.",
            "# Compare the fingerprint of ca.pem with the one your chain publishes before you trust it:",
            "openssl x509 -in ca.pem -noout -fingerprint -sha256",
            "",
            "# 1. The message: the sender's signature over the routing header and the sealed content.",
            "openssl cms -verify -binary -inform DER -in message.cms -CAfile ca.pem -purpose any -out message-outer.json",
            "openssl dgst -sha256 message.cms    # must equal \(m.digest ?? "the digest in the receipts")",
        ]
        if m.acceptanceReceipt != nil {
            lines += [
                "",
                "# 2. The relay's acceptance receipt: signed by the relay; names the message id and the digest above.",
                """
                openssl cms -verify -binary -inform DER -in acceptance-receipt.cms -CAfile ca.pem -purpose sslserver -out \
                acceptance-receipt.json
                """,
                "grep -o '\"messageDigest\":\"[0-9a-f]*\"' acceptance-receipt.json",
            ]
        }
        if m.recipientReceipt != nil {
            lines += [
                "",
                "# 3. The recipient's receipt: signed by the recipient; disposition processed or rejected, same id and digest.",
                "openssl cms -verify -binary -inform DER -in recipient-receipt.cms -CAfile ca.pem -purpose any -out recipient-receipt.json",
                "grep -o '\"messageDigest\":\"[0-9a-f]*\"' recipient-receipt.json",
            ]
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
