import Foundation
import KetenpostCrypto
import KetenpostFuzzing
import Testing

/// Replays the fuzzing seed corpus and every input the fuzzers found (Tests/Fuzz/README.md)
/// through the same entry functions as `ketenpost-fuzz`, in the normal test run.
@Suite("Fuzzing regressions")
struct FuzzRegressionTests {
    /// Tests/Fuzz, found from this file's path.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz")

    struct Input: Sendable {
        let target: FuzzTarget
        let file: URL
        var name: String { "\(target.rawValue)/\(file.lastPathComponent)" }
    }

    /// Every file under `folder/TARGET/`; a folder that is not a target's name is an error.
    static func inputs(_ folder: String) throws -> [Input] {
        let base = root.appendingPathComponent(folder)
        guard FileManager.default.fileExists(atPath: base.path) else { return [] }
        var inputs: [Input] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: base.path).sorted() where !name.hasPrefix(".") {
            guard let target = FuzzTarget(rawValue: name) else {
                Issue.record("Tests/Fuzz/\(folder)/\(name) is not a fuzz target's name")
                continue
            }
            let directory = base.appendingPathComponent(name)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() where !file.hasPrefix(".") {
                inputs.append(Input(target: target, file: directory.appendingPathComponent(file)))
            }
        }
        return inputs
    }

    @Test("the seed corpus runs through every target without a finding")
    func seedCorpus() async throws {
        let inputs = try Self.inputs("corpus")
        #expect(Set(inputs.map(\.target)) == Set(FuzzTarget.allCases), "every target has seeds")
        for input in inputs {
            let data = try Data(contentsOf: input.file)
            do {
                try await input.target.run(data)
            } catch {
                Issue.record("\(input.name): \(error)")
            }
        }
    }

    /// A regression input whose name starts with the name of a known property
    /// (`FuzzFinding.known`) must still show that known bug; all others must pass cleanly.
    @Test("every input the fuzzers found is handled cleanly, or is a known issue")
    func regressions() async throws {
        for input in try Self.inputs("regressions") {
            let expected = FuzzFinding.known.first { input.file.lastPathComponent.hasPrefix($0 + "-") }
            let data = try Data(contentsOf: input.file)
            do {
                try await input.target.run(data)
                if let expected {
                    Issue.record(
                        """
                        \(input.name) no longer shows the known issue \(expected): remove it from FuzzFinding.known and the input's \
                        name prefix
                        """
                    )
                }
            } catch  where error.isKnown && error.property == expected {
                withKnownIssue("\(error.property): a known bug, see Tests/Fuzz/README.md") {
                    Issue.record("\(input.name): \(error)")
                }
            } catch {
                Issue.record("\(input.name): \(error)")
            }
        }
    }
}

/// The relay's SignedData fast path, OpenSSL's parse in-process and the `openssl cms` command
/// accept and refuse the same layouts (issue 20: the fast path used to accept certificates
/// after the signer infos and a second certificates field, which `openssl cms` refuses).
@Suite struct SignedDataParserAgreementTests {
    @Test(arguments: SignedDataLayouts.Change.allCases)
    func everyLayoutIsJudgedAlike(change: SignedDataLayouts.Change) async throws {
        let variant = try #require(SignedDataLayouts.apply(change, to: SignedDataLayouts.sample))
        let openssl = try Self.opensslAccepts(variant)
        let (fast, reference) = SignedDataLayouts.accepted(variant)
        #expect(
            fast == reference && fast == openssl,
            "\(change): fast path \(fast), OpenSSL in-process \(reference), openssl cms \(openssl)"
        )
    }

    /// Whether `openssl cms -verify` (signature only, no chain) accepts `der`.
    static func opensslAccepts(_ der: Data) throws -> Bool {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("signeddata-\(UUID().uuidString).der")
        defer { try? FileManager.default.removeItem(at: file) }
        try der.write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["cms", "-verify", "-noverify", "-binary", "-inform", "DER", "-in", file.path, "-out", "/dev/null"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus == 0
    }

    @Test func theUnchangedSampleIsAcceptedByAll() {
        let (fast, reference) = SignedDataLayouts.accepted(SignedDataLayouts.sample)
        #expect(fast && reference)
    }
}

/// The direct check of Ketenpost's own SignedData shape (issue 21) takes only the unchanged
/// shape; for every change of the signed part (signed again, so the signature is valid), the
/// relay answers as OpenSSL in-process and the `openssl cms` command do.
@Suite struct DirectSignedDataAgreementTests {
    @Test(arguments: SignedAttributeLayouts.Change.allCases)
    func everySignedPartChangeIsJudgedAlike(change: SignedAttributeLayouts.Change) throws {
        let variant = SignedAttributeLayouts.make(change)
        #expect(CMS.verifiesDirectly(variant) == (change == .resigned), "\(change): direct check")
        let fast = Result { () throws(CryptoError) in try CMS.verifySignature(variant) }
        let reference = Result { () throws(CryptoError) in try CMS.verifySignature(variant, fastPath: false) }
        switch (fast, reference) {
        case (.success(let a), .success(let b)):
            #expect(a.content == b.content && a.signer == b.signer && Set(a.intermediates) == Set(b.intermediates), "\(change)")
        case (.failure(let a), .failure(let b)):
            #expect(a.code == b.code, "\(change): \(a.code) against OpenSSL's \(b.code)")
        default:
            Issue.record("\(change): relay \(fast), OpenSSL \(reference)")
        }
        let accepted = (try? fast.get()) != nil
        let openssl = try SignedDataParserAgreementTests.opensslAccepts(variant)
        #expect(accepted == openssl, "\(change): relay \(accepted), openssl cms \(openssl)")
    }

    /// The sample the other fuzz inputs start from is signed by the template and checked directly.
    @Test func theTemplateSampleIsCheckedDirectly() {
        #expect(CMS.verifiesDirectly(SignedDataLayouts.sample))
    }
}
