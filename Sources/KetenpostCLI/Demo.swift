import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostConformance
import KetenpostCrypto
import KetenpostDesk
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import Logging

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Play the chain of the brief against a relay on a free port with a temporary store and PKI.",
        discussion: """
            A municipality signals the care coordinator; the coordinator sends an intake notice to the \
            shelter; the shelter answers with an intake response. Prints a timeline with verified receipts. \
            Uses config/partners.yaml, config/policy.yaml and config/examples/.
            With --desk: a relay and desks for a municipality, the care coordinator and a shelter on \
            loopback ports, with demo staff accounts, until Ctrl-C (docs/desk.md).
            Examples:
              ketenpost demo
              ketenpost demo --keep
              ketenpost demo --desk
            """
    )

    @Option(help: "Directory with partners.yaml, policy.yaml and examples/.") var config: String = "config"
    @Flag(help: "Keep the temporary directory (store, PKI) and print its path.") var keep = false
    @Flag(help: "Start desks for three partners in the browser instead of playing the chain.") var desk = false

    func run() async throws {
        do {
            if desk { try await desks() } else { try await play() }
        } catch {
            throw fail(error)
        }
    }

    /// A relay and three desks on loopback with demo accounts, until Ctrl-C.
    private func desks() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-demo-desk-\(UUID().uuidString.prefix(8))")
        defer { if !keep { try? FileManager.default.removeItem(at: work) } }
        let pki = DevelopmentPKI(directory: work.appendingPathComponent("certs").path)
        var configuration = RelayConfiguration.development(
            pki: pki,
            storePath: work.appendingPathComponent("ketenpost.sqlite").path,
            partnersFile: config + "/partners.yaml",
            policyFile: config + "/policy.yaml"
        )
        configuration.developmentPKI.directory = pki.directory.path
        var logger = Logger(label: "ketenpost.demo")
        logger.logLevel = .warning
        let relay = try await RunningRelay.start(try await RelayServer.prepare(configuration, logger: logger), logger: logger)
        // Demo passwords are printed and thrown away with the folder: never use them elsewhere.
        let staff: [(partner: String, username: String, name: String, role: StaffRole)] = [
            ("gemeente-eijsden-margraten", "a.jansen", "Anna Jansen", .caseworker),
            ("zorgcoordinatie-zuid-limburg", "c.willems", "Chris Willems", .teamLead),
            ("opvang-zuid-limburg", "i.peters", "Ilse Peters", .caseworker),
            ("opvang-zuid-limburg", "l.smit", "Lisa Smit", .logReader),
        ]
        var running: [RunningDesk] = []
        do {
            print("Ketenpost desk demo: relay on \(relay.url.absoluteString); Ctrl-C stops everything.")
            for partner in ["gemeente-eijsden-margraten", "zorgcoordinatie-zuid-limburg", "opvang-zuid-limburg"] {
                var c = DeskConfiguration.development(
                    pki: pki,
                    partner: partner,
                    relayURL: relay.url.absoluteString,
                    dataDirectory: work.appendingPathComponent("desk-\(partner)").path
                )
                c.inbox.pollWait = 5
                let server = try DeskServer.open(c, logger: logger)
                var accounts: [String] = []
                for member in staff where member.partner == partner {
                    let password = Self.demoPassword()
                    let created = try await server.core.accounts.add(
                        username: member.username,
                        displayName: member.name,
                        role: member.role,
                        password: password
                    )
                    var account = "\(member.username) / \(password) (\(member.role.rawValue))"
                    if let url = created.authenticatorURL { account += ", second factor: add \(url) to an authenticator app" }
                    accounts.append(account)
                }
                // A token for trying the case-system API with curl (docs/desk-api.md).
                let token = try server.core.tokens.add(name: "demo-case-system").secret
                let desk = try await RunningDesk.start(server, logger: logger)
                running.append(desk)
                print(
                    """
                      \(partner.padding(toLength: 30, withPad: " ", startingAt: 0)) \(desk.url.absoluteString)   \
                    \(accounts.joined(separator: "; "))
                      \(String(repeating: " ", count: 30)) API token: \(token)
                    """
                )
            }
            fflush(nil)
            // Until Ctrl-C.
            let (signals, continuation) = AsyncStream.makeStream(of: Void.self)
            signal(SIGINT, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: SIGINT)
            source.setEventHandler { continuation.yield() }
            source.resume()
            for await _ in signals { break }
            source.cancel()
        } catch {
            for desk in running { await desk.stop() }
            await relay.stop()
            throw error
        }
        print("\nStopping.")
        for desk in running { await desk.stop() }
        await relay.stop()
        if keep { print("Kept \(work.path)") }
    }

    /// Four random words' worth of characters: long enough for the password rule, easy to type.
    static func demoPassword() -> String {
        let words = ["kanaal", "molen", "dijk", "fiets", "tulp", "polder", "brug", "haven", "sluis", "duin", "kade", "gracht"]
        return (0..<4).map { _ in words.randomElement()! }.joined(separator: "-")
    }

    private func play() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-demo-\(UUID().uuidString.prefix(8))")
        defer { if !keep { try? FileManager.default.removeItem(at: work) } }
        let pki = DevelopmentPKI(directory: work.appendingPathComponent("certs").path)
        let configuration = RelayConfiguration.development(
            pki: pki,
            storePath: work.appendingPathComponent("ketenpost.sqlite").path,
            partnersFile: config + "/partners.yaml",
            policyFile: config + "/policy.yaml"
        )
        var logger = Logger(label: "ketenpost.demo")
        logger.logLevel = .warning
        let relay = try await RunningRelay.start(
            try await RelayServer.prepare(configuration, logger: logger, hostedPartners: ConformanceEcho.hosted(by: configuration)),
            logger: logger
        )
        let trust = try TrustStore.load(anchorsFile: pki.caCertificatePath, crlFiles: [pki.crlPath], intermediates: pki.chain())
        let start = Date()
        func line(_ who: String, _ what: String) {
            let ms = Int(Date().timeIntervalSince(start) * 1000)
            print(String(format: "%6d ms  %@  %@", ms, who.padding(toLength: 30, withPad: " ", startingAt: 0), what))
        }
        func client(_ id: String) throws -> RelayClient {
            try RelayClient(
                relay: relay.url,
                identity: try Identity.load(directory: pki.partnerDirectory(id)),
                trust: trust,
                relayID: DevelopmentPKI.relayID
            )
        }
        func example(_ type: MessageType) throws -> Data {
            try Data(contentsOf: URL(fileURLWithPath: "\(config)/examples/\(type.rawValue).json"))
        }
        let partners = ["gemeente-eijsden-margraten", "zorgcoordinatie-zuid-limburg", "opvang-zuid-limburg"]
        do {
            // The clients are shut down when the demo ends, also when a step fails.
            try await withRelayClients(try partners.map(client)) { clients in
                let (municipality, coordinator, shelter) = (clients[0], clients[1], clients[2])
                print("Ketenpost demo: relay on \(relay.url.absoluteString), store \(configuration.store.path)")
                print("")

                func deliver(_ receiver: RelayClient, expecting id: UUID) async throws -> Envelope.Opened {
                    let items = try await receiver.receive(max: 1, wait: 5)
                    guard let item = items.first, item.id == id else {
                        throw KetenpostError(.messageNotFound, "The message did not arrive.")
                    }
                    let opened = try item.result.get()
                    line(
                        receiver.identity.partnerID,
                        """
                        received \(opened.header.type.rawValue) \(short(id)) from \(opened.header.from): both signatures, chain, header and \
                        schema verified
                        """
                    )
                    try await receiver.acknowledge(item)
                    line(receiver.identity.partnerID, "acknowledged \(short(id)) with a signed receipt (processed)")
                    return opened
                }
                func confirm(_ sender: RelayClient, _ id: UUID) async throws {
                    let status = try await sender.status(id)
                    let report = try StatusReport(
                        status,
                        trust: trust,
                        relayID: DevelopmentPKI.relayID,
                        me: sender.identity.partnerID,
                        sealedCopy: nil
                    )
                    let receipt = report.recipientReceipt.map { "receipt by \($0.issuer) (\($0.disposition)) verified" } ?? "no receipt yet"
                    line(
                        sender.identity.partnerID,
                        """
                        status of \(short(id)): \(report.state); acceptance receipt by \(report.acceptanceReceipt.issuer) verified; \
                        \(receipt)
                        """
                    )
                }

                var options = Drafting.Options()
                options.region = "GM1903"
                options.exploitationForm = .labour
                let signal = try await municipality.send(
                    payload: try example(.signal),
                    type: .signal,
                    to: coordinator.identity.partnerID,
                    options: options
                )
                line(
                    municipality.identity.partnerID,
                    """
                    sent signal \(short(signal.header.id)) → \(coordinator.identity.partnerID); relay accepted at \
                    \(time(signal.receipt.time)), receipt verified
                    """
                )
                _ = try await deliver(coordinator, expecting: signal.header.id)
                try await confirm(municipality, signal.header.id)

                options.id = UUID()
                options.priority = .urgent
                let notice = try await coordinator.send(
                    payload: try example(.intakeNotice),
                    type: .intakeNotice,
                    to: shelter.identity.partnerID,
                    options: options
                )
                line(
                    coordinator.identity.partnerID,
                    "sent intake-notice \(short(notice.header.id)) → \(shelter.identity.partnerID) (urgent); receipt verified"
                )
                _ = try await deliver(shelter, expecting: notice.header.id)

                var answer = Drafting.Options()
                answer.correlationID = notice.header.id
                answer.priority = .urgent
                let response = try await shelter.send(
                    payload: try example(.intakeResponse),
                    type: .intakeResponse,
                    to: coordinator.identity.partnerID,
                    options: answer
                )
                line(
                    shelter.identity.partnerID,
                    "sent intake-response \(short(response.header.id)) answering \(short(notice.header.id)); receipt verified"
                )
                _ = try await deliver(coordinator, expecting: response.header.id)
                try await confirm(coordinator, notice.header.id)
                try await confirm(shelter, response.header.id)

            }
        } catch {
            await relay.stop()
            throw error
        }
        print("")
        print("Done: 3 messages sealed, accepted, delivered and acknowledged; every receipt verified.")
        if keep { print("Kept \(work.path)") }
        await relay.stop()
    }

    private func short(_ id: UUID) -> String { String(id.uuidString.lowercased().prefix(8)) }
    private func time(_ date: Date) -> String { ISO8601DateFormatter().string(from: date) }
}
