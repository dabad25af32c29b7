import WarehouseSyncSettings

/// Who may do what on the dead-letter console (docs/console.md "Access"): the read token shows
/// pages, the write token also edits and replays. Tokens come from files and are compared as
/// ``SecretToken``s; a browser holds a session cookie derived from its token (not the token), and
/// every form that changes something carries a form token derived from the write token.
public struct ConsoleAccess: Sendable {
    public enum Role: Int, Sendable, Comparable, CustomStringConvertible {
        case read
        case write

        public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rawValue < rhs.rawValue }
        public var description: String { self == .read ? "read" : "write" }
    }

    /// The session cookie: `HttpOnly`, `SameSite=Strict`, `Path=/`.
    public static let sessionCookie = "whsync_console_session"
    /// The name a person gave at login, for the audit trail.
    public static let nameCookie = "whsync_console_name"

    private let readToken: SecretToken
    private let writeToken: SecretToken?
    private let readSession: SecretToken
    private let writeSession: SecretToken?

    public init(readToken: [UInt8], writeToken: [UInt8]?) {
        self.readToken = SecretToken(readToken)
        self.writeToken = writeToken.map(SecretToken.init)
        readSession = SecretToken(Array(self.readToken.derived(Self.sessionPurpose).utf8))
        writeSession = self.writeToken.map { SecretToken(Array($0.derived(Self.sessionPurpose).utf8)) }
    }

    private static let sessionPurpose = "whsync-console-session"
    private static let formPurpose = "whsync-console-form"

    public var allowsWriting: Bool { writeToken != nil }

    /// The role a token grants (typed at login, or sent as `Authorization: Bearer`).
    public func role(token: some Sequence<UInt8>) -> Role? {
        let token = Array(token)
        if let writeToken, writeToken.matches(token) { return .write }
        return readToken.matches(token) ? .read : nil
    }

    /// The role of a request: its `Authorization: Bearer` token, else its session cookie.
    public func role(authorization: String?, session: String?) -> Role? {
        if let authorization, let token = SecretToken.bearerCredential(authorization) {
            return role(token: Array(token.utf8))
        }
        guard let session else { return nil }
        let bytes = Array(session.utf8)
        if let writeSession, writeSession.matches(bytes) { return .write }
        return readSession.matches(bytes) ? .read : nil
    }

    /// The session cookie's value for `role`.
    public func session(for role: Role) -> String {
        token(for: role).derived(Self.sessionPurpose)
    }

    /// The hidden form field every writing form carries (`form-token`): only a page the console
    /// served to a write session has it, so another site cannot forge the form.
    public func formToken() -> String? {
        writeToken?.derived(Self.formPurpose)
    }

    /// Whether a submitted form token is the write token's.
    public func acceptsFormToken(_ value: String?) -> Bool {
        guard let value, let writeToken else { return false }
        return SecretToken(Array(writeToken.derived(Self.formPurpose).utf8)).matches(Array(value.utf8))
    }

    private func token(for role: Role) -> SecretToken {
        role == .write ? (writeToken ?? readToken) : readToken
    }
}
