import Foundation
import KetenpostStore
import Testing

/// The rules every `RevocationStore` backend keeps, and the certificate chain column.
@Suite("RevocationStore contract")
struct RevocationContract {
    static func list(_ issuer: String, thisUpdate: Date, count: Int = 0) -> StoredRevocationList {
        StoredRevocationList(
            issuerFingerprint: issuer,
            issuer: "CN=Issuer \(issuer)",
            source: "http://127.0.0.1:1/\(issuer).crl",
            der: Data("crl \(issuer) \(thisUpdate.timeIntervalSince1970)".utf8),
            thisUpdate: thisUpdate,
            nextUpdate: thisUpdate.addingTimeInterval(3600),
            revokedCount: count,
            fetchedAt: thisUpdate.addingTimeInterval(1),
            lastAttemptAt: thisUpdate.addingTimeInterval(1)
        )
    }

    @Test(arguments: Backend.allCases)
    func aListIsOnlyReplacedByANewerOneAndFailuresKeepIt(backend: Backend) async throws {
        try await withStore(backend) { store in
            #expect(try await store.revocationLists().isEmpty)
            // A failure before any list: the issuer shows with its error and no list.
            try await store.recordRevocationFailure(
                issuerFingerprint: "bb",
                issuer: "CN=Issuer bb",
                source: "http://x/bb.crl",
                error: "timeout",
                at: at(5)
            )
            #expect(try await store.saveRevocationList(Self.list("aa", thisUpdate: at(100), count: 2)))
            #expect(try await store.revocationLists() == [Self.list("aa", thisUpdate: at(100), count: 2), Self.failed("bb")])
            // Older: refused. Same or newer: kept.
            #expect(try await !store.saveRevocationList(Self.list("aa", thisUpdate: at(50))))
            #expect(try await store.revocationLists().first == Self.list("aa", thisUpdate: at(100), count: 2))
            #expect(try await store.saveRevocationList(Self.list("aa", thisUpdate: at(200), count: 3)))
            // A failed refresh keeps the list and records the error; the next success clears it.
            try await store.recordRevocationFailure(
                issuerFingerprint: "aa",
                issuer: "CN=Issuer aa",
                source: "http://x",
                error: "http-503",
                at: at(300)
            )
            var held = try #require(try await store.revocationLists().first)
            #expect(held.der == Self.list("aa", thisUpdate: at(200)).der && held.revokedCount == 3)
            #expect(held.lastError == "http-503" && held.lastAttemptAt == at(300))
            #expect(try await store.saveRevocationList(Self.list("aa", thisUpdate: at(400))))
            held = try #require(try await store.revocationLists().first)
            #expect(held.lastError == nil && held.thisUpdate == at(400))
        }
    }

    static func failed(_ issuer: String) -> StoredRevocationList {
        StoredRevocationList(
            issuerFingerprint: issuer,
            issuer: "CN=Issuer \(issuer)",
            source: "http://x/\(issuer).crl",
            lastError: "timeout",
            lastAttemptAt: at(5)
        )
    }

    @Test(arguments: Backend.allCases)
    func aCertificatesChainComesBackAsStored(backend: Backend) async throws {
        try await withStore(backend) { store in
            var certificate = DirectoryContract.certificate("cc", of: "p-c")
            certificate.chain = [Data([0x30, 0x01, 0x00]), Data("second".utf8)]
            try await store.applyDirectory(
                [.addPartner(DirectoryContract.partner("p-c")), .addCertificate(certificate)],
                actor: "admin:x",
                at: at(0)
            )
            #expect(try await store.directorySnapshot().certificates == [certificate])
        }
    }
}
