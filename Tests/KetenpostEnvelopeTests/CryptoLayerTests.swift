import Foundation
import KetenpostAPI
import KetenpostModel
import KetenpostProvisioning
import Testing

@testable import KetenpostCrypto
@testable import KetenpostEnvelope

@Suite struct ReceiptTests {
    let pki = TestPKI.shared

    func receipt(issuer: String, disposition: Receipt.Disposition = .processed, reason: String? = nil) -> Receipt {
        Receipt(
            kind: .acknowledgement,
            messageId: UUID(),
            messageDigest: Digest.sha256(Data("m".utf8)).hexString,
            from: "gemeente-eijsden-margraten",
            to: issuer,
            issuer: issuer,
            disposition: disposition,
            reasonCode: reason,
            time: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        )
    }

    @Test func signedReceiptVerifies() throws {
        let coordinator = try pki.identity("zorgcoordinatie-zuid-limburg")
        for value in [
            receipt(issuer: coordinator.partnerID),
            receipt(issuer: coordinator.partnerID, disposition: .rejected, reason: "schema.invalid"),
        ] {
            let signed = try SignedReceipt.sign(value, as: coordinator)
            let verified = try SignedReceipt.verify(signed, trust: pki.trust)
            #expect(verified.receipt == value)
            #expect(verified.signer == coordinator.certificate)
        }
    }

    @Test func tamperedForgedAndMalformedReceipts() throws {
        let coordinator = try pki.identity("zorgcoordinatie-zuid-limburg")
        var signed = try SignedReceipt.sign(receipt(issuer: coordinator.partnerID), as: coordinator)
        flip(&signed, at: "processed")
        expectCode(.receiptSignatureInvalid) { _ = try SignedReceipt.verify(signed, trust: pki.trust) }
        // Signed by another partner than the issuer it names.
        let shelter = try pki.identity("opvang-zuid-limburg")
        let forged = try CMS.sign(receipt(issuer: coordinator.partnerID).encoded(), signer: shelter.certificate, key: shelter.key)
        expectCode(.receiptSignerMismatch) { _ = try SignedReceipt.verify(forged, trust: pki.trust) }
        expectCode(.receiptSignerMismatch) { _ = try SignedReceipt.sign(receipt(issuer: coordinator.partnerID), as: shelter) }
        // Not a receipt at all.
        let notReceipt = try CMS.sign(Data("{}".utf8), signer: shelter.certificate, key: shelter.key)
        expectCode(.receiptInvalid) { _ = try SignedReceipt.verify(notReceipt, trust: pki.trust) }
        expectCode(.receiptMalformed) { _ = try SignedReceipt.verify(Data([0x30, 0x03, 0x02]), trust: pki.trust) }
        // Untrusted signer.
        let evil = try pki.makeIdentity("zorgcoordinatie-zuid-limburg", issuer: pki.evilCA)
        expectCode(.certificateUntrusted) {
            _ = try SignedReceipt.verify(try SignedReceipt.sign(receipt(issuer: evil.partnerID), as: evil), trust: pki.trust)
        }
    }
}

