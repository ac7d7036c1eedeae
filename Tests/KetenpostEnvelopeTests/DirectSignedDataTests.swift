import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import Testing

/// SignedData signed from the template (`CMS.sign` for EC keys, issue 21) is what OpenSSL's
/// `CMS_sign` makes, byte for byte except the randomised signature, and verifies with the
/// `openssl cms` command; keys the template does not handle go to `CMS_sign`.
@Suite struct DirectSignedDataTests {
    /// The DER with the signature's value blanked: everything else must be equal.
    static func skeleton(_ der: Data) throws -> [UInt8] {
        let bytes = [UInt8](der)
        // ContentInfo → [0] → SignedData → last child (SET OF SignerInfo) → SignerInfo → signature.
        func tlv(_ at: Int) throws -> (start: Int, content: Int, end: Int) {
            guard at + 2 <= bytes.count else { throw Failure.malformed }
            var length = Int(bytes[at + 1])
            var content = at + 2
            if length >= 0x80 {
                let count = length & 0x7F
                length = 0
                for index in 0..<count { length = length << 8 | Int(bytes[at + 2 + index]) }
                content += count
            }
            return (at, content, content + length)
        }
        func children(_ parent: (start: Int, content: Int, end: Int)) throws -> [(start: Int, content: Int, end: Int)] {
            var result: [(start: Int, content: Int, end: Int)] = []
            var cursor = parent.content
            while cursor < parent.end {
                let child = try tlv(cursor)
                result.append(child)
                cursor = child.end
            }
            return result
        }
        let contentInfo = try tlv(0)
        let signedData = try children(try children(try children(contentInfo)[1])[0])
        let infos = try children(signedData[signedData.count - 1])
        let info = try children(infos[0])
        let signature = info[info.count - 1]
        // Lengths around the signature differ with its size (70 to 72 bytes): compare every
        // part of the SignedData and of the SignerInfo but the lengths that enclose the signature.
        let outer = try children(contentInfo)
        var parts = Array(bytes[outer[0].start..<outer[0].end])
        for field in signedData.dropLast() { parts += [0xFF] + Array(bytes[field.start..<field.end]) }
        for field in info.dropLast() { parts += [0xFE] + Array(bytes[field.start..<field.end]) }
        #expect(bytes[signature.start] == 0x04 && infos.count == 1)
        return parts
    }

    enum Failure: Error { case malformed }

    /// Both signers at the same second (signingTime has a resolution of one second). The template
    /// reads the time as `Date()`, OpenSSL with `time()`, whose coarse clock lags by up to a few
    /// milliseconds after each second begins: both clocks must show the same second before and
    /// after (a CI run once caught them one second apart).
    static func pair(_ content: Data, _ identity: Identity, extra: [Certificate]) throws -> (template: Data, openssl: Data) {
        func seconds() -> (Int, Int) { (Int(Date().timeIntervalSince1970), Int(time(nil))) }
        for _ in 0..<20 {
            let before = seconds()
            guard before.0 == before.1 else {
                Thread.sleep(forTimeInterval: 0.01)
                continue
            }
            let template = try CMS.sign(content, signer: identity.certificate, key: identity.key, extraCertificates: extra)
            let openssl = try CMS.signWithOpenSSL(content, signer: identity.certificate, key: identity.key, extraCertificates: extra)
            let after = seconds()
            if after.0 == before.0 && after.1 == before.0 { return (template, openssl) }
        }
        throw Failure.malformed
    }

