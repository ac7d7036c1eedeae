import Foundation
import Hummingbird
import KetenpostAPI
import KetenpostCrypto
import NIOCore
import NIOSSL

/// What the relay's handlers need from a request context besides Hummingbird's: the client
/// certificate of the connection, whether the connection is still open, and the caller that
/// the authentication middleware established. The relay's router is generic over it, so that
/// handler tests can run through `app.test(.router)` with a context of their own, without TLS.
public protocol PeerRequestContext: RequestContext where Source == ApplicationRequestContextSource {
    /// The verified TLS client certificate of this connection, if any.
    func peerCertificate() async -> Certificate?
    /// Whether the client is still connected: a long poll leases nothing to a closed connection.
    var isConnected: Bool { get }
    /// Closes the connection after `timeout` seconds unless the returned deadline is cancelled
    /// first (a body that does not arrive in time).
    func closeConnection(after timeout: TimeInterval) -> ConnectionDeadline
    /// Set once per request by the authentication middleware of the route group.
    var caller: Caller? { get set }
}

extension PeerRequestContext {
    /// The authenticated partner; only routes behind `PartnerAuthentication` have one.
    func partner() throws(KetenpostError) -> Partner {
        try authenticated().partner
    }

    /// The authenticated partner with what `Authenticator.recheck` needs.
    func authenticated() throws(KetenpostError) -> Authenticated {
        guard case .partner(let partner, let certificate, let trust) = caller else {
            throw KetenpostError(.internalError, "The relay failed unexpectedly; nothing was changed. Retry, and report it if it persists.")
        }
        return Authenticated(partner: partner, certificate: certificate, trust: trust)
    }

    /// The authenticated administrator's audit actor; only routes behind `AdministratorAuthentication` have one.
    func administrator() throws(KetenpostError) -> String {
        guard case .administrator(let actor) = caller else {
            throw KetenpostError(.internalError, "The relay failed unexpectedly; nothing was changed. Retry, and report it if it persists.")
        }
        return actor
    }
}

/// The request context of the relay's mutual-TLS listener: Hummingbird's core storage plus the
/// channel, to reach the TLS client certificate (Hummingbird has no peer-certificate API of its own).
public struct RelayRequestContext: PeerRequestContext {
    public var coreContext: CoreRequestContextStorage
    public var caller: Caller?
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    public func peerCertificate() async -> Certificate? {
        guard let peer = try? await channel.nioSSL_peerCertificate().get(),
            let der = try? peer.toDERBytes()
        else { return nil }
        return try? Certificate.cached(der: der)
    }

    public var isConnected: Bool { channel.isActive }

    public func closeConnection(after timeout: TimeInterval) -> ConnectionDeadline {
        // A timer of the connection's own event loop: no task, no dispatch timer (and no wake-up
        // of libdispatch's timer thread) per request, as `Task.sleep` would cost.
        let channel = self.channel
        let scheduled = channel.eventLoop.scheduleTask(in: .milliseconds(Int64(timeout * 1000))) { channel.close(promise: nil) }
        return ConnectionDeadline { scheduled.cancel() }
    }
}

/// A pending close of a connection (`PeerRequestContext.closeConnection(after:)`).
public struct ConnectionDeadline: Sendable {
    private let cancelClose: @Sendable () -> Void
    public init(cancel: @escaping @Sendable () -> Void) { cancelClose = cancel }
    /// The connection stays open.
    public func cancel() { cancelClose() }
}
