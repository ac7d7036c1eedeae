import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning

/// The throwaway PKI of one fuzzing process: a CA with an empty CRL, a sender, a recipient and
/// the relay. Keys are generated in memory at start-up and never written anywhere.
final class Fixture: Sendable {
    static let senderID = "gemeente-eijsden-margraten"
    static let recipientID = "zorgcoordinatie-zuid-limburg"

    static let shared: Fixture = {
        do { return try Fixture() } catch { fatalError("cannot create the fuzzing PKI: \(error)") }
    }()

    let ca: CertificateIssuer
    let trust: TrustStore
    let sender: Identity
    let recipient: Identity
    let relay: Identity
    /// A SignedData by the sender that carries a second certificate (the CA's), for the layout changes.
    let signedSample: Data
    var senderEntry: PartnerEntry { Self.senderEntry }
    var recipientEntry: PartnerEntry { Self.recipientEntry }
    static let senderEntry = PartnerEntry(
        id: senderID,
        name: "Gemeente Eijsden-Margraten",
        role: .municipality,
        oin: "00000001002220647000"
    )
    static let recipientEntry = PartnerEntry(
        id: recipientID,
        name: "Zorgcoördinatie Zuid-Limburg",
        role: .careCoordinator,
        oin: "00000009000000000002"
    )

    /// The header that wraps fuzzed layers: fixed, so that inputs replay the same way in every
    /// process (it expired long ago; the targets open with `allowExpired`).
    static let header = RoutingHeader(
        id: UUID(uuidString: "3f2b8c4e-1d7a-4c9e-9b1f-2a6d5e8c7b90")!,
        type: .signal,
        from: senderID,
        to: recipientID,
        createdAt: Date(timeIntervalSince1970: 1_795_860_000),
        expiresAt: Date(timeIntervalSince1970: 1_795_860_000 + 14 * 86_400),
        priority: .normal
    )

    init(now: Date = Date()) throws {
        ca = try CertificateIssuer.selfSigned(DevelopmentPKI.caProfile(now: now, name: "Ketenpost Fuzzing CA"), key: .generate(.ecP256))
        let crl = try ca.revocationList(
            revokedSerials: [],
            lastUpdate: now.addingTimeInterval(-60),
            nextUpdate: now.addingTimeInterval(30 * 86_400)
        )
        trust = try TrustStore(anchors: [ca.certificate], revocationLists: [crl])
        let issuer = ca
        func identity(_ entry: PartnerEntry) throws -> Identity {
            let key = try PrivateKey.generate(.ecP256)
            return try Identity(
                certificate: try issuer.issue(DevelopmentPKI.partnerProfile(entry, keyKind: .ecP256, now: now), for: key),
                key: key
            )
        }
        sender = try identity(Self.senderEntry)
        recipient = try identity(Self.recipientEntry)
        let relayKey = try PrivateKey.generate(.ecP256)
        relay = try Identity(certificate: try ca.issue(DevelopmentPKI.relayProfile(now: now), for: relayKey), key: relayKey)
        signedSample = try CMS.sign(Data("sample".utf8), signer: sender.certificate, key: sender.key, extraCertificates: [ca.certificate])
    }

    /// The canonical outer document around an encrypted layer.
    static func outerDocument(header: RoutingHeader, encrypted: Data) -> Data {
        // Built by hand in canonical key order: Envelope's own encoder type is internal.
        var text = "{\"envelope\":\"\(encrypted.base64EncodedString())\",\"format\":\"\(Envelope.format)\",\"header\":"
        text += String(decoding: header.encoded(), as: UTF8.self) + "}"
        return Data(text.utf8)
    }
}

/// One scratch directory per process, for the targets whose API takes a path.
enum Scratch {
    static let directory: URL = {
        let base =
            FileManager.default.fileExists(atPath: "/dev/shm") ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        let url = base.appendingPathComponent("ketenpost-fuzz-\(getpid())-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// Writes `data` to a fresh file, runs `body` with its path and removes the file.
    static func withFile<T>(_ data: Data, _ body: (String) throws -> T) rethrows -> T {
        let url = directory.appendingPathComponent(UUID().uuidString)
        _ = FileManager.default.createFile(atPath: url.path, contents: data)
        defer { try? FileManager.default.removeItem(at: url) }
        return try body(url.path)
    }
}
