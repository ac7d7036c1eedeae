import Foundation
import Hummingbird
import KetenpostAPI
import KetenpostCrypto
import KetenpostProvisioning
import KetenpostStore
import Logging
import ServiceLifecycle
import UnixSignals

/// Applies expiry, dead-letters and retention on a schedule, and ends long polls at shutdown.
struct SweeperService: Service {
    let core: RelayCore

    func run() async throws {
        await withGracefulShutdownHandler {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                _ = try? await core.sweep()
                let interval = Duration.milliseconds(Int64(core.configuration.queue.sweepInterval * 1000))
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            }
        } onGracefulShutdown: {
            Task { await core.messages.endLongPolls() }
        }
    }
}

/// Keeps a running relay current: directory changes from other instances, certificate and
/// CRL files (on schedule and on SIGHUP), the stale-CRL alarm and daily expiry warnings.
struct LifecycleService: Service {
    let core: RelayCore
    let reloadOnSIGHUP: Bool

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if reloadOnSIGHUP {
                let signals = await UnixSignalsSequence(trapping: .sighup)
                group.addTask {
                    for await _ in signals.cancelOnGracefulShutdown() {
                        core.logger.notice("SIGHUP: reloading certificates, CRLs and the directory")
                        core.reloadCredentials()
                        try? await core.directory.refresh(force: true)
                    }
                }
            }
            // Another instance accepted a message or changed the directory: act at once instead
            // of waiting for a poll (stores that live in one process have nothing to tell).
            group.addTask {
                do {
                    guard let notifications = try await core.store.notifications() else { return }
                    for await notification in notifications.cancelOnGracefulShutdown() {
                        switch notification {
                        case .inbox(let recipient): await core.notifier.notify(recipient)
                        case .directory: try? await core.directory.refresh()
                        }
                    }
                } catch {
                    // Long polls then wake only for messages accepted here; the others arrive with the next poll.
                    core.logger.error(
                        "store notifications unavailable; falling back to polling",
                        metadata: ["error.type": "\(type(of: error))"]
                    )
                }
            }
            // The loop ends at graceful shutdown; then the listeners are cancelled.
            await loop()
            group.cancelAll()
        }
        // A final checkpoint when the relay stops: the trail it leaves is signed to its end.
        await core.writeCheckpoint()
    }

    private func loop() async {
        let configuration = core.configuration
        var lastCredentials = ContinuousClock.now
        var lastExpiry = ContinuousClock.now
        var lastCheckpoint = ContinuousClock.now
        core.warnExpiring()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown {
                try await Task.sleep(for: .milliseconds(Int64(configuration.directory.refreshInterval * 1000)))
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            do {
                try await core.directory.refresh()
            } catch {
                core.logger.error("directory refresh failed", metadata: ["error.type": "\(type(of: error))"])
            }
            let now = ContinuousClock.now
            if now - lastCredentials >= .milliseconds(Int64(configuration.tls.reloadInterval * 1000)) {
                lastCredentials = now
                core.reloadCredentials()
                core.directory.updateCertificateGauges()
            }
            if now - lastCheckpoint >= .milliseconds(Int64(configuration.audit.checkpointInterval * 1000)) {
                lastCheckpoint = now
                await core.writeCheckpoint()
            }
            if now - lastExpiry >= .seconds(86_400) {
                lastExpiry = now
                core.warnExpiring()
            }
        }
    }
}

/// The development PKI's CRL distribution point (`developmentPKI.serveCRLs`): plain HTTP on
/// loopback at the address its certificates name, answering `root.crl` and `issuing.crl` with
/// the current lists (read per request, so `ketenpost pki revoke` shows at once). Development
/// only; when the port is taken, a warning is logged and the relay runs without it.
struct DevelopmentCRLService: Service {
    let pki: DevelopmentPKI
    let logger: Logger

    func run() async throws {
        // Returning would end the relay's service group: whatever happens here, wait for shutdown.
        let published = pki.publishedCRLEndpoint
        guard let endpoint = URL(string: published), let host = endpoint.host, let port = endpoint.port else {
            return try await gracefulShutdown()
        }
        guard host == "127.0.0.1" || host == "localhost" else {
            logger.warning("development CRL endpoint not served: it is not on loopback", metadata: ["crl.endpoint": "\(published)"])
            return try await gracefulShutdown()
        }
        let router = Router()
        let pki = self.pki
        for (name, path) in [("root.crl", pki.rootCRLPath), ("issuing.crl", pki.issuingCRLPath)] {
            router.get(RouterPath(name)) { _, _ -> Response in
                guard let pem = try? Data(contentsOf: URL(fileURLWithPath: path)), let list = try? RevocationList(pem: pem) else {
                    return Response(status: .notFound)
                }
                return Response(
                    status: .ok,
                    headers: [.contentType: "application/pkix-crl"],
                    body: .init(byteBuffer: ByteBuffer(bytes: list.der))
                )
            }
        }
        let app = RelayServer.plainListener(
            router,
            name: "crl",
            event: "development CRL endpoint listening",
            host: host,
            port: port,
            logger: logger,
            onRunning: { _ in }
        )
        do {
            try await app.run()
        } catch {
            logger.warning(
                "development CRL endpoint not served (port taken?); the relay runs without it",
                metadata: ["crl.endpoint": "\(published)", "error.type": "\(type(of: error))"]
            )
            try await gracefulShutdown()
        }
    }
}
