import Foundation
import Ketenpost
import KetenpostRelay

/// The three configuration files. Invalid configuration must stop start-up with a clean error;
/// a configuration that is accepted must be one the relay can run with.
enum ConfigurationTargets {
    static func relay(_ data: Data) throws(FuzzFinding) {
        guard let text = String(data: data, encoding: .utf8) else { return }   // load() reads UTF-8 only
        let configuration: RelayConfiguration
        do { configuration = try RelayConfiguration.parse(text, file: "ketenpost.yaml") } catch { return trace("refused: \(error)") }
        trace("accepted")
        try checkUsable(configuration)
    }

    static func partners(_ data: Data) throws(FuzzFinding) {
        guard let text = String(data: data, encoding: .utf8) else { return }
        let directory: PartnerDirectoryFile
        do { directory = try PartnerDirectoryFile.parse(text, file: "partners.yaml") } catch { return trace("refused: \(error)") }
        trace("accepted \(directory.partners.count) partners")
        let ids = directory.partners.map(\.id)
        guard Set(ids).count == ids.count else {
            throw FuzzFinding(.configPartners, "partners-unique", "a partner directory with a repeated id was accepted")
        }
    }

    static func policy(_ data: Data) throws(FuzzFinding) {
        // Policy.load takes a path only.
        Scratch.withFile(data) { path in
            do {
                let policy = try Policy.load(path: path)
                trace("accepted \(policy.rules.count) rules")
            } catch {
                trace("refused: \(error)")
            }
        }
    }

    /// What the relay does with the numbers it accepted, without trapping: durations are used
    /// as seconds and milliseconds (`SweeperService` converts `sweepInterval` to `Int64`
    /// milliseconds), and a rate-limited answer converts `1 / ratePerSecond` to an `Int` of
    /// seconds for Retry-After (`RelayCore.checkRate`).
    static func checkUsable(_ c: RelayConfiguration) throws(FuzzFinding) {
        let durations = [("queue.leaseDuration", c.leaseDuration), ("queue.retention", c.retention),
                         ("queue.sweepInterval", c.sweepInterval), ("queue.maxLongPoll", c.maxLongPoll)]
            + c.maxLifetime.map { ("queue.maxLifetime.\($0.key.rawValue)", $0.value) }
        for (key, value) in durations where !value.isFinite || value < 0 {
            throw FuzzFinding(.configRelay, "config-duration-finite", "\(key) was accepted as \(value) seconds")
        }
        guard c.sweepInterval * 1000 < Double(Int64.max) else {
            throw FuzzFinding(.configRelay, "config-duration-finite", "queue.sweepInterval does not fit Int64 milliseconds")
        }
        guard (1 / c.ratePerSecond).rounded(.up) < Double(Int.max) else {
            throw FuzzFinding(.configRelay, "config-rate-retry-after", "limits.ratePerSecond \(c.ratePerSecond) makes Retry-After overflow Int")
        }
        guard (1...65_535).contains(c.port) || c.port == 0, c.maxMessageBytes >= 1_024, c.maxAttempts >= 1 else {
            throw FuzzFinding(.configRelay, "config-range", "a number outside its documented range was accepted")
        }
    }
}
