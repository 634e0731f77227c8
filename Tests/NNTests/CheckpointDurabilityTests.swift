import CSystem
import Testing
import Kernels
import NN
import Platform

/// A checkpoint replaces the previous one by rename, and the rename is durable only once the
/// directory entry is on the device: the save must fsync the directory, after the rename.
/// Observed through the file layer's call trace (`FaultInjection.startTrace`) and through an
/// injected failure of that fsync. In `CheckpointFaultTests` (serialized) because the fault is
/// set through the process environment.
extension CheckpointFaultTests {
    @Test func checkpointSaveFsyncsItsDirectoryAfterTheRename() throws {
        let directory = checkpointTestDirectory("ckpt-dirsync")
        defer { removeTestDirectory(directory) }
        let path = directory + "/checkpoint.safetensors", temporary = path + ".tmp"
        let model = try Model(smallModel(), batch: 2, context: try KernelContext(threads: 1))
        model.initialize(seed: 1)
        try Checkpoint.save(model: model, metadata: [("epoch", "1")], path: path)
        // The second save replaces a checkpoint, as every epoch after the first does.
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
        let directory = checkpointTestDirectory("ckpt-dirsync-fault")
        defer { removeTestDirectory(directory) }
        let path = directory + "/checkpoint.safetensors"
        let model = try Model(smallModel(), batch: 2, context: try KernelContext(threads: 1))
        model.initialize(seed: 1)
        try Checkpoint.save(model: model, metadata: [("epoch", "1")], path: path)
        setenv("LEITNER_FAULT", "fsync:EIO:after=1:path=" + directory, 1)
        FaultInjection.reload()
        defer {
            unsetenv("LEITNER_FAULT")
            FaultInjection.reload()
        }
        do throws(SafeTensorsError) {
            try Checkpoint.save(model: model, metadata: [("epoch", "2")], path: path)
            Issue.record("the save succeeded although the directory fsync failed")
        } catch {
            #expect(error.kind == .io)
            #expect(error.system.map { "\($0.call)" } == "fsync" && error.system?.subject == directory, "\(error)")
            #expect(error.description.contains("Input/output error"), "\(error)")
        }
        unsetenv("LEITNER_FAULT")
        FaultInjection.reload()
        #expect(Checkpoint.value("epoch", in: try Checkpoint.readMetadata(path: path)) == "2")
        #expect(!FileSystem.exists(path + ".tmp"))
    }
}
