import AMQPClient
import Foundation
import Logging
import Testing
import WarehouseSyncTesting

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// The throwaway brokers `./scripts/test` starts. Integration tests fail, loudly, when they are
/// missing: they never skip.
enum TestBroker {
    static func env(_ name: String) throws -> String {
        try TestEnvironment.require(name)
    }

    static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    static func mainConfiguration() throws -> AMQPConfiguration {
        try AMQPConfiguration(url: env("WHSYNC_TEST_AMQP_URL"), connectionName: "integration-tests")
    }

    /// The TLS listener, reached as `localhost`: the name on the test CA's server certificate.
    static func tlsConfiguration() throws -> AMQPConfiguration {
        var configuration = try AMQPConfiguration(url: env("WHSYNC_TEST_AMQPS_URL"), connectionName: "tls-test")
        configuration.host = "localhost"
        return configuration
    }

    static func connect(
        _ configuration: AMQPConfiguration? = nil, confirms: Bool = false, reconnect: ReconnectPolicy? = nil
    ) async throws -> AMQPConnection {
        try await AMQPConnection.connect(
            configuration ?? mainConfiguration(), options: .init(publisherConfirms: confirms, reconnect: reconnect),
            logger: logger)
    }

    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// A fresh virtual host on the main broker (or the scratch one), so a test can apply the
    /// whole topology without meeting another test's queues. Returns its AMQP configuration.
    static func makeVirtualHost(onScratch: Bool = false) async throws -> (configuration: AMQPConfiguration, url: String, name: String) {
        let name = uniqueName("test")
        let base = try managementURL(onScratch: onScratch)
        try await management("PUT", "/api/vhosts/\(name)", base: base)
        try await management("PUT", "/api/permissions/\(name)/guest", body: #"{"configure":".*","write":".*","read":".*"}"#, base: base)
        var url = try env(onScratch ? "WHSYNC_TEST_SCRATCH_AMQP_URL" : "WHSYNC_TEST_AMQP_URL")
        if url.hasSuffix("/") { url.removeLast() }
        url += "/\(name)"
        return (try AMQPConfiguration(url: url, connectionName: "integration-tests"), url, name)
    }

    static func deleteVirtualHost(_ name: String, onScratch: Bool = false) async {
        _ = try? await management("DELETE", "/api/vhosts/\(name)", base: managementURL(onScratch: onScratch))
    }

    static func managementURL(onScratch: Bool) throws -> String {
        try env(onScratch ? "WHSYNC_TEST_SCRATCH_MANAGEMENT_URL" : "WHSYNC_TEST_MANAGEMENT_URL")
    }

    @discardableResult
    static func management(_ method: String, _ path: String, body: String? = nil, base: String? = nil) async throws -> Data {
        let baseURL = try base ?? env("WHSYNC_TEST_MANAGEMENT_URL")
        var request = URLRequest(url: URL(string: baseURL + path)!)
        request.httpMethod = method
        request.setValue("Basic " + Data("guest:guest".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as! HTTPURLResponse).statusCode
        guard (200..<300).contains(status) else {
            throw ProcessFailure(description: "\(method) \(path) answered HTTP \(status): \(String(decoding: data, as: UTF8.self))")
        }
        return data
    }

    struct ProcessFailure: Error, CustomStringConvertible {
        let description: String
    }

    struct ProcessResult {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    /// A new directory under the temp dir, named `prefix-…`; the caller removes it.
    static func temporaryDirectory(_ prefix: String) throws -> URL {
        try TestDirectory.make(prefix)
    }

    /// Runs a program to completion. Output goes to temp files, not pipes: a daemon the program
    /// starts (a broker) could inherit a pipe and keep it open, and a read to EOF would never end.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil) async throws -> ProcessResult {
        let directory = try temporaryDirectory("run")
        defer { try? FileManager.default.removeItem(at: directory) }
        let paths = ["in", "out", "err"].map { directory.appendingPathComponent($0) }
        try (stdin ?? Data()).write(to: paths[0])
        _ = FileManager.default.createFile(atPath: paths[1].path, contents: nil)
        _ = FileManager.default.createFile(atPath: paths[2].path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardInput = try FileHandle(forReadingFrom: paths[0])
        process.standardOutput = try FileHandle(forWritingTo: paths[1])
        process.standardError = try FileHandle(forWritingTo: paths[2])
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                continuation.resume(throwing: error)
            }
        }
        return ProcessResult(
            status: status,
            stdout: String(decoding: try Data(contentsOf: paths[1]), as: UTF8.self),
            stderr: String(decoding: try Data(contentsOf: paths[2]), as: UTF8.self))
    }

    /// `scripts/broker COMMAND DIR ARGS...` against the scratch broker.
    static func scratchBroker(_ command: String, _ arguments: String...) async throws {
        _ = try await scratchBrokerOutput(command, arguments)
    }

    /// `scratchBroker`, returning what the command printed.
    static func scratchBrokerOutput(_ command: String, _ arguments: [String]) async throws -> String {
        let script = try env("WHSYNC_TEST_BROKER_SCRIPT")
        let directory = try env("WHSYNC_TEST_SCRATCH_DIR")
        let result = try await run(script, [command, directory] + arguments)
        guard result.status == 0 else {
            throw ProcessFailure(description: "scripts/broker \(command) failed (\(result.status)): \(result.stderr)")
        }
        return result.stdout
    }

    /// An executable of the package built beside the test bundle (`swift build --build-tests`
    /// builds them all).
    static func executablePath(_ name: String) throws -> String {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for directory in [products, products.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw ProcessFailure(description: "no \(name) executable next to \(products.path): build it with `swift build` first")
    }

    /// `whsync topology apply --file FILE` against `amqpURL`; `file` defaults to the repository's.
    static func applyTopology(amqpURL: String, file: String? = nil) async throws {
        let file = file ?? repoRoot().appendingPathComponent("topology/topology.json").path
        let applied = try await run(try executablePath("whsync"), ["topology", "apply", "--file", file], environment: ["AMQP_URL": amqpURL])
        guard applied.status == 0 else {
            throw ProcessFailure(description: "whsync topology apply failed: \(applied.stderr)")
        }
    }

    /// Messages ready in `queue` (AMQP passive declare).
    /// Polls `condition` every 200 ms until it holds; after `timeout` throws with `explanation`
    /// and what `context` adds (process logs).
    static func waitUntil(
        _ explanation: @autoclosure () -> String, timeout: Duration, context: () -> String = { "" },
        _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while try await !condition() {
            guard ContinuousClock.now < deadline else {
                throw ProcessFailure(description: "timed out after \(timeout): \(explanation())\n\(context())")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    static func queueDepth(_ configuration: AMQPConfiguration, _ queue: String) async throws -> UInt32 {
        let connection = try await connect(configuration)
        let depth = try await connection.withChannel { try $0.checkQueue(queue).messageCount }
        await connection.close()
        return depth
    }

    static func repoRoot() -> URL {
        TestRepository.root
    }
}

/// Collects deliveries until `count` arrive or `timeout` passes, acking each.
func receive(_ consumer: AMQPConsumer, count: Int, timeout: Duration = .seconds(60), ack: Bool = true) async -> [AMQPDelivery] {
    await withTaskGroup(of: [AMQPDelivery]?.self) { group in
        group.addTask {
            var received: [AMQPDelivery] = []
            for await delivery in consumer.deliveries {
                if ack { delivery.ack() }
                received.append(delivery)
                if received.count == count { break }
            }
            return received
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        var result: [AMQPDelivery] = []
        for await value in group {
            if let value {
                result = value
                group.cancelAll()
                break
            }
            // Timed out: the stream task is still waiting; cancel the consumer so it ends.
            await consumer.cancel()
        }
        return result
    }
}