@Suite struct DevelopmentPKITests {
    @Test func createsEveryIdentityOnceWithPrivateKeys() throws {
        let dir = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let partners = try PartnerDirectoryFile.load(path: Paths.root.appendingPathComponent("config/partners.yaml").path)
        #expect(partners.partners.count == 8)
        let pki = DevelopmentPKI(directory: dir.path)
        let first = try pki.create(partners: partners.partners)
        #expect(first.created.count == 13)  // root CA, issuing CA, relay, administrator, conformance echo, 8 partners
        let second = try pki.create(partners: partners.partners)
        #expect(second.created.isEmpty)

        let trust = try TrustStore.load(anchorsFile: pki.caCertificatePath, crlFiles: [pki.crlPath])
        for partner in partners.partners {
            let identity = try Identity.load(directory: pki.partnerDirectory(partner.id))
            #expect(identity.partnerID == partner.id)
            #expect(identity.certificate.subjectSerialNumber == partner.oin)
            #expect(identity.certificate.organization == partner.name)
            #expect(identity.chain.map(\.commonName) == ["Ketenpost Development Issuing CA"])
            #expect(identity.certificate.crlDistributionPoints == [DevelopmentPKI.defaultCRLEndpoint + "/issuing.crl"])
            try trust.verify(identity.certificate, chain: identity.chain, for: .contentSigning)
            try trust.verify(identity.certificate, chain: identity.chain, for: .tlsClient)
            let mode =
                try FileManager.default.attributesOfItem(atPath: pki.partnerDirectory(partner.id) + "/key.pem")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
        #expect(try Identity.load(directory: pki.partnerDirectory("belastingdienst")).certificate.keyAlgorithm == .rsa)
        #expect(try Identity.load(directory: pki.partnerDirectory("gemeente-maastricht")).certificate.keyAlgorithm == .ec)
        let relay = try Identity.load(directory: pki.relayDirectory)
        try trust.verify(relay.certificate, chain: relay.chain, for: .tlsServer)
        // The administrator's certificate is for TLS client authentication only.
        let admin = try Identity.load(directory: pki.adminDirectory)
        try trust.verify(admin.certificate, chain: admin.chain, for: .tlsClient)
        #expect(throws: CryptoError.self) { try trust.verify(admin.certificate, chain: admin.chain, for: .contentSigning) }
        #expect(FileManager.default.fileExists(atPath: pki.adminDirectory + "/key.pem"))
        // A partner certificate is not a TLS server certificate.
        #expect(throws: CryptoError.self) {
            let maastricht = try Identity.load(directory: pki.partnerDirectory("gemeente-maastricht"))
            try trust.verify(maastricht.certificate, chain: maastricht.chain, for: .tlsServer)
        }
    }

    @Test func invalidPartnerFilesNameTheKey() throws {
        let cases: [(String, String)] = [
            ("partners:\n  - id: Bad_Id\n    name: X\n    role: police\n    oin: \"00000001000000000040\"\n", "partners[0].id"),
            ("partners:\n  - id: a-b\n    name: X\n    role: pirate\n    oin: \"00000001000000000040\"\n", "role"),
            ("partners:\n  - id: a-b\n    name: X\n    role: police\n    oin: 123\n", "oin"),
            ("partners:\n  - id: a-b\n    role: police\n    oin: \"00000001000000000040\"\n", "name"),
            (
                """
                partners:\n  - id: a-b\n    name: X\n    role: police\n    oin: \"00000001000000000040\"\n  - id: a-b\n    name: Y\n  \
                  role: police\n    oin: \"00000001000000000040\"\n
                """,
                "twice"
            ),
        ]
        for (text, mention) in cases {
            let error = expectCode(.configInvalid) { _ = try PartnerDirectoryFile.parse(text, file: "partners.yaml") }
            #expect(error?.message.contains(mention) == true, "\(String(describing: error)) should mention \(mention)")
            #expect(error?.message.hasPrefix("partners.yaml") == true)
        }
    }

    @Test func identityWithMismatchedKeyIsRefused() throws {
        let pki = TestPKI.shared
        let a = try pki.makeIdentity("gemeente-maastricht")
        let b = try pki.makeIdentity("gemeente-maastricht")
        expectCode(.identityInvalid) { _ = try Identity(certificate: a.certificate, key: b.key) }
        expectCode(.identityInvalid) { _ = try Identity.load(directory: "/nonexistent") }
    }
}

@Suite struct ConcurrencyAndLeaks {
    let pki = TestPKI.shared

