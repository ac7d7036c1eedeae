/// The TLS settings every Ketenpost endpoint and client uses, in one place.
public enum TLSPolicy {
    /// TLS 1.2 cipher suites (OpenSSL names): forward-secret key exchange (ECDHE) with an AEAD
    /// cipher only; no RSA key transport, no CBC. TLS 1.3's suites are all AEAD and stay as
    /// BoringSSL offers them.
    public static let cipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")
}
