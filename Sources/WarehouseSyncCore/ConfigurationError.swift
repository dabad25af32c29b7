/// Settings that cannot be used, all of them at once. Each problem is one line naming the
/// environment variable, the bad value (never a secret) and what is accepted; `description`
/// joins them one per line.
public struct ConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One unusable setting.
    public typealias Problem = SettingError

    public var problems: [Problem]

    public init(_ problems: [Problem]) {
        self.problems = problems
    }

    public init(setting: String, message: String) {
        self.init([Problem(setting: setting, message: message)])
    }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
