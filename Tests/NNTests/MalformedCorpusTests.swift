import Foundation
import Kernels
import NN
import Platform
import Testing

/// The checked-in malformed inputs (Tests/Fixtures/malformed, written by
/// tools/make-malformed-corpus): every safetensors file and model description is rejected
/// with an error that says what is wrong (and where), never accepted, never a crash.
func malformedCorpus(_ parser: String, file: String = #filePath) -> [String] {
    let directory = URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/malformed/\(parser)").path
    let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    return names.sorted().map { directory + "/" + $0 }
}

@Suite struct MalformedCorpusNNTests {
    @Test func everyMalformedSafeTensorsFileIsRejectedWithItsPath() {
        let files = malformedCorpus("safetensors")
        #expect(files.count >= 20)
        for path in files {
            do throws(SafeTensorsError) {
                let reader = try SafeTensorsReader(path: path)
                for entry in reader.entries where entry.dtype == .f32 {
                    let buffer = UnsafeMutablePointer<Float>.allocate(capacity: max(entry.elementCount, 1))
                    defer { buffer.deallocate() }
                    try reader.read(entry.name, into: buffer, count: entry.elementCount)
                }
                Issue.record("\(path): accepted")
            } catch {
                #expect(error.description.contains(path), "\(path): the message does not name the file: \(error.description)")
            }
        }
    }

    @Test func everyMalformedModelDescriptionIsRejectedWithALine() {
        let files = malformedCorpus("model")
        #expect(files.count >= 10)
        for path in files {
            let text = String(decoding: fileBytes(path), as: UTF8.self)
            do throws(ModelError) {
                let description = try ModelDescription.parse(text, name: path)
                _ = try Model.plan(description, batch: 8, threads: 1, optimizerStatePerParameter: 2)
                Issue.record("\(path): accepted")
            } catch {
                #expect(!error.message.isEmpty, "\(path): empty message")
            }
        }
    }
}

/// A checkpoint write that fails in the system layer (LEITNER_FAULT: a full disk at the first
/// tensor write, a failing fsync, a refused rename) leaves the previous checkpoint
/// byte-identical, no temporary file, and an error naming the call, errno text and path.
@Suite(.serialized) struct CheckpointFaultTests {
    @Test(arguments: [("write:ENOSPC:after=1", "write", "No space left on device"),
                      ("fsync:EIO", "fsync", "Input/output error"),
                      ("rename:EIO", "rename", "Input/output error"),
                      ("open:EDQUOT", "open", "quota exceeded")])
    func failedWriteKeepsThePreviousCheckpoint(fault: String, call: String, text: String) throws {
        let directory = checkpointTestDirectory("ckpt-fault")
        defer { removeTestDirectory(directory) }
        let path = directory + "/checkpoint.safetensors"
        let context = try KernelContext(threads: 1)
        let model = try Model(smallModel(), batch: 2, context: context)
        model.initialize(seed: 1)
        try Checkpoint.save(model: model, metadata: [("epoch", "1")], path: path)
        let before = fileBytes(path)
        model.initialize(seed: 2)
        FaultInjection.environmentLock.lock()
        defer { FaultInjection.environmentLock.unlock() }
        setenv("LEITNER_FAULT", fault + ":path=" + directory, 1)
        FaultInjection.reload()
        defer {
            unsetenv("LEITNER_FAULT")
            FaultInjection.reload()
        }
        do throws(SafeTensorsError) {
            try Checkpoint.save(model: model, metadata: [("epoch", "2")], path: path)
            Issue.record("\(fault): the save succeeded")
        } catch {
            let message = error.description
            #expect(message.contains(call) && message.contains(text) && message.contains(directory + "/checkpoint.safetensors"),
                    "\(fault): \(message)")
        }
        #expect(fileBytes(path) == before, "\(fault): the previous checkpoint changed")
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"), "\(fault): a temporary file was left")
    }
}
