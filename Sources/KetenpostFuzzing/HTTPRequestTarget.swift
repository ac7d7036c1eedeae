import Foundation
import Hummingbird
import KetenpostAPI
import KetenpostEnvelope
import KetenpostModel
import KetenpostRelay
import KetenpostStore
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOPosix
import NIOSSL

/// Raw bytes as they arrive on a relay connection, after TLS.
///
/// The bytes go through the decoder pipeline that Hummingbird's `HTTP1Channel` installs (NIO's
/// HTTP/1 parser with the same limits, then the HTTPTypes codec) on an `EmbeddedChannel`; every
/// complete request is then built the way Hummingbird builds it and handed to the relay's real
/// router (`RelayHTTP.router`) over a real `RelayCore` with an SQLite store.
///
/// The handlers authenticate the partner by the connection's TLS client certificate, so the
/// request context carries a real mutual-TLS connection, made once per process over loopback
/// between the relay's and the sender's fixture identities: every request is the sender's,
/// and goes past authentication. What differs from a live server: the request bytes do not
/// travel through that connection (the decoder runs in memory), and the body is handed to the
/// handler as received instead of streamed.
enum HTTPRequestTarget {
    struct Harness: Sendable {
        let responder: RouterResponder<RelayRequestContext>
        /// The relay's side of an idle mutual-TLS connection with the sender: the handlers ask it
        /// for the peer certificate and whether it is open.
        let channel: any Channel
        /// The sender's side, kept open.
        let client: any Channel
        let logger: Logger
    }

    private static let shared = Task<Harness, any Error> {
        let fixture = Fixture.shared
        let logger = Logger(label: "ketenpost.fuzz") { _ in SwiftLogNoOpLogHandler() }
        var configuration = RelayConfiguration()
        configuration.store.path = Scratch.directory.appendingPathComponent("relay.sqlite").path
        configuration.limits.maxMessageBytes = 4_096  // small, so that inputs reach the 413 paths
        configuration.limits.ratePerSecond = 1_000_000
        configuration.limits.rateBurst = 1_000_000
        configuration.queue.maxLongPoll = 0  // an inbox request never waits
        let store = try SQLiteMessageStore(path: configuration.store.path)
        try await store.migrate()
        // The directory as the relay loads it: partners.yaml naming each partner's certificate file.
        var yaml = "partners:\n"
        for (entry, identity) in [(fixture.senderEntry, fixture.sender), (fixture.recipientEntry, fixture.recipient)] {
            let certificate = Scratch.directory.appendingPathComponent("\(entry.id).pem")
            try Data(identity.certificate.pem.utf8).write(to: certificate)
            yaml +=
                """
                  - {id: \(entry.id), name: \(entry.id), role: \(entry.role.rawValue), oin: '\(entry.oin)', certificates: \
                ['\(certificate.path)']}\n
                """
        }
        let partnersFile = Scratch.directory.appendingPathComponent("partners.yaml")
        try Data(yaml.utf8).write(to: partnersFile)
        let changes = try DirectoryImport.changes(
            file: partnersFile.path,
            certificateDirectory: Scratch.directory.path,
            current: try await store.directorySnapshot(),
            now: Date()
        )
        try await store.applyDirectory(changes, actor: "import:fuzz", at: Date())
        let core = try RelayCore(
            configuration: configuration,
            directory: PartnerDirectory(snapshot: try await store.directorySnapshot()),
            policy: .default,
            trust: fixture.trust,
            identity: fixture.relay,
            store: store,
            logger: logger
        )
        let (server, client) = try await tlsConnection(fixture)
        return Harness(responder: RelayHTTP.router(core: core).buildResponder(), channel: server, client: client, logger: logger)
    }

    /// A mutual-TLS connection over loopback: the relay's identity serves, the sender's
    /// identity connects. Returns the server's child channel once it knows the client certificate.
    private static func tlsConnection(_ fixture: Fixture) async throws -> (server: any Channel, client: any Channel) {
        func nio(_ identity: Identity) throws -> (NIOSSLCertificate, NIOSSLPrivateKey) {
            (
                try NIOSSLCertificate(bytes: Array(identity.certificate.pem.utf8), format: .pem),
                try NIOSSLPrivateKey(bytes: Array(try identity.key.pem().utf8), format: .pem)
            )
        }
        let anchor = try NIOSSLCertificate(bytes: Array(fixture.ca.certificate.pem.utf8), format: .pem)
        let (relayCertificate, relayKey) = try nio(fixture.relay)
        var serverTLS = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: [.certificate(relayCertificate)],
            privateKey: .privateKey(relayKey),
            trustRoots: .certificates([anchor])
        )
        serverTLS.certificateVerification = .noHostnameVerification
        let (senderCertificate, senderKey) = try nio(fixture.sender)
        var clientTLS = TLSConfiguration.makeClientConfiguration()
        clientTLS.certificateChain = [.certificate(senderCertificate)]
        clientTLS.privateKey = .privateKey(senderKey)
        clientTLS.trustRoots = .certificates([anchor])
        clientTLS.certificateVerification = .noHostnameVerification
        let serverContext = try NIOSSLContext(configuration: serverTLS)
        let clientContext = try NIOSSLContext(configuration: clientTLS)

