import Crypto

/// SHA-256 as 64 lowercase hex digits: the form event fingerprints and dead-letter identities
/// are stored in (a persisted format). swift-crypto computes it (BoringSSL on Linux).
public enum ContentDigest {
    public static func sha256Hex(_ bytes: some Collection<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in SHA256.hash(data: Array(bytes)) {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
