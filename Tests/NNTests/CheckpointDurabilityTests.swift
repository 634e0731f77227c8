import Testing
import Kernels
import NN
import Platform

/// A checkpoint replaces the previous one by rename, and the rename is durable only once the
/// directory entry is on the device: the save must fsync the directory, after the rename.
/// Observed through the file layer's call trace of the run directory
/// (`FaultInjection.startTrace`), and through a failure of that fsync injected there.
@Suite struct CheckpointDurabilityTests {
    /// A model with a saved checkpoint in a new directory, as every epoch after the first finds it.
    static func saved(_ label: String) throws -> (directory: String, path: String, model: Model) {
        let directory = checkpointTestDirectory(label)
        let path = directory + "/checkpoint.safetensors"
        let model = try Model(smallModel(), batch: 2, context: try KernelContext(threads: 1))
        model.initialize(seed: 1)
        try Checkpoint.save(model: model, metadata: [("epoch", "1")], path: path)
        return (directory, path, model)
    }

    @Test func checkpointSaveFsyncsItsDirectoryAfterTheRename() throws {
        let (directory, path, model) = try Self.saved("ckpt-dirsync")
        defer { removeTestDirectory(directory) }
        let temporary = path + ".tmp"
        FaultInjection.startTrace(path: directory)
        var failure: Error? = nil
        do { try Checkpoint.save(model: model, metadata: [("epoch", "2")], path: path) } catch { failure = error }
        let calls = FaultInjection.stopTrace(path: directory).filter { !$0.hasPrefix("write ") }
        if let failure { throw failure }
        #expect(calls == ["open \(temporary)", "fsync \(temporary)", "rename \(temporary)", "fsync \(directory)"],
                "file calls of a checkpoint save (writes left out): \(calls)")
    }

    /// The directory fsync is the second fsync under the directory (after the temporary
    /// file's): failing it fails the save with an error naming fsync and the directory. The
    /// rename has happened by then, so the new checkpoint is in place and no temporary is left.
    @Test func aFailingDirectoryFsyncFailsTheSave() throws {
        let (directory, path, model) = try Self.saved("ckpt-dirsync-fault")
        defer { removeTestDirectory(directory) }
        FaultInjection.startTrace(path: directory, failing: .fsync, errno: Errno.ioError, after: 1)
        var failure: SafeTensorsError? = nil
        do throws(SafeTensorsError) { try Checkpoint.save(model: model, metadata: [("epoch", "2")], path: path) } catch { failure = error }
        let calls = FaultInjection.stopTrace(path: directory).filter { !$0.hasPrefix("write ") }
        #expect(calls.last == "fsync \(directory)" && calls.dropLast().last == "rename \(path).tmp", "\(calls)")
        guard let failure else {
            Issue.record("the save succeeded although the directory fsync failed")
            return
        }
        #expect(failure.kind == .io)
        #expect(failure.system.map { "\($0.call)" } == "fsync" && failure.system?.subject == directory, "\(failure)")
        #expect(failure.description.contains("Input/output error"), "\(failure)")
        #expect(Checkpoint.value("epoch", in: try Checkpoint.readMetadata(path: path)) == "2")
        #expect(!FileSystem.exists(path + ".tmp"))
    }
}
