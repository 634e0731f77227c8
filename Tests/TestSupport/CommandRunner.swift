import Foundation
import Testing

/// The outcome of one command run by `CommandRunner`.
public struct CommandResult {
    public var status: Int32
    /// Ended by a signal (a trap or a kill) rather than an exit.
    public var signalled: Bool
    public var output: String
    public var error: String

    public init(status: Int32, signalled: Bool, output: String, error: String) {
        self.status = status
        self.signalled = signalled
        self.output = output
        self.error = error
    }
}

/// Runs a program the way the CLI tests need: standard output and error into files (a pipe
/// the test does not drain could block a chatty child), a deadline after which the child is
/// terminated and an issue recorded, the working directory given or fresh.
public enum CommandRunner {
    public static func run(_ executable: String, _ arguments: [String], in directory: String? = nil,
                           timeout: Double = 300) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let scratch = NSTemporaryDirectory() + "leitner-cmd-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        ScratchCleanup.removeAtExit()
        try FileManager.default.createDirectory(atPath: scratch + "/cwd", withIntermediateDirectories: true)
        process.currentDirectoryURL = URL(fileURLWithPath: directory ?? scratch + "/cwd")
        let outputFile = scratch + "/out.txt", errorFile = scratch + "/err.txt"
        FileManager.default.createFile(atPath: outputFile, contents: nil)
        FileManager.default.createFile(atPath: errorFile, contents: nil)
        process.standardOutput = FileHandle(forWritingAtPath: outputFile)
        process.standardError = FileHandle(forWritingAtPath: errorFile)
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            Issue.record("\(executable) \(arguments.joined(separator: " ")) still running after \(timeout) s")
        }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                             output: (try? String(contentsOfFile: outputFile, encoding: .utf8)) ?? "",
                             error: (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? "")
    }
}
