import Foundation
import KetenpostAPI
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
