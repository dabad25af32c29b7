import Foundation
import Testing
import WarehouseSyncCore
@testable import WarehouseSyncGateway
import WarehouseSyncOperations
import WarehouseSyncOps
import WarehouseSyncProcessKit
import WarehouseSyncPublisher
import WarehouseSyncSettings
import WarehouseSyncWorker

private let token = Array("s3cret-token".utf8)
private let secret = Array("0123456789abcdef0123456789abcdef-hmac".utf8)
private let body = Array(#"{"eventId":"e1"}"#.utf8)
private let now = Date(timeIntervalSince1970: 1_800_000_000)

private func signed(at seconds: Int, body: [UInt8] = body, with key: [UInt8] = secret) -> GatewayAuthentication.Credentials {
    let timestamp = String(seconds)
    return .init(timestamp: timestamp, signature: GatewayAuthentication.signature(secret: key, timestamp: timestamp, body: body))
}

@Suite("Gateway authentication")
struct GatewayAuthenticationTests {
    let both = GatewayAuthentication(bearerToken: token, hmacSecret: secret, hmacWindow: .seconds(300))

    @Test func theRightTokenOrAFreshSignatureIsAccepted() {
        #expect(both.check(.init(authorization: "Bearer s3cret-token"), body: body, now: now) == nil)
        #expect(both.check(.init(authorization: "bearer s3cret-token"), body: body, now: now) == nil)
        #expect(both.verdict(.init(authorization: "Bearer s3cret-token"), now: now) == .accepted)
        #expect(both.verdict(signed(at: 1_800_000_000), now: now) == .bodyNeeded)
        #expect(both.check(signed(at: 1_800_000_000), body: body, now: now) == nil)
        #expect(both.check(signed(at: 1_800_000_000 - 299), body: body, now: now) == nil)
    }

    static let refusals: [(GatewayAuthentication.Credentials, String)] = [
        (GatewayAuthentication.Credentials(), "missing"),
        (.init(authorization: "Bearer s3cret-tokeN"), "token"),
        (.init(authorization: "Bearer s3cret-token-and-more"), "token"),
        (.init(authorization: "Basic czNjcmV0"), "malformed"),
        (.init(authorization: "Bearer"), "malformed"),
        (signed(at: 1_800_000_000 - 301), "stale"),
        (signed(at: 1_800_000_000 + 301), "stale"),
        (signed(at: 1_800_000_000, body: Array(#"{"eventId":"e2"}"#.utf8)), "signature"),
        (signed(at: 1_800_000_000, with: Array("another-secret-of-at-least-32-bytes!".utf8)), "signature"),
        (.init(timestamp: "1800000000", signature: "sha256=zz"), "malformed"),
        (.init(timestamp: "1800000000", signature: "md5=" + String(repeating: "0", count: 64)), "malformed"),
        (.init(timestamp: "yesterday", signature: "sha256=" + String(repeating: "0", count: 64)), "malformed"),
        (.init(signature: "sha256=" + String(repeating: "0", count: 64)), "malformed"),
        // Bytes, not characters: "é" is two bytes and one character.
        (.init(timestamp: "1800000000", signature: "sha256=é"), "malformed"),
        (.init(timestamp: "1800000000", signature: "sha256=" + String(repeating: "é", count: 32)), "malformed"),
        (.init(timestamp: "-9223372036854775808", signature: "sha256=00"), "malformed"),
        (.init(timestamp: "9223372036854775807", signature: "sha256=00"), "malformed"),
        (.init(timestamp: "+1800000000", signature: "sha256=" + String(repeating: "0", count: 64)), "signature"),
    ]

    @Test("refused, with the reason counted", arguments: refusals)
    func refused(credentials: GatewayAuthentication.Credentials, reason: String) {
        let rejection = both.check(credentials, body: body, now: now)
        #expect(rejection?.reason == reason, "got \(String(describing: rejection))")
    }

    @Test func theSignedContentIsTheTimestampADotAndTheBody() {
        // Computed independently: printf '1800000000.{"eventId":"e1"}' | openssl dgst -sha256 -hmac '0123456789abcdef0123456789abcdef-hmac'
        #expect(
            GatewayAuthentication.signature(secret: secret, timestamp: "1800000000", body: body)
                == "sha256=f7bfea48bf0ed6e726878b6c7d00820e46e3e51852ebb4143f4bb5768b677644")
    }

    @Test func aSubSecondWindowIsKeptExactly() {
        let tight = GatewayAuthentication(bearerToken: nil, hmacSecret: secret, hmacWindow: .milliseconds(1500))
        let later = Date(timeIntervalSince1970: 1_800_000_001.4)
        #expect(tight.check(signed(at: 1_800_000_000), body: body, now: later) == nil)
        #expect(tight.check(signed(at: 1_800_000_000), body: body, now: later.addingTimeInterval(0.2))?.reason == "stale")
    }

    @Test func aMethodThatIsNotConfiguredIsRefusedAsSuch() {
        let tokenOnly = GatewayAuthentication(bearerToken: token, hmacSecret: nil)
        #expect(tokenOnly.check(signed(at: 1_800_000_000), body: body, now: now)?.reason == "method")
        let hmacOnly = GatewayAuthentication(bearerToken: nil, hmacSecret: secret)
        #expect(hmacOnly.check(.init(authorization: "Bearer s3cret-token"), body: body, now: now)?.reason == "method")
        #expect(hmacOnly.verdict(.init(authorization: "Bearer s3cret-token"), now: now) != .accepted)
    }

    @Test func aRightTokenIsEnoughWhateverElseComesAndAWrongOneLeavesItToTheSignature() {
        var tokenAndBadSignature = signed(at: 1_800_000_000 - 9999)
        tokenAndBadSignature.authorization = "Bearer s3cret-token"
        #expect(both.check(tokenAndBadSignature, body: body, now: now) == nil)
        let tokenOnly = GatewayAuthentication(bearerToken: token, hmacSecret: nil)
        #expect(tokenOnly.check(.init(authorization: "Bearer s3cret-token", timestamp: "1"), body: body, now: now) == nil)
        var wrongTokenGoodSignature = signed(at: 1_800_000_000)
        wrongTokenGoodSignature.authorization = "Bearer guess"
        #expect(both.check(wrongTokenGoodSignature, body: body, now: now) == nil)
        var wrongBoth = signed(at: 1_800_000_000, body: [])
        wrongBoth.authorization = "Bearer guess"
        #expect(both.check(wrongBoth, body: body, now: now)?.reason == "signature")
    }

    @Test func theChallengeNamesTheSchemesTaken() {
        #expect(both.challenge == "Bearer, WHSync-HMAC-SHA256")
        #expect(GatewayAuthentication(bearerToken: nil, hmacSecret: secret).challenge == "WHSync-HMAC-SHA256")
    }

    @Test func anonymousAcceptsEverythingAndSecretsNeverShow() {
        #expect(GatewayAuthentication.anonymous.check(.init(), body: body, now: now) == nil)
        #expect(GatewayAuthentication.anonymous.description == "anonymous")
        #expect(both.description == "bearer+hmac(window 5m)")
        let refusal = both.check(.init(authorization: "Bearer guess"), body: body, now: now)
        #expect(refusal.map { !$0.message.contains("guess") && !$0.message.contains("s3cret") } == true)
    }
}

@Suite("Gateway configuration")
struct GatewayConfigurationTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-config-\(UUID().uuidString.prefix(8))")

    func file(_ name: String, _ content: String) throws -> String {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent(name)
        try Data(content.utf8).write(to: url)
        return url.path
    }

    func problems(_ environment: [String: String]) -> [String] {
        do {
            _ = try GatewayConfiguration(environment: environment)
            return []
        } catch {
            return error.problems.map(\.description)
        }
    }

    @Test func defaultsWithATokenFile() throws {
        let configuration = try GatewayConfiguration(environment: [
            "AMQP_URL": "amqp://u:p@broker:5672/", "GATEWAY_TOKEN_FILE": try file("token", "abc\n"),
        ])
        #expect(configuration.port == 8080)
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.maxBodyBytes == 4 << 20)
        #expect(configuration.maxBatchEvents == 1000)
        #expect(configuration.confirmTimeout == .seconds(10))
        #expect("\(configuration)".contains("auth=bearer"))
        #expect(!"\(configuration)".contains("abc"))
        #expect(!"\(configuration)".contains(":p@"))
    }

    @Test func everyBadSettingIsReportedAtOnceByName() throws {
        let lines = problems([
            "GATEWAY_PORT": "http", "GATEWAY_MAX_BODY": "4GiB", "GATEWAY_MAX_BATCH": "0", "GATEWAY_HMAC_WINDOW": "soon",
            "GATEWAY_HMAC_SECRET_FILE": try file("short", "too-short"), "GATEWAY_CONFIRM_TIMEOUT": "1ms",
        ])
        #expect(lines.count == 7, "\(lines)")
        for name in ["AMQP_URL", "GATEWAY_PORT", "GATEWAY_MAX_BODY", "GATEWAY_MAX_BATCH", "GATEWAY_HMAC_WINDOW", "GATEWAY_HMAC_SECRET_FILE", "GATEWAY_CONFIRM_TIMEOUT"] {
            #expect(lines.contains { $0.hasPrefix(name) }, "\(name) in \(lines)")
        }
        #expect(!lines.joined().contains("too-short"), "a secret's content is never echoed")
    }

    @Test func withoutCredentialsTheGatewayRefusesToStartUnlessAnonymousIsAskedFor() throws {
        let amqp = ["AMQP_URL": "amqp://broker/"]
        #expect(problems(amqp).contains { $0.contains("neither is set") })
        #expect(try GatewayConfiguration(environment: amqp.merging(["GATEWAY_ALLOW_ANONYMOUS": "true"]) { $1 }).authentication.isAnonymous)
        let both = amqp.merging(["GATEWAY_ALLOW_ANONYMOUS": "true", "GATEWAY_TOKEN_FILE": try file("t", "x")]) { $1 }
        #expect(problems(both).contains { $0.hasPrefix("GATEWAY_ALLOW_ANONYMOUS") })
    }

    @Test func aSecretIsUsedAsItsBytesWithOnlySurroundingWhiteSpaceTrimmed() throws {
        let binary: [UInt8] = [0x0A] + (0..<40).map { UInt8(0x80 + $0) } + [0x20, 0x0A]
        let path = directory.appendingPathComponent("binary-secret")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(binary).write(to: path)
        let configuration = try GatewayConfiguration(environment: ["AMQP_URL": "amqp://broker/", "GATEWAY_HMAC_SECRET_FILE": path.path])
        let key = Array(binary.dropFirst().dropLast(2))
        let signature = GatewayAuthentication.signature(secret: key, timestamp: "1800000000", body: body)
        #expect(configuration.authentication.check(.init(timestamp: "1800000000", signature: signature), body: body, now: now) == nil)
    }

    @Test func aSizeThatOverflowsIsRefusedNotACrash() {
        #expect(problems(["AMQP_URL": "amqp://broker/", "GATEWAY_ALLOW_ANONYMOUS": "true", "GATEWAY_MAX_BODY": "9000000000000MiB"])
            .contains { $0.hasPrefix("GATEWAY_MAX_BODY") })
    }

    @Test("sizes", arguments: [("262144", 262_144), ("256KiB", 262_144), ("4MiB", 4 << 20), ("2048B", 2048)])
    func sizes(text: String, bytes: Int) throws {
        let configuration = try GatewayConfiguration(environment: [
            "AMQP_URL": "amqp://broker/", "GATEWAY_ALLOW_ANONYMOUS": "yes", "GATEWAY_MAX_BODY": text,
        ])
        #expect(configuration.maxBodyBytes == bytes)
    }
}