    @Test func manyTasksSealAndOpenAtOnce() async throws {
        let senders = try ["gemeente-eijsden-margraten", "gemeente-maastricht", "politie-avim-limburg"].map { try pki.identity($0) }
        let recipient = try pki.identity("zorgcoordinatie-zuid-limburg")
        let rsaRecipient = try pki.identity("zorgcoordinatie-zuid-limburg", key: .rsa(bits: 2048))
        let trust = pki.trust
        try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<16 {
                group.addTask {
                    var done = 0
                    for round in 0..<15 {
                        let sender = senders[(task + round) % senders.count]
                        let content = try exampleContent(.signal, from: sender.partnerID, to: recipient.partnerID)
                        let sealed = try Envelope.seal(
                            content,
                            from: sender,
                            to: [recipient.certificate, rsaRecipient.certificate],
                            trust: TestPKI.shared.trust
                        )
                        let opener = round % 2 == 0 ? recipient : rsaRecipient
                        let opened = try Envelope.open(sealed, as: opener, trust: trust)
                        guard opened.content == content, opened.sender == sender.certificate else { return done }
                        // A failure in one task must not leave errors behind for the next operation on this thread.
                        var broken = sealed
                        broken[broken.count / 2] ^= 0xFF
                        _ = try? Envelope.open(broken, as: opener, trust: trust)
                        done += 1
                    }
                    return done
                }
            }
            var total = 0
            for try await count in group { total += count }
            #expect(total == 16 * 15)
        }
    }
}

/// The SignedData fast path: certificates are taken out before OpenSSL parses the structure and
/// supplied from a per-process cache (docs/BENCHMARKS.md, "Making it fast").
@Suite struct SignedDataCertificateTests {
    let pki = TestPKI.shared

    /// Rebuilds a SignedData with `certificates` in place of the ones it carries.
    func replacingCertificates(of der: Data, with certificates: [Data]) throws -> Data {
        let split = try #require(SignedDataCertificates.split(der))
        typealias TLV = SignedDataCertificates.TLV
        let bytes = [UInt8](split.withoutCertificates)
        let contentInfo = try #require(TLV.read(bytes, at: 0))
        let oid = try #require(TLV.read(bytes, at: contentInfo.contentStart))
        let explicit = try #require(TLV.read(bytes, at: oid.end))
        let signedData = try #require(TLV.read(bytes, at: explicit.contentStart))
        var children: [[UInt8]] = []
        var cursor = signedData.contentStart
        while cursor < signedData.end {
            let child = try #require(TLV.read(bytes, at: cursor))
            children.append(Array(bytes[child.start..<child.end]))
            cursor = child.end
        }
        // version, digestAlgorithms, encapContentInfo, [0] certificates, signerInfos
        children.insert(TLV.encode(tag: 0xA0, certificates.flatMap { [UInt8]($0) }), at: 3)
        let rebuilt = TLV.encode(
            tag: 0x30,
            Array(bytes[oid.start..<oid.end]) + TLV.encode(tag: 0xA0, TLV.encode(tag: 0x30, children.flatMap { $0 }))
        )
        return Data(rebuilt)
    }

    @Test func certificatesAreDecodedOnceAndTheSignerIsTheCachedObject() throws {
        let signer = try pki.identity("gemeente-eijsden-margraten")
        let first = try CMS.sign(Data("one".utf8), signer: signer.certificate, key: signer.key)
        let second = try CMS.sign(Data("two".utf8), signer: signer.certificate, key: signer.key)
        let split = try #require(SignedDataCertificates.split(first))
        #expect(split.certificates == [signer.certificate.der])
        // The cache is shared by every test in the process and cleared when full: an attempt
        // during which another test filled it proves nothing, so it is tried again.
        for _ in 0..<5 {
            let clears = CertificateCache.clears
            // Only a certificate that chained to an anchor is kept.
            try TrustStore(anchors: [pki.ca.certificate], intermediates: []).verify(signer.certificate, for: .contentSigning)
            let a = try CMS.verifySignature(first)
            let b = try CMS.verifySignature(second)
            #expect(a.content == Data("one".utf8) && b.content == Data("two".utf8))
            #expect(a.signer == signer.certificate)
            guard CertificateCache.clears == clears else { continue }
            #expect(a.signer === b.signer)  // one decoded certificate for both messages
            return
        }
        Issue.record("the certificate cache was cleared during every attempt")
    }

