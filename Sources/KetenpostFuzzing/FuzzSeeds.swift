import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning

/// The seed corpus of Tests/Fuzz/corpus: a few valid inputs per target, from which libFuzzer
/// mutates. Envelopes and signed receipts are sealed with a throwaway PKI made for the occasion
/// (its keys are dropped, so these seeds are opened only up to the signer's chain in another
/// process, which is what the raw-bytes targets are for). Run from the repository root: the
/// payloads and configuration files are the ones in config/.
public enum FuzzSeeds {
    @discardableResult
    public static func write(to directory: URL) throws -> [String] {
        let fixture = try Fixture()
        var written: [String] = []
        func put(_ target: FuzzTarget, _ name: String, _ data: Data) throws {
            let folder = directory.appendingPathComponent(target.rawValue)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try data.write(to: folder.appendingPathComponent(name))
            written.append("\(target.rawValue)/\(name)")
        }
        func example(_ type: MessageType) throws -> Data {
            try Data(contentsOf: URL(fileURLWithPath: "config/examples/\(type.rawValue).json"))
        }
        func header(_ type: MessageType, full: Bool = false) -> RoutingHeader {
            var header = Fixture.header
            header.type = type
            if type.answers != nil || full { header.correlationId = UUID(uuidString: "0b6c1f0e-8a43-4d2c-9e57-61f4a3c2d8b1") }
            if full {
                header.priority = .urgent
                header.exploitationForm = .labour
                header.region = "GM1903"
            }
            return header
        }

        // The two SignedData parsers: a valid sample, and one layout change each.
        try put(.signedDataParsers, "sample.der", fixture.signedSample)
        for change in SignedDataLayouts.Change.allCases {
            try put(.signedDataParsers, "layout-\(change).bin", Data([change.rawValue]))
        }
        for change in SignedAttributeLayouts.Change.allCases {
            try put(.signedDataParsers, "attributes-\(change).bin", Data([0xE0 + change.rawValue]))
        }

        // Documents.
        try put(.header, "minimal.json", Fixture.header.encoded())
        try put(.header, "full.json", header(.signal, full: true).encoded())
        try put(
            .header,
            "offsets.json",
            Data(
                """
                {"createdAt":"2026-11-28T11:00:00.250+01:00","expiresAt":"2026-12-12t10:00:00z","from":"gemeente-eijsden-margraten",\
                "id":"3F2B8C4E-1D7A-4C9E-9B1F-2A6D5E8C7B90","priority":"normal","to":"zorgcoordinatie-zuid-limburg","type":"intake-notice"}
                """.utf8
            )
        )
        for type in MessageType.allCases {
            try put(.payload, "\(type.rawValue).json", try example(type))
            let content = SealedContent(
                header: header(type),
                payload: try Payload.decode(from: try example(type), now: DocumentTargets.now)
            )
            try put(.envelopeInner, "\(type.rawValue).json", content.encoded())
        }
        let digest = String(repeating: "5e", count: 32)
        let acceptance = Receipt(
            kind: .acceptance,
            messageId: Fixture.header.id,
            messageDigest: digest,
            from: Fixture.senderID,
            to: Fixture.recipientID,
            issuer: DevelopmentPKI.relayID,
            disposition: .accepted,
            time: Fixture.header.createdAt
        )
        let rejection = Receipt(
            kind: .acknowledgement,
            messageId: Fixture.header.id,
            messageDigest: digest,
            from: Fixture.senderID,
            to: Fixture.recipientID,
            issuer: Fixture.recipientID,
            disposition: .rejected,
            reasonCode: "payload.invalid",
            time: Fixture.header.createdAt.addingTimeInterval(5)
        )
        try put(.receipt, "acceptance.json", acceptance.encoded())
        try put(.receipt, "rejection.json", rejection.encoded())
        try put(.receipt, "rejection.der", try SignedReceipt.sign(rejection, as: fixture.recipient))

        // Envelopes, sealed now (Envelope.seal refuses expired headers' payload dates in the future).
        var options = Drafting.Options()
        options.id = Fixture.header.id
        options.region = "GM1903"
        options.exploitationForm = .sexual
        let content = try Drafting.content(
            type: .signal,
            from: Fixture.senderID,
            to: Fixture.recipientID,
            payload: try example(.signal),
            options: options
        )
        let message = try Envelope.seal(content, from: fixture.sender, to: [fixture.recipient.certificate], trust: fixture.trust)
        try put(.envelopeOpen, "signal.der", message)
        let outer = try CMS.verifySignature(message).content
        try put(.envelopeOuter, "signal.json", outer)
        try put(
            .envelopeOuter,
            "short.json",
            Fixture.outerDocument(header: header(.signal, full: true), encrypted: Data([0x30, 0x03, 0x02, 0x01, 0x00]))
        )
        struct OuterEnvelope: Decodable { var envelope: String }
        let encrypted = Data(base64Encoded: try JSONDecoder().decode(OuterEnvelope.self, from: outer).envelope) ?? Data()
        try put(.envelopeEncrypted, "ec.der", encrypted)
        // An RSA recipient (key transport instead of key agreement), over a small inner layer.
        let rsaKey = try PrivateKey.generate(.rsa(bits: 2048))
        let rsaCertificate = try fixture.ca.issue(
            DevelopmentPKI.partnerProfile(fixture.recipientEntry, keyKind: .rsa(bits: 2048), now: Date()),
            for: rsaKey
        )
        let small = try CMS.sign(Data("{}".utf8), signer: fixture.sender.certificate, key: fixture.sender.key)
        try put(.envelopeEncrypted, "rsa.der", try CMS.encrypt(small, for: [rsaCertificate]))

        // HTTP requests as a partner's client sends them (after TLS).
        let id = Fixture.header.id.uuidString.lowercased()
        let requests: [(String, String)] = [
            (
                "submit.http",
                """
                POST /v1/messages HTTP/1.1\r\nHost: relay\r\nContent-Type: application/cms\r\nContent-Length: \
                5\r\n\r\n\u{30}\u{03}\u{02}\u{01}\u{00}
                """
            ),
            ("inbox.http", "GET /v1/inbox?max=5&wait=1.5 HTTP/1.1\r\nHost: relay\r\n\r\n"),
            (
                "ack.http",
                """
                POST /v1/messages/\(id)/ack?lease=Zm9v-YmFy_1 HTTP/1.1\r\nHost: relay\r\nContent-Type: application/pkcs7-mime; \
                smime-type=receipt\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n
                """
            ),
            ("status.http", "GET /v1/messages/\(id) HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n"),
            (
                "directory.http",
                """
                GET /v1/directory/zorgcoordinatie-zuid-limburg/certificates.pem HTTP/1.1\r\nHost: relay\r\n\r\nGET \
                /v1/directory/gemeente-maastricht HTTP/1.1\r\nHost: relay\r\n\r\n
                """
            ),
            ("health.http", "GET /v1/health HTTP/1.1\r\nHost: relay\r\n\r\nGET /v1/ready HTTP/1.0\r\n\r\n"),
            (
                "too-large.http",
                "POST /v1/messages HTTP/1.1\r\nHost: relay\r\nContent-Type: application/octet-stream\r\nContent-Length: 999999\r\n\r\n"
            ),
        ]
        for (name, text) in requests { try put(.httpRequest, name, Data(text.utf8)) }

        // The inbox's binary form: two parts (one with a sealed message), and an empty batch.
        let deliveries = [
            API.InboxDelivery(
                id: UUID(uuidString: "7f1c2d3e-4a5b-4c6d-8e7f-8091a2b3c4d5")!,
                from: "gemeente-maastricht",
                type: "signal",
                leaseToken: "0123456789abcdef0123456789abcdef",
                leaseExpiresAt: Date(timeIntervalSince1970: 1_796_000_000),
                attempt: 1,
                message: fixture.signedSample
            ),
            API.InboxDelivery(
                id: UUID(uuidString: "0b6c1f0e-8a43-4d2c-9e57-61f4a3c2d8b1")!,
                from: "politie-limburg",
                type: "referral",
                leaseToken: "fedcba9876543210fedcba9876543210",
                leaseExpiresAt: Date(timeIntervalSince1970: 1_796_000_060),
                attempt: 3,
                message: Data("\r\n--b\r\n".utf8)
            ),
        ]
        try put(.inboxMultipart, "two-parts.bin", Data("ketenpost-b\n".utf8) + InboxMultipart.encode(deliveries, boundary: "ketenpost-b"))
        try put(.inboxMultipart, "empty.bin", Data("b\n--b--\r\n".utf8))

        // Configuration files: the shipped ones and a few short variants.
        try put(.configRelay, "ketenpost.yaml", try Data(contentsOf: URL(fileURLWithPath: "config/ketenpost.yaml")))
        try put(
            .configRelay,
            "short.yaml",
            Data(
                "queue:\n  leaseDuration: 90s\n  maxLifetime: {signal: 2d}\nlimits: {ratePerSecond: 2.5, rateBurst: 10}\ntls:\n  crls: []\n"
                    .utf8
            )
        )
        try put(.configPartners, "partners.yaml", try Data(contentsOf: URL(fileURLWithPath: "config/partners.yaml")))
        try put(
            .configPartners,
            "short.yaml",
            Data(
                """
                partners:\n  - {id: a1, name: A, role: shelter, oin: '00000001002220647000', state: suspended, key: rsa-2048, \
                certificates: [a.pem]}\n
                """
                .utf8
            )
        )
        try put(.configPolicy, "policy.yaml", try Data(contentsOf: URL(fileURLWithPath: "config/policy.yaml")))
        return written
    }

    /// Removes this process's scratch directory (the relay harness's store, temporary files).
    public static func removeScratch() {
        try? FileManager.default.removeItem(at: Scratch.directory)
    }
}
