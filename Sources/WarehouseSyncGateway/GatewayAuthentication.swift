import Crypto
import Foundation
import WarehouseSyncCore
import WarehouseSyncSettings

/// Who may post events to the gateway (docs/gateway.md "Authentication"): a bearer token, an
/// HMAC-SHA256 signature of the body with a timestamp inside a replay window, or both (either
/// one then suffices). Secrets come from files, are compared in constant time and never appear
/// in a description, a log line or a response.
public struct GatewayAuthentication: Sendable, CustomStringConvertible {
    /// `X-WHSync-Timestamp`: Unix time in seconds when the request was signed.
    public static let timestampHeader = "X-WHSync-Timestamp"
    /// `X-WHSync-Signature`: `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`.
    public static let signatureHeader = "X-WHSync-Signature"
    static let signaturePrefix = "sha256="

    /// The credentials a request carries, header values as sent.
    public struct Credentials: Sendable {
        public var authorization: String?
        public var timestamp: String?
        public var signature: String?

        public init(authorization: String? = nil, timestamp: String? = nil, signature: String? = nil) {
            self.authorization = authorization
            self.timestamp = timestamp
            self.signature = signature
        }

        var isEmpty: Bool { authorization == nil && timestamp == nil && signature == nil }
    }

    /// Why a request was turned away: a short reason for the response and the
    /// `gateway_auth_failures_total{reason}` metric. Never holds what the client sent.
    public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        public let reason: String
        public let message: String
        public var description: String { message }
    }

    private let token: SecretToken?
    private let hmacKey: SymmetricKey?
    public let hmacWindow: Duration

    /// With neither a token nor a secret, every request is accepted (`GATEWAY_ALLOW_ANONYMOUS`).
    public init(bearerToken: [UInt8]?, hmacSecret: [UInt8]?, hmacWindow: Duration = .seconds(300)) {
        token = bearerToken.map(SecretToken.init)
        hmacKey = hmacSecret.map { SymmetricKey(data: $0) }
        self.hmacWindow = hmacWindow
    }

    public static let anonymous = GatewayAuthentication(bearerToken: nil, hmacSecret: nil)

    public var isAnonymous: Bool { token == nil && hmacKey == nil }

    /// What can be decided before the body is read.
    public enum Verdict: Sendable, Equatable {
        case accepted
        /// A signature to verify against the body (its timestamp is inside the window).
        case bodyNeeded
        case rejected(Rejection)
    }

    /// Decides what needs no body: credentials present at all, a bearer token, a signature's
    /// timestamp. A right token is enough, whatever else the request carries; a request with a
    /// wrong token and a signature is judged by its signature.
    public func verdict(_ credentials: Credentials, now: Date = Date()) -> Verdict {
        guard !isAnonymous else { return .accepted }
        guard !credentials.isEmpty else {
            return .rejected(Rejection(
                reason: "missing",
                message: "no credentials: send Authorization: Bearer <token> or an \(Self.signatureHeader) with \(Self.timestampHeader)"))
        }
        var rejection: Rejection?
        if let authorization = credentials.authorization {
            if token == nil {
                rejection = Rejection(reason: "method", message: "bearer tokens are not enabled on this gateway; sign the request")
            } else if let refused = checkToken(authorization) {
                rejection = refused
            } else {
                return .accepted
            }
        }
        if credentials.signature != nil || credentials.timestamp != nil {
            if hmacKey == nil {
                rejection = rejection ?? Rejection(reason: "method", message: "signed requests are not enabled on this gateway; send a bearer token")
            } else if let refused = checkTimestamp(credentials.timestamp, now: now) {
                return .rejected(refused)
            } else {
                return .bodyNeeded
            }
        }
        return .rejected(rejection!)  // set above: the credentials are not empty
    }

    /// Decides a request whole: `nil` when it may go on.
    public func check(_ credentials: Credentials, body: [UInt8], now: Date = Date()) -> Rejection? {
        switch verdict(credentials, now: now) {
        case .accepted: nil
        case .rejected(let rejection): rejection
        case .bodyNeeded: checkSignature(credentials, body: body)
        }
    }

    private func checkToken(_ authorization: String) -> Rejection? {
        switch token?.refusal(authorization: authorization) {
        case nil: nil
        case .malformed: Rejection(reason: "malformed", message: "the Authorization header is not 'Bearer <token>'")
        case .wrongToken: Rejection(reason: "token", message: "wrong bearer token")
        }
    }

    private func checkTimestamp(_ timestampText: String?, now: Date) -> Rejection? {
        // Beyond ±10^11 s (year 5138) a timestamp is nonsense, and the skew would not fit an Int.
        guard let timestampText, let seconds = Int64(timestampText), (-99_999_999_999...99_999_999_999).contains(seconds) else {
            return Rejection(reason: "malformed", message: "\(Self.timestampHeader) must be Unix time in whole seconds")
        }
        let skew = abs(now.timeIntervalSince1970 - Double(seconds))
        guard skew <= hmacWindow.timeInterval else {
            return Rejection(
                reason: "stale",
                message: "\(Self.timestampHeader) is \(Int(skew)) s away from the gateway's clock (window \(DurationParser.format(hmacWindow))): sign each request afresh")
        }
        return nil
    }

    /// After ``verdict(_:now:)`` said ``Verdict/bodyNeeded``: the signature over `body` (the
    /// timestamp was judged by the verdict). `nil` when the request may go on.
    public func checkSignature(_ credentials: Credentials, body: [UInt8]) -> Rejection? {
        guard let hmacKey, let timestampText = credentials.timestamp else { return nil }
        guard let signature = credentials.signature, signature.hasPrefix(Self.signaturePrefix),
            let mac = Self.bytes(hex: signature.dropFirst(Self.signaturePrefix.count)), mac.count == 32
        else {
            return Rejection(reason: "malformed", message: "\(Self.signatureHeader) must be 'sha256=' and 64 hex digits")
        }
        guard HMAC<Crypto.SHA256>.isValidAuthenticationCode(mac, authenticating: Self.signedContent(timestamp: timestampText, body: body), using: hmacKey) else {
            return Rejection(reason: "signature", message: "the signature does not match the body and timestamp")
        }
        return nil
    }

    /// The `WWW-Authenticate` value of a 401: the schemes this gateway takes.
    public var challenge: String {
        var schemes: [String] = []
        if token != nil { schemes.append("Bearer") }
        if hmacKey != nil { schemes.append("WHSync-HMAC-SHA256") }
        return schemes.joined(separator: ", ")
    }

    /// What is signed: the timestamp header's text, a dot, then the body as sent.
    static func signedContent(timestamp: String, body: [UInt8]) -> [UInt8] {
        Array(timestamp.utf8) + [UInt8(ascii: ".")] + body
    }

    /// The `X-WHSync-Signature` value for `body` signed at `timestamp` with `secret`: what a client
    /// computes (tests and the load script use it).
    public static func signature(secret: [UInt8], timestamp: String, body: [UInt8]) -> String {
        let mac = HMAC<Crypto.SHA256>.authenticationCode(for: signedContent(timestamp: timestamp, body: body), using: SymmetricKey(data: secret))
        return signaturePrefix + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// The bytes of lower- or upper-case hex digits; `nil` for anything else (bytes, not
    /// characters: a header may carry any octet).
    private static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func nibble(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    public var description: String {
        var methods: [String] = []
        if token != nil { methods.append("bearer") }
        if hmacKey != nil { methods.append("hmac(window \(DurationParser.format(hmacWindow)))") }
        return methods.isEmpty ? "anonymous" : methods.joined(separator: "+")
    }
}