    /// A hostile partner's message with junk certificates (issue 20): what did not verify is not
    /// kept, more than six certificates or one above 16 KiB are refused before decoding.
    @Test func junkCertificatesDoNotFillTheCache() throws {
        let signer = try pki.identity("gemeente-eijsden-margraten")
        let junk = try (0..<5).map { index in
            try CertificateIssuer.selfSigned(
                DevelopmentPKI.caProfile(now: Date(), name: "Junk \(index) \(UUID().uuidString)"),
                key: .generate(.ecP256)
            ).certificate
        }
        let der = try CMS.sign(Data("x".utf8), signer: signer.certificate, key: signer.key, extraCertificates: junk)
        #expect(try CMS.verifySignature(der).intermediates.count == 5)  // the signature itself is fine
        for certificate in junk { #expect(!CertificateCache.contains(certificate.der)) }
        #expect(throws: CryptoError.self) { try pki.trust.verify(junk[0], for: .contentSigning) }
        #expect(!CertificateCache.contains(junk[0].der))

        let seven = try CMS.sign(
            Data("x".utf8),
            signer: signer.certificate,
            key: signer.key,
            extraCertificates: junk + [pki.ca.certificate]
        )
        do {
            _ = try CMS.verifySignature(seven)
            Issue.record("seven certificates were accepted")
        } catch {
            #expect(error.code == .malformed && "\(error)".contains("at most 6"), "\(error)")
        }

        // 20 KiB in a SEQUENCE where a certificate goes: refused by its size, not parsed.
        let large = Data([0x30, 0x82, 0x50, 0x00] + [UInt8](repeating: 0x04, count: 0x5000))
        let withLarge = try replacingCertificates(of: der, with: [signer.certificate.der, large])
        do {
            _ = try CMS.verifySignature(withLarge)
            Issue.record("a 20 KiB certificate was accepted")
        } catch {
            #expect(error.code == .malformed && "\(error)".contains("16384"), "\(error)")
        }
    }

    @Test func extraCertificatesStillFindTheSigner() throws {
        let signer = try pki.identity("gemeente-eijsden-margraten")
        let der = try CMS.sign(Data("x".utf8), signer: signer.certificate, key: signer.key, extraCertificates: [pki.ca.certificate])
        #expect(try #require(SignedDataCertificates.split(der)).certificates.count == 2)
        #expect(try CMS.verifySignature(der).signer == signer.certificate)
    }

    @Test func aSwappedOrBrokenCertificateIsRefused() throws {
        let signer = try pki.identity("gemeente-eijsden-margraten")
        let other = try pki.identity("opvang-zuid-limburg")
        let der = try CMS.sign(Data("x".utf8), signer: signer.certificate, key: signer.key)
        // Another partner's certificate in place of the signer's: the signer is not found.
        let swapped = try replacingCertificates(of: der, with: [other.certificate.der])
        #expect(throws: CryptoError.self) { _ = try CMS.verifySignature(swapped) }
        // The same partner's other certificate (another key) does not verify the signature.
        let impostor = try pki.makeIdentity("gemeente-eijsden-margraten")
        let withImpostor = try replacingCertificates(of: der, with: [impostor.certificate.der])
        #expect(throws: CryptoError.self) { _ = try CMS.verifySignature(withImpostor) }
        // Not a certificate at all.
        let broken = try replacingCertificates(of: der, with: [Data([0x30, 0x03, 0x02, 0x01, 0x00])])
        let error = try #require(throws: CryptoError.self) { _ = try CMS.verifySignature(broken) }
        #expect(error.code == .malformed)
        // The untouched original still verifies (nothing cached from the failures leaks into it).
        #expect(try CMS.verifySignature(der).signer == signer.certificate)
    }

    @Test func structuresOutsideTheFastPathGetTheUsualErrors() throws {
        let signer = try pki.identity("gemeente-eijsden-margraten")
        let noCertificates = try replacingCertificates(
            of: try CMS.sign(Data("x".utf8), signer: signer.certificate, key: signer.key),
            with: []
        )
        #expect(SignedDataCertificates.split(noCertificates) == nil)
        let error = try #require(throws: CryptoError.self) { _ = try CMS.verifySignature(noCertificates) }
        #expect(error.code == .unexpectedStructure)
        for junk in [Data(), Data([0x30]), Data([0x30, 0x80, 0x00, 0x00]), Data(repeating: 0xA0, count: 40)] {
            #expect(SignedDataCertificates.split(junk) == nil)
            #expect(throws: CryptoError.self) { _ = try CMS.verifySignature(junk) }
        }
    }
}
