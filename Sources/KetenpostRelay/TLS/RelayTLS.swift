import Foundation
import HummingbirdTLS
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import Logging
import NIOSSL

/// The relay's TLS layer: TLS 1.2+ with a required client certificate, checked by the relay
/// itself (chain, CRLs, directory state) at every handshake; the relay's certificate is looked
/// up per handshake, so a reloaded certificate applies to new connections while open ones continue.
enum RelayTLS {
    static func configuration(core: RelayCore) throws -> TLSChannelConfiguration {
        let configuration = core.configuration
        do {
            let credentials = core.credentials.value
            let roots = try credentials.trust.anchors.map { try NIOSSLCertificate(bytes: Array($0.der), format: .der) }
            var tls = TLSConfiguration.makeServerConfigurationWithMTLS(
                certificateChain: credentials.tlsChain,
                privateKey: credentials.tlsKey,
                trustRoots: .certificates(roots)
            )
            tls.minimumTLSVersion = .tlsv12
            tls.cipherSuites = TLSPolicy.cipherSuites
            tls.certificateVerification = .noHostnameVerification
            let live = core.credentials
            tls.sslContextCallback = { _, promise in promise.succeed(override(live)) }
            let verifier = HandshakeVerifier(
                credentials: core.credentials,
                directory: core.directory,
                metrics: core.metrics,
                logger: core.logger,
                clock: core.clock
            )
            return TLSChannelConfiguration(
                tlsConfiguration: tls,
                customVerificationCallback: { chain, promise in
                    promise.succeed(verifier.verify(chain))
                }
            )
        } catch {
            throw KetenpostError(
                .configInvalid,
                """
                The relay's TLS files (tls.certificate \(configuration.tls.certificate), tls.key, tls.trustAnchors \
                \(configuration.tls.trustAnchors)) cannot be used: \(error)
                """
            )
        }
    }

    /// The relay's current certificate and key for a new handshake.
    static func override(_ live: LiveCredentials) -> NIOSSLContextConfigurationOverride {
        let credentials = live.value
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = credentials.tlsChain
        override.privateKey = credentials.tlsKey
        return override
    }
}

/// The handshake's client certificate check, replacing BoringSSL's: chain and CRLs through the
/// relay's trust store (so revocation counts at the handshake), and a certificate the directory
/// has revoked or retired is refused before any request. Certificates the directory does not
/// know pass here and get a 403 with a code on their first request.
struct HandshakeVerifier: Sendable {
    let credentials: LiveCredentials
    let directory: LiveDirectory
    let metrics: RelayMetrics
    let logger: Logger
    let clock: @Sendable () -> Date

    func verify(_ chain: [NIOSSLCertificate]) -> NIOSSLVerificationResult {
        guard let der = try? chain.first?.toDERBytes(), let leaf = try? Certificate(der: der) else { return .failed }
        // The rest of what the client sent: intermediates to build the path with, never trusted.
        var intermediates: [Certificate] = []
        for certificate in chain.dropFirst().prefix(DirectoryAdministration.maximumIntermediates) {
            guard let der = try? certificate.toDERBytes(), let parsed = try? Certificate(der: der) else { return .failed }
            intermediates.append(parsed)
        }
        let (directory, credentials) = (self.directory.snapshot, self.credentials.value)
        // A client such as curl sends only what its certificate file holds: the intermediates
        // the relay knows (registered, the administrators', its own) complete the path.
        if let registered = directory.registration(of: leaf)?.certificate {
            intermediates += registered.intermediates
        } else if credentials.administrators.contains(leaf.fingerprint) {
            intermediates += credentials.administratorChain + credentials.identity.chain
        } else {
            intermediates += directory.intermediates + credentials.identity.chain
        }
        do {
            try credentials.trust.verify(leaf, chain: intermediates, for: .tlsClient)
        } catch {
            let code = KetenpostError.certificate(error, role: "client").code
            logger.notice("handshake refused", metadata: ["error.code": "\(code)"])
            metrics.handshakeFailed(reason: code.rawValue)
            return .failed
        }
        if credentials.administrators.contains(leaf.fingerprint) { return .certificateVerified }
        if let (partner, registered) = directory.registration(of: leaf) {
            let state = registered.state(at: clock())
            if state == .revoked || state == .retired || state == .expired {
                logger.notice("handshake refused", metadata: ["partner.id": "\(partner.id)", "certificate.state": "\(state.rawValue)"])
                metrics.handshakeFailed(reason: "directory-\(state.rawValue)")
                return .failed
            }
        }
        return .certificateVerified
    }
}
