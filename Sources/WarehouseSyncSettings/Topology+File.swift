import Foundation
import WarehouseSyncCore

/// Reading the topology from a file: the core parses bytes, this reads them.
extension Topology {
    /// Reads and validates the topology file at `url`; errors name the file and the key path.
    public static func load(contentsOf url: URL) throws(TopologyError) -> Topology {
        let file = url.isFileURL ? url.relativePath : url.absoluteString
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TopologyError(
                code: .unreadableFile,
                keyPath: "",
                message: "cannot read the file (\(error.localizedDescription))",
                file: file
            )
        }
        do {
            return try Topology(jsonData: data)
        } catch {
            var located = error
            located.file = file
            throw located
        }
    }

    /// The nearest ``defaultRelativePath`` in `directory` or one of its parents: how the CLI
    /// and the workers find the topology when run from a checkout.
    public static func findDefaultFile(from directory: String) -> URL? {
        var directory = URL(fileURLWithPath: directory)
        while true {
            let candidate = directory.appendingPathComponent(defaultRelativePath)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
            let parent = directory.deletingLastPathComponent()
            if parent.path == directory.path { return nil }
            directory = parent
        }
    }
}
