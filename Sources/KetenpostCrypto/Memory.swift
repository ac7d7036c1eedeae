import COpenSSL
import Foundation

/// Owns a `BIO*` and frees it exactly once.
final class OwnedBIO {
    let pointer: OpaquePointer

    /// A writable memory BIO.
    init() throws(CryptoError) {
        guard let bio = BIO_new(BIO_s_mem()) else {
            throw .fromQueue(.internalError, "Could not allocate a memory buffer.")
        }
        pointer = bio
    }

    /// A memory BIO holding a copy of `bytes` (BIO_new_mem_buf would only borrow them).
    convenience init(copying bytes: some DataProtocol) throws(CryptoError) {
        try self.init()
        let data = Data(bytes)
        let written = data.withUnsafeBytes { raw -> Int32 in
            guard let base = raw.baseAddress, raw.count > 0 else { return 0 }
            return BIO_write(pointer, base, Int32(raw.count))
        }
        if written != Int32(data.count) && !data.isEmpty {
            throw .fromQueue(.internalError, "Could not fill a memory buffer.")
        }
    }

    deinit { BIO_free(pointer) }

    /// Everything written to the BIO so far.
    var contents: Data {
        var base: UnsafeMutablePointer<CChar>?
        let length = copenssl_BIO_get_mem_data(pointer, &base)
        guard length > 0, let base else { return Data() }
        return Data(bytes: base, count: length)
    }
}

/// Converts between DER bytes and OpenSSL objects with the d2i/i2d function pairs.
enum DER {
    static func decode(
        _ bytes: some DataProtocol,
        with d2i: (UnsafeMutablePointer<UnsafePointer<UInt8>?>, Int) -> OpaquePointer?,
        free: (OpaquePointer) -> Void
    ) -> OpaquePointer? {
        let data = Data(bytes)
        return data.withUnsafeBytes { raw -> OpaquePointer? in
            guard let base = raw.bindMemory(to: UInt8.self).baseAddress, raw.count > 0 else { return nil }
            var cursor: UnsafePointer<UInt8>? = base
            let object = d2i(&cursor, raw.count)
            // Trailing bytes after the structure are refused: the bytes that were signed or
            // hashed must be the bytes that were parsed.
            if let object, cursor != base + raw.count {
                free(object)
                return nil
            }
            return object
        }
    }

    static func encode(_ i2d: (UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>?) -> Int32) throws(CryptoError) -> Data {
        let length = i2d(nil)
        guard length > 0 else { throw .fromQueue(.internalError, "Could not encode a structure as DER.") }
        var data = Data(count: Int(length))
        let written = data.withUnsafeMutableBytes { raw -> Int32 in
            var cursor: UnsafeMutablePointer<UInt8>? = raw.bindMemory(to: UInt8.self).baseAddress
            return i2d(&cursor)
        }
        guard written == length else { throw .fromQueue(.internalError, "Could not encode a structure as DER.") }
        return data
    }
}

extension Data {
    /// Lowercase hexadecimal, as used for digests and fingerprints.
    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-256 through OpenSSL's EVP interface.
public enum Digest {
    /// Fetched once: given `EVP_sha256()`, OpenSSL 3 looks the implementation up in its provider
    /// store on every call (a lock and a search; half the time of hashing an audit record). A
    /// fetched `EVP_MD` is immutable and may be shared between threads.
    nonisolated(unsafe) private static let sha256Method: OpaquePointer = {
        guard let method = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("OpenSSL has no SHA-256 implementation") }
        return method
    }()

    public static func sha256(_ bytes: some DataProtocol) -> Data {
        // Data (nearly every caller) is hashed in place; other collections are copied once.
        let data = bytes as? Data ?? Data(bytes)
        var out = Data(count: 32)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBytes { outRaw in
            data.withUnsafeBytes { inRaw in
                EVP_Digest(
                    inRaw.baseAddress,
                    inRaw.count,
                    outRaw.bindMemory(to: UInt8.self).baseAddress,
                    &length,
                    sha256Method,
                    nil
                )
            }
        }
        // EVP_Digest with SHA-256 cannot fail short of memory exhaustion.
        precondition(ok == 1 && length == 32, "SHA-256 failed")
        return out
    }

    /// HMAC-SHA256 of `data` under `key` (webhook signatures).
    public static func hmacSHA256(key: Data, _ data: Data) -> Data {
        var out = Data(count: 32)
        var length: UInt32 = 0
        let result = out.withUnsafeMutableBytes { outRaw in
            key.withUnsafeBytes { keyRaw in
                data.withUnsafeBytes { dataRaw in
                    HMAC(
                        sha256Method,
                        keyRaw.baseAddress,
                        Int32(keyRaw.count),
                        dataRaw.bindMemory(to: UInt8.self).baseAddress,
                        dataRaw.count,
                        outRaw.bindMemory(to: UInt8.self).baseAddress,
                        &length
                    )
                }
            }
        }
        // Like the digest: fails only when memory runs out.
        precondition(result != nil && length == 32, "HMAC-SHA256 failed")
        return out
    }
}
