import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel

/// The envelope targets. A byte-level fuzzer cannot produce a valid signature, so each layer
/// gets its own target: the harness signs (and encrypts) what the fuzzer produced with this
/// process's keys, so that the fuzzed layer is what `Envelope.open` actually parses.
enum EnvelopeTargets {
    /// Raw bytes as a sealed message (CMS parsing, the outer signature, the signer's chain).
    static func open(_ data: Data) throws(FuzzFinding) {
        try openAndCheck(data, .envelopeOpen)
    }

    /// The outer JSON document, signed by the sender: outer JSON rules, header, base64 and the
    /// layers below when `envelope` decodes.
    static func outer(_ data: Data) throws(FuzzFinding) {
        let fixture = Fixture.shared
        guard let message = try? CMS.sign(data, signer: fixture.sender.certificate, key: fixture.sender.key) else { return }
        try openAndCheck(message, .envelopeOuter)
    }

    /// The encrypted layer's DER, wrapped in a signed outer document with the fixed header.
    static func encrypted(_ data: Data) throws(FuzzFinding) {
        guard !data.isEmpty else { return }
        let fixture = Fixture.shared
        let outer = Fixture.outerDocument(header: Fixture.header, encrypted: data)
        guard let message = try? CMS.sign(outer, signer: fixture.sender.certificate, key: fixture.sender.key) else { return }
        try openAndCheck(message, .envelopeEncrypted)
    }

    /// The inner JSON document, signed, encrypted for the recipient and wrapped. The outer header
    /// is the input's own `header` when it decodes (so that mutations reach the later checks),
    /// the fixed header otherwise.
    static func inner(_ data: Data) throws(FuzzFinding) {
        let opened: Envelope.Opened
        do {
            opened = try sealAndOpen(inner: data)
        } catch {
            trace("refused: \(error.code)")
            return try DocumentTargets.checkNoValues(of: data, in: error.description, .envelopeInner, allowPartnerIDs: true) { data in
                do {
                    _ = try sealAndOpen(inner: data)
                    return nil
                } catch { return "\(error)" }
            }
        }
        trace("opened")
        try check(opened, .envelopeInner, input: data)
    }

    private struct HeaderOnly: Decodable { var header: RoutingHeader }

    private static func sealAndOpen(inner data: Data) throws(KetenpostError) -> Envelope.Opened {
        let fixture = Fixture.shared
        let header = (try? KetenpostJSON.decoder().decode(HeaderOnly.self, from: data))?.header ?? Fixture.header
        let message: Data
        do {
            let innerDER = try CMS.sign(data, signer: fixture.sender.certificate, key: fixture.sender.key)
            let encrypted = try CMS.encrypt(innerDER, for: [fixture.recipient.certificate])
            message = try CMS.sign(
                Fixture.outerDocument(header: header, encrypted: encrypted),
                signer: fixture.sender.certificate,
                key: fixture.sender.key
            )
        } catch {
            throw KetenpostError(.internalError, "the harness could not seal: \(error)")
        }
        return try Envelope.open(message, as: fixture.recipient, trust: fixture.trust, allowExpired: true)
    }

    private static func openAndCheck(_ message: Data, _ target: FuzzTarget) throws(FuzzFinding) {
        let fixture = Fixture.shared
        let opened: Envelope.Opened
        do {
            opened = try Envelope.open(message, as: fixture.recipient, trust: fixture.trust, allowExpired: true)
        } catch {
            return trace("refused: \(error.code)")
        }
        trace("opened")
        try check(opened, target)
    }

    /// What `open` promises about a message it accepted.
    static func check(_ opened: Envelope.Opened, _ target: FuzzTarget, input: Data = Data()) throws(FuzzFinding) {
        let fixture = Fixture.shared
        guard opened.header.to == fixture.recipient.partnerID else {
            throw FuzzFinding(target, "open-recipient", "opened a message addressed to someone else")
        }
        guard opened.sender.commonName == opened.header.from else {
            throw FuzzFinding(target, "open-sender", "opened a message whose signer is not its header's from")
        }
        guard opened.sender == fixture.sender.certificate else {
            throw FuzzFinding(target, "open-signer", "opened a message signed by a certificate the fuzzer does not hold")
        }
        guard opened.payload.type == opened.header.type else {
            throw FuzzFinding(target, "open-type", "opened a message whose payload schema differs from its header type")
        }
        // What was accepted must survive its own canonical form.
        try DocumentTargets.canonical(target, opened.content.encoded(), input: input) { data throws in
            try SealedContent.decode(from: data, now: Date()).encoded()
        }
    }
}
