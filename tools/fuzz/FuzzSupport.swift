// Shared by every libFuzzer target (tools/fuzz-all compiles it into each): the input as a
// file, and the check that an error names what it is about.
import CSystem
import Platform

/// A per-process scratch path for inputs that parsers read from files.
func fuzzPath(_ suffix: String) -> String { "/tmp/leitner-fuzz-\(getpid())-\(suffix)" }

/// Writes the input to `path` (created or truncated).
func writeInput(_ data: UnsafePointer<UInt8>, _ size: Int, to path: String) {
    guard let file = try? FileHandle.create(path) else { return }
    if size > 0 { try? file.writeAll(data, count: size) }
    try? file.close()
}

/// The input as text (invalid UTF-8 repaired, as the CLI and text parsers see files).
func inputText(_ data: UnsafePointer<UInt8>, _ size: Int) -> String {
    String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
}

/// A rejected input must say what it is about; an empty message is a defect too.
func expectMessage(_ message: String, naming subject: String) {
    precondition(!message.isEmpty, "an error without a message")
    precondition(subject.isEmpty || message.contains(subject), "an error that does not name \(subject): \(message)")
}
