/// A setting that cannot be used: one line naming the setting (the environment variable; flags
/// override it under the same name), what was wrong and what is accepted. Never a secret.
/// Every configuration reader reports through this one type.
public struct SettingError: Error, Sendable, Hashable, CustomStringConvertible {
    public let setting: String
    public let message: String

    public init(setting: String, message: String) {
        self.setting = setting
        self.message = message
    }

    public var description: String { "\(setting): \(message)" }
}