@Suite("Gateway batches and answers")
struct GatewayBatchTests {
    @Test func jsonLinesSkipBlankLinesAndKeepLineNumbers() throws {
        let batch = try GatewayBatch(parsing: Array("{\"a\":1}\r\n\n  \n{\"b\":2}\nnot json\n".utf8), maxEvents: 3)
        #expect(batch.items.map(\.line) == [1, 4, 5])
        #expect(batch.items.map { String(decoding: $0.body, as: UTF8.self) } == [#"{"a":1}"#, #"{"b":2}"#, "not json"])
    }

    @Test func anArrayKeepsNumbersAndMemberOrderExactly() throws {
        let batch = try GatewayBatch(parsing: Array(#" [ {"q": 1.50, "a": "x"}, 7 ] "#.utf8), maxEvents: 2)
        #expect(batch.items.map { String(decoding: $0.body, as: UTF8.self) } == [#"{"q":1.50,"a":"x"}"#, "7"])
        #expect(batch.items.allSatisfy { $0.line == nil })
    }

    @Test func aBrokenArrayRefusesTheWholeBatch() {
        #expect(throws: GatewayBatch.Problem.self) { try GatewayBatch(parsing: Array(#"[{"a":1},"#.utf8), maxEvents: 10) }
    }

    @Test("too many events are counted before anything is built", arguments: [
        (#"[{"a":"x,y"}, [1,2,3], {"b":{"c":[4,5]}}, 0]"#, 4),
        (#"[0,0,0,0,0,0]"#, 6),
        ("{}\n{}\n\n{}\n{}\n", 4),
    ])
    func tooMany(body: String, count: Int) throws {
        _ = try GatewayBatch(parsing: Array(body.utf8), maxEvents: count)
        do {
            _ = try GatewayBatch(parsing: Array(body.utf8), maxEvents: count - 1)
            Issue.record("\(count) events passed a limit of \(count - 1)")
        } catch .tooMany(let atLeast) {
            #expect(atLeast == count)
        } catch {
            Issue.record("expected tooMany, got \(error)")
        }
    }

    @Test func anEmptyArrayHoldsNoEvents() throws {
        #expect(try GatewayBatch(parsing: Array(" [ ] ".utf8), maxEvents: 1).items.isEmpty)
    }

    @Test("the batch status", arguments: [
        (["accepted", "accepted"], 202), (["invalid", "invalid"], 400), (["unavailable", "timeout"], 503),
        (["accepted", "invalid"], 207), (["accepted", "unavailable"], 207), (["invalid", "unavailable"], 207),
    ])
    func batchStatus(statuses: [String], code: Int) {
        let results = statuses.map { status in
            var result = EventResult(index: 0, line: nil, invalidBody: [], error: .init(.invalid, "x"))
            result.status = status
            return result
        }
        let summary = BatchResult(results: results)
        #expect(summary.httpStatus.code == code)
        #expect(summary.accepted + summary.invalid + summary.failed == statuses.count)
    }
}
