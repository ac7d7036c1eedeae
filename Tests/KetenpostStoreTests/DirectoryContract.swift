import Foundation
import KetenpostStore
import Testing

/// The rules every `DirectoryStore` backend keeps (the same backends as the queue contract).
@Suite("DirectoryStore contract")
struct DirectoryContract {
    static func partner(_ id: String, state: String = "active") -> DirectoryPartner {
        DirectoryPartner(id: id, name: "Partner \(id)", role: "municipality", oin: "00000001000000000001", state: state)
    }

    static func certificate(
        _ fingerprint: String,
        of partner: String,
        activatesAt: Date = at(0),
        uses: [CertificateUse] = CertificateUse.allCases
    ) -> DirectoryCertificate {
        DirectoryCertificate(
            fingerprint: fingerprint,
            partnerID: partner,
            der: Data(fingerprint.utf8),
            uses: uses,
            serial: "0A",
            notBefore: at(-day),
            notAfter: at(365 * day),
            activatesAt: activatesAt,
            addedAt: at(0)
        )
    }

    @Test(arguments: Backend.allCases)
    func changesApplyTogetherWithTheirAuditEvents(backend: Backend) async throws {
        try await withStore(backend) { store in
            #expect(try await store.directoryVersion() == 0)
            #expect(try await store.directorySnapshot() == DirectorySnapshot(version: 0, partners: [], certificates: []))
            let v1 = try await store.applyDirectory(
                [.addPartner(Self.partner("p-a")), .addCertificate(Self.certificate("aa", of: "p-a"))],
                actor: "import:partners.yaml",
                at: at(0)
            )
            #expect(v1 == 1)
            let snapshot = try await store.directorySnapshot()
            #expect(snapshot.version == 1 && snapshot.partners == [Self.partner("p-a")])
            #expect(snapshot.certificates == [Self.certificate("aa", of: "p-a")])
            try await store.applyDirectory([.setPartnerState(id: "p-a", state: "suspended")], actor: "admin:x", at: at(10))
            try await store.applyDirectory([.retireCertificate(fingerprint: "aa", at: at(100))], actor: "admin:x", at: at(11))
            #expect(try await store.directoryVersion() == 3)
            let events = try await store.auditRecords(after: 0, limit: 100)
            #expect(events.map(\.action) == ["partner.added", "certificate.added", "partner.suspended", "certificate.retiring"])
            #expect(events.map(\.actor) == ["import:partners.yaml", "import:partners.yaml", "admin:x", "admin:x"])
            #expect(events[2].partnerId == "p-a" && events[2].detail == "state=suspended" && events[2].date == at(10))
            #expect(events[3].fingerprint == "aa" && events[3].partnerId == "p-a")
            #expect(try await store.auditRecords(after: events[1].sequence, limit: 1).map(\.action) == ["partner.suspended"])
            let certificate = try #require(try await store.directorySnapshot().certificates.first)
            #expect(
                certificate.retiresAt == at(100) && certificate.state(at: at(99)) == .retiring && certificate.state(at: at(100)) == .retired
            )
        }
    }

    @Test(arguments: Backend.allCases)
    func aRefusedBatchChangesNothing(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.applyDirectory([.addPartner(Self.partner("p-a"))], actor: "a", at: at(0))
            let before = try await store.directorySnapshot()
            let cases: [([DirectoryChange], StoreError.Code)] = [
                ([.addPartner(Self.partner("p-b")), .addPartner(Self.partner("p-a"))], .partnerExists),
                (
                    [.addCertificate(Self.certificate("bb", of: "p-a")), .addCertificate(Self.certificate("bb", of: "p-a"))],
                    .certificateExists
                ),
                ([.addCertificate(Self.certificate("cc", of: "nobody"))], .partnerNotFound),
                ([.setPartnerState(id: "nobody", state: "suspended")], .partnerNotFound),
                ([.addPartner(Self.partner("p-c")), .revokeCertificate(fingerprint: "zz", at: at(1), reason: "x")], .certificateNotFound),
            ]
            for (changes, kind) in cases {
                do {
                    try await store.applyDirectory(changes, actor: "a", at: at(1))
                    Issue.record("expected \(kind)")
                } catch let error as StoreError {
                    #expect(error.code == kind)
                }
                #expect(try await store.directorySnapshot() == before)
                #expect(try await store.auditRecords(after: 0, limit: 100).count == 1)
            }
        }
    }

    @Test(arguments: Backend.allCases)
    func revocationIsFinalAndOverlapsOnlyShorten(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.applyDirectory(
                [
                    .addPartner(Self.partner("p-a")), .addCertificate(Self.certificate("aa", of: "p-a")),
                    .addCertificate(Self.certificate("bb", of: "p-a")),
                ],
                actor: "a",
                at: at(0)
            )
            // A second rotation cannot stretch an overlap that is already running.
            try await store.applyDirectory([.retireCertificate(fingerprint: "aa", at: at(100))], actor: "a", at: at(1))
            try await store.applyDirectory([.retireCertificate(fingerprint: "aa", at: at(500))], actor: "a", at: at(2))
            try await store.applyDirectory([.retireCertificate(fingerprint: "aa", at: at(50))], actor: "a", at: at(3))
            #expect(try await store.directorySnapshot().certificates.first { $0.fingerprint == "aa" }?.retiresAt == at(50))
            try await store.applyDirectory(
                [.revokeCertificate(fingerprint: "bb", at: at(5), reason: "key-compromise")],
                actor: "a",
                at: at(5)
            )
            let revoked = try #require(try await store.directorySnapshot().certificates.first { $0.fingerprint == "bb" })
            #expect(revoked.state(at: at(5)) == .revoked && revoked.revocationReason == "key-compromise" && revoked.revokedAt == at(5))
            for change in [
                DirectoryChange.revokeCertificate(fingerprint: "bb", at: at(6), reason: "superseded"),
                .retireCertificate(fingerprint: "bb", at: at(7)),
            ] {
                do {
                    try await store.applyDirectory([change], actor: "a", at: at(6))
                    Issue.record("a revoked certificate changed")
                } catch let error as StoreError {
                    #expect(error.code == .certificateRevoked)
                }
            }
            #expect(try await store.directorySnapshot().certificates.first { $0.fingerprint == "bb" }?.revocationReason == "key-compromise")
        }
    }

    @Test(arguments: Backend.allCases)
    func certificateStatesFollowTheirTimes(backend: Backend) async throws {
        let c = Self.certificate("aa", of: "p-a", activatesAt: at(10))
        #expect(c.state(at: at(9)) == .pending)
        #expect(c.state(at: at(10)) == .active)
        #expect(c.state(at: at(365 * day)) == .expired)
        #expect(!CertificateState.pending.isUsable && CertificateState.active.isUsable && CertificateState.retiring.isUsable)
        #expect(!CertificateState.retired.isUsable && !CertificateState.revoked.isUsable && !CertificateState.expired.isUsable)
        // A second instance on the same storage sees the same directory.
        let fixture = try await backend.makeFixture()
        defer { fixture.cleanup() }
        let first = try await fixture.migrated()
        try await first.applyDirectory([.addPartner(Self.partner("p-a")), .addCertificate(c)], actor: "a", at: at(0))
        let second = try await fixture.migrated()
        #expect(try await second.directorySnapshot() == (try await first.directorySnapshot()))
    }
}