        let group = MultiThreadedEventLoopGroup.singleton
        let accepted = group.any().makePromise(of: (any Channel).self)
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: serverContext))
                    accepted.succeed(child)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = listener.localAddress?.port ?? 0
        let client = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: clientContext, serverHostname: nil))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let server = try await accepted.futureResult.get()
        try await listener.close()
        // The handshake completes in the background; wait until the relay's side has the certificate.
        for _ in 0..<500 {
            if (try? await server.nioSSL_peerCertificate().get()) != nil { return (server, client) }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw KetenpostError(.internalError, "the harness's TLS connection did not complete its handshake")
    }

    static func harness() async throws -> Harness { try await shared.value }

    static func run(_ data: Data) async throws(FuzzFinding) {
        let harness: Harness
        do { harness = try await Self.harness() } catch { fatalError("cannot start the relay harness: \(error)") }
        for request in decode(data) {
            // As Hummingbird's server does: each request's logger carries its id.
            var logger = harness.logger
            logger[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            let context = RelayRequestContext(source: .init(channel: harness.channel, logger: logger))
            let path = request.head.path ?? ""
            let response: Response
            do {
                response = try await harness.responder.respond(to: request.request, context: context)
            } catch let error as any HTTPResponseError {
                trace("\(request.head.method) \(path): router \(error.status.code)")
                // The router's own answers (404, 405): Hummingbird turns them into responses.
                guard error.status.code < 500 else {
                    throw FuzzFinding(.httpRequest, "http-no-5xx", "the router failed with \(error.status.code) for \(request.head.method)")
                }
                continue
            } catch {
                throw FuzzFinding(.httpRequest, "http-no-5xx", "a handler threw \(type(of: error)), which Hummingbird answers with 500")
            }
            trace("\(request.head.method) \(path): \(response.status.code)")
            // Every refusal is a 4xx with a stable code; a 5xx means a handler failed unexpectedly
            // (503 is /v1/ready's answer while the store does not answer).
            if response.status.code >= 500, !(response.status == .serviceUnavailable && path.hasPrefix("/v1/ready")) {
                throw FuzzFinding(.httpRequest, "http-no-5xx", "answered \(response.status.code) to \(request.head.method)")
            }
            if request.head.headerFields[.connection]?.lowercased() == "close" { break }
        }
    }

    struct Decoded {
        let head: HTTPRequest
        let request: Request
    }

    /// The complete requests in `data`, in order, up to the first the server would not read
    /// (a parse error, or a part that is not the next request's head).
    static func decode(_ data: Data) -> [Decoded] {
        var parts: [HTTPRequestPart] = []
        let channel = EmbeddedChannel()
        do {
            // As HTTP1Channel.setup configures a connection (Hummingbird's default limits).
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = 80 * 1024
            limits.maxHeaderListSize = 80 * 1024
            limits.maxHeaderFieldCount = 1000
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false,
                withErrorHandling: false,
                withOutboundHeaderValidation: false,
                withEncoderConfiguration: .init(),
                withDecoderLimitConfiguration: limits
            )
            try channel.pipeline.syncOperations.addHandler(HTTP1ToHTTPServerCodec(secure: false))
        } catch {
            fatalError("cannot configure the HTTP pipeline: \(error)")
        }
        // A parse error stops the decoder; the requests before it are served (and then the
        // connection is closed), like Hummingbird does.
        _ = try? channel.writeInbound(ByteBuffer(bytes: data))
        while let part = try? channel.readInbound(as: HTTPRequestPart.self) { parts.append(part) }
        _ = try? channel.finish()

        var requests: [Decoded] = []
        var index = 0
        while index < parts.count, case .head(let head) = parts[index] {
            index += 1
            var chunks: [ByteBuffer] = []
            body: while index < parts.count {
                switch parts[index] {
                case .body(let chunk):
                    chunks.append(chunk)
                    index += 1
                case .end:
                    index += 1
                    break body
                case .head: break body
                }
            }
            let stream = AsyncStream<ByteBuffer> { continuation in
                for chunk in chunks { continuation.yield(chunk) }
                continuation.finish()
            }
            requests.append(Decoded(head: head, request: Request(head: head, body: RequestBody(asyncSequence: stream))))
        }
        return requests
    }
}