    @Test(arguments: [0, 1, 127, 128, 255, 256, 4096, 65_535, 65_536, 70_000])
    func theTemplateIsWhatCMSSignMakes(size: Int) throws {
        let pki = TestPKI.shared
        let sender = try pki.identity("gemeente-eijsden-margraten")
        let other = try pki.identity("zorgcoordinatie-zuid-limburg")
        let content = Data((0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        // A certificate given twice: CMS_sign refuses, and so does the template (it hands over).
        #expect(throws: CryptoError.self) {
            try CMS.sign(content, signer: sender.certificate, key: sender.key, extraCertificates: [sender.certificate])
        }
        for extra in [[], [pki.ca.certificate], [pki.ca.certificate, other.certificate], [other.certificate, pki.ca.certificate]] {
            let (template, openssl) = try Self.pair(content, sender, extra: extra)
            #expect(try Self.skeleton(template) == Self.skeleton(openssl), "size \(size), \(extra.count) extra certificates")
            #expect(CMS.verifiesDirectly(template))
            let signed = try CMS.verifySignature(template, fastPath: false)
            #expect(signed.content == content && signed.signer == sender.certificate)
        }
    }

    @Test func theOpenSSLCommandVerifiesTheTemplateWithItsChain() async throws {
        let pki = TestPKI.shared
        let sender = try pki.identity("gemeente-eijsden-margraten")
        let directory = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let content = Data("{\"ketenpost\":\"template\"}".utf8)
        let message = directory.appendingPathComponent("signed.der")
        try CMS.sign(content, signer: sender.certificate, key: sender.key).write(to: message)
        let ca = directory.appendingPathComponent("ca.pem")
        try pki.ca.certificate.pem.write(to: ca, atomically: true, encoding: .utf8)
        let out = directory.appendingPathComponent("out")
        let result = try await run(
            "/usr/bin/openssl",
            ["cms", "-verify", "-binary", "-inform", "DER", "-in", message.path, "-CAfile", ca.path, "-purpose", "any", "-out", out.path]
        )
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try Data(contentsOf: out) == content)
    }

    @Test func rsaKeysAreSignedByOpenSSLAndAMismatchIsRefused() throws {
        let pki = TestPKI.shared
        let rsa = try pki.identity("belastingdienst", key: .rsa(bits: 2048))
        let signed = try CMS.sign(Data("rsa".utf8), signer: rsa.certificate, key: rsa.key)
        #expect(!CMS.verifiesDirectly(signed))
        #expect(try CMS.verifySignature(signed).content == Data("rsa".utf8))
        let sender = try pki.identity("gemeente-eijsden-margraten")
        #expect(throws: CryptoError.self) { try CMS.sign(Data("x".utf8), signer: sender.certificate, key: rsa.key) }
        do {
            _ = try CMS.sign(Data("x".utf8), signer: sender.certificate, key: rsa.key)
        } catch {
            #expect(error.code == .keyMismatch)
        }
    }

    /// The pooled key contexts under concurrent use: every signature made by many tasks at once
    /// with one key verifies, directly and with OpenSSL's CMS_verify.
    @Test func manyTasksSignAndCheckWithOneKeyAtOnce() async throws {
        let pki = TestPKI.shared
        let sender = try pki.identity("gemeente-eijsden-margraten")
        let ca = pki.ca.certificate
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<8 {
                group.addTask {
                    var failed = 0
                    for round in 0..<150 {
                        let content = Data("task \(task) round \(round)".utf8)
                        let signed = try CMS.sign(content, signer: sender.certificate, key: sender.key, extraCertificates: [ca])
                        let direct = CMS.verifiesDirectly(signed)
                        let reference = (try? CMS.verifySignature(signed, fastPath: false))?.content == content
                        if !direct || !reference { failed += 1 }
                    }
                    return failed
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
    }

    @Test func aChangedByteIsNotCheckedDirectlyAndRefusedAsBefore() throws {
        let sender = try TestPKI.shared.identity("gemeente-eijsden-margraten")
        let signed = try CMS.sign(Data("content".utf8), signer: sender.certificate, key: sender.key)
        var bytes = [UInt8](signed)
        // The content's last byte: the messageDigest no longer matches.
        let index = try #require(bytes.firstRange(of: Array("content".utf8))).upperBound - 1
        bytes[index] ^= 0x01
        #expect(!CMS.verifiesDirectly(Data(bytes)))
        #expect(throws: CryptoError.self) { try CMS.verifySignature(Data(bytes)) }
        #expect(throws: CryptoError.self) { try CMS.verifySignature(Data(bytes), fastPath: false) }
        // The signature's last byte.
        var signature = [UInt8](signed)
        signature[signature.count - 1] ^= 0x01
        #expect(!CMS.verifiesDirectly(Data(signature)))
        #expect(throws: CryptoError.self) { try CMS.verifySignature(Data(signature)) }
    }
}
