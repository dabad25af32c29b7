import Foundation

/// The token clients must present as `Authorization: Bearer <token>`. Its description never
/// shows it, and the comparison takes the same time wherever the first difference is.
public struct BearerToken: Sendable, CustomStringConvertible {
    private let expected: [UInt8]

    /// `token` must be non-empty and free of whitespace and control characters.
    public init?(_ token: String) {
        guard !token.isEmpty, token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else { return nil }
        expected = Array(token.utf8)
    }

    /// Reads the token from the file at `path`; surrounding whitespace (a trailing newline) is
    /// dropped. The error names the file, never its content.
    public init(contentsOfFile path: String) throws(ConfigurationError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError(setting: "ERP_TOKEN_FILE", message: "cannot read \(path)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let token = BearerToken(text) else {
            throw ConfigurationError(
                setting: "ERP_TOKEN_FILE",
                message: "\(path) must hold one token: non-empty, printable ASCII, no spaces")
        }
        self = token
    }

    /// Whether `header` (the `Authorization` value) is `Bearer <this token>`. The scheme is
    /// compared case-insensitively; the token in constant time.
    public func matches(authorization header: String?) -> Bool {
        guard let header else { return false }
        let bytes = Array(header.utf8)
        let scheme = Array("bearer ".utf8)
        guard bytes.count >= scheme.count,
              zip(bytes.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 })
        else { return false }
        let presented = bytes[scheme.count...]
        var difference: UInt8 = presented.count == expected.count ? 0 : 1
        for (index, byte) in expected.enumerated() {
            let other = index < presented.count ? presented[presented.startIndex + index] : 0
            difference |= byte ^ other
        }
        return difference == 0
    }

    public var description: String { "<redacted>" }
}
