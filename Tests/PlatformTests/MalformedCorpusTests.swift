import Foundation
import Platform
import Testing

/// The checked-in malformed board profiles (Tests/Fixtures/malformed/board) are rejected with
/// the file and line, never accepted.
@Suite struct MalformedCorpusPlatformTests {
    @Test func everyMalformedBoardProfileIsRejected() {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/malformed/board").path
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
        #expect(files.count >= 8)
        for name in files {
            let bytes = (try? FileSystem.readAll(directory + "/" + name, limit: 1 << 30)) ?? []
            do throws(BoardError) {
                _ = try BoardProfile.parse(String(decoding: bytes, as: UTF8.self), source: name)
                Issue.record("\(name): accepted")
            } catch {
                #expect(error.description.contains(name), "\(name): \(error.description)")
            }
        }
    }
}
