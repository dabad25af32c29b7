import Foundation

/// Reads a file or stdin line by line without loading it whole (a day of events can be GBs).
public struct LineReader: AsyncSequence {
    public typealias Element = (number: Int, bytes: [UInt8])
    let handle: FileHandle
    static let queue = DispatchQueue(label: "whsync.line-reader")

    public init(handle: FileHandle) {
        self.handle = handle
    }

    /// Whether `line` holds nothing but spaces and tabs: the line-oriented inputs skip those.
    public static func isBlank(_ line: [UInt8]) -> Bool {
        line.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let handle: FileHandle
        var buffer: [UInt8] = []
        var start = 0
        var lineNumber = 0
        var atEnd = false

        /// Reading a pipe or file blocks, so it happens on a Dispatch queue, never on the
        /// cooperative pool that the async code runs on.
        private func readChunk() async throws -> Data? {
            let handle = handle
            return try await withCheckedThrowingContinuation { continuation in
                LineReader.queue.async {
                    continuation.resume(with: Result { try handle.read(upToCount: 1 << 20) })
                }
            }
        }

        public mutating func next() async throws -> Element? {
            while true {
                if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                    var line = Array(buffer[start..<newline])
                    start = newline + 1
                    lineNumber += 1
                    if line.last == UInt8(ascii: "\r") { line.removeLast() }
                    return (lineNumber, line)
                }
                if atEnd {
                    guard start < buffer.count else { return nil }
                    let line = Array(buffer[start...])
                    start = buffer.count
                    lineNumber += 1
                    return (lineNumber, line)
                }
                buffer.removeFirst(start)
                start = 0
                let chunk = try await readChunk()
                if let chunk, !chunk.isEmpty {
                    buffer.append(contentsOf: chunk)
                } else {
                    atEnd = true
                }
            }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(handle: handle)
    }
}
