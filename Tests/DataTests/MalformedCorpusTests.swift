import Foundation
import Data
import Testing

/// The checked-in malformed IDX files and packs (Tests/Fixtures/malformed, written by
/// tools/make-malformed-corpus) are rejected with an error naming the file, never a crash.
@Suite struct MalformedCorpusDataTests {
    func corpus(_ parser: String) -> [String] {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/malformed/\(parser)").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted().map { directory + "/" + $0 }
    }

    @Test func everyMalformedIDXFileIsRejected() {
        let files = corpus("idx")
        #expect(files.count >= 10)
        for path in files {
            for reader in ["images", "labels"] {
                do throws(DataError) {
                    if reader == "images" { _ = try IDX.readImages(path) } else { _ = try IDX.readLabels(path) }
                    Issue.record("\(path): accepted as \(reader)")
                } catch {
                    #expect(error.description.contains(path), "\(path): \(error.description)")
                }
            }
        }
    }

    @Test func everyMalformedPackIsRejected() {
        let files = corpus("pack")
        #expect(files.count >= 6)
        for path in files {
            do throws(DataError) {
                let pack = try PackFile.open(path)
                try pack.verify()
                Issue.record("\(path): accepted")
            } catch {
                #expect(error.description.contains(path), "\(path): \(error.description)")
            }
        }
    }
}
