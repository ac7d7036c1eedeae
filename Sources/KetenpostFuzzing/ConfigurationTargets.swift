import Foundation
import KetenpostProvisioning
import KetenpostRelay
import Yams

/// The three configuration files. Invalid configuration must stop start-up with a clean error;
/// a configuration that is accepted must be one the relay can run with.
enum ConfigurationTargets {
    static func relay(_ data: Data) throws(FuzzFinding) {
        guard let text = String(data: data, encoding: .utf8) else { return }  // load() reads UTF-8 only
        // RelayConfiguration.parse once built the whole document as Swift values (`Yams.load`),
        // which expanded every alias and trapped on a non-scalar key (Tests/Fuzz/README.md); it
        // now reads the composed node tree key by key. Should either come back as a known issue,
        // such files are reported before `parse`, so that the fuzzer neither hangs nor stops.
        if let known = preflight(text), FuzzFinding.known.contains(known.property) {
            throw FuzzFinding(.configRelay, known.property, known.message)
        }
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

    /// What `Yams.load` would do with `text`, from the composed node tree, which shares the
    /// nodes that aliases name instead of copying them: more than 100,000 nodes once aliases are
    /// expanded (the walk stops counting there), or a mapping key that is not a scalar.
    static func preflight(_ text: String) -> (property: String, message: String)? {
        guard let root = try? Yams.compose(yaml: text) else { return nil }
        var budget = 100_000
        var complexKey = false
        func visit(_ node: Node) -> Bool {
            budget -= 1
            guard budget >= 0 else { return false }
            switch node {
            case .scalar, .alias: return true
            case .mapping(let mapping):
                return mapping.allSatisfy { key, value in
                    if key.scalar == nil { complexKey = true }
                    return visit(key) && visit(value)
                }
            case .sequence(let sequence): return sequence.allSatisfy(visit)
            }
        }
        if !visit(root) { return ("config-alias-expansion", "a short file whose aliases expand to over 100000 nodes") }
        if complexKey { return ("config-complex-key", "a mapping key that is not a scalar (Yams.load traps on it)") }
        return nil
    }

    /// What the relay does with the numbers it accepted, without trapping: durations are used
    /// as seconds and milliseconds (`SweeperService` converts `sweepInterval` to `Int64`
    /// milliseconds), and a rate-limited answer converts `1 / ratePerSecond` to an `Int` of
    /// seconds for Retry-After (`RelayCore.checkRate`).
    static func checkUsable(_ c: RelayConfiguration) throws(FuzzFinding) {
        let durations =
            [
                ("queue.leaseDuration", c.queue.leaseDuration), ("queue.retention", c.queue.retention),
                ("queue.sweepInterval", c.queue.sweepInterval), ("queue.maxLongPoll", c.queue.maxLongPoll),
            ]
            + c.queue.maxLifetime.map { ("queue.maxLifetime.\($0.key.rawValue)", $0.value) }
        for (key, value) in durations where !value.isFinite || value < 0 {
            throw FuzzFinding(.configRelay, "config-duration-finite", "\(key) was accepted as \(value) seconds")
        }
        guard c.queue.sweepInterval * 1000 < Double(Int64.max) else {
            throw FuzzFinding(.configRelay, "config-duration-finite", "queue.sweepInterval does not fit Int64 milliseconds")
        }
        guard (1 / c.limits.ratePerSecond).rounded(.up) < Double(Int.max) else {
            throw FuzzFinding(
                .configRelay,
                "config-rate-retry-after",
                "limits.ratePerSecond \(c.limits.ratePerSecond) makes Retry-After overflow Int"
            )
        }
        guard (1...65_535).contains(c.listen.port) || c.listen.port == 0, c.limits.maxMessageBytes >= 1_024, c.queue.maxAttempts >= 1 else {
            throw FuzzFinding(.configRelay, "config-range", "a number outside its documented range was accepted")
        }
    }
}
