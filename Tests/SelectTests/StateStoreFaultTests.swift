import Foundation
import Glibc
import Platform
import Select
import Testing
import TestSupport

/// A state save that fails in the system layer (LEITNER_FAULT, as a full disk or a failing
/// device would make it fail) leaves the previous generations byte-identical and loadable,
/// and the error names the call, the errno text and the path.
@Suite(.serialized) struct StateStoreSystemFaultTests {
    @Test(arguments: [("write:ENOSPC", "write", "No space left on device"),
                      ("fsync:EIO", "fsync", "Input/output error"),
                      ("rename:EIO", "rename", "Input/output error")])
    func failedSaveKeepsThePreviousGenerations(fault: String, call: String, text: String) throws {
        let count = 512
        let directory = NSTemporaryDirectory() + "leitner-state-fault-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        ScratchCleanup.removeAtExit()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = StateStore()
        for epoch in 1...2 {
            try store.save(EpochStampPolicy(sampleCount: count, epoch: epoch), sampleCount: count, epoch: epoch, directory: directory)
        }
        let current = StateStore.currentPath(directory: directory), previous = StateStore.previousPath(directory: directory)
        let before = (try Data(contentsOf: URL(fileURLWithPath: current)), try Data(contentsOf: URL(fileURLWithPath: previous)))
        FaultInjection.environmentLock.lock()
        defer { FaultInjection.environmentLock.unlock() }
        setenv("LEITNER_FAULT", fault + ":path=" + directory, 1)
        FaultInjection.reload()
        do {
            defer {
                unsetenv("LEITNER_FAULT")
                FaultInjection.reload()
            }
            try store.save(EpochStampPolicy(sampleCount: count, epoch: 3), sampleCount: count, epoch: 3, directory: directory)
            Issue.record("\(fault): the save succeeded")
        } catch {
            let message = error.description
            #expect(message.hasPrefix(call) && message.contains(text) && message.contains(directory + "/selection.state"), "\(fault): \(message)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: current)) == before.0, "\(fault): selection.state changed")
        #expect(try Data(contentsOf: URL(fileURLWithPath: previous)) == before.1, "\(fault): selection.state.prev changed")
        var policy = EpochStampPolicy(sampleCount: count, epoch: -1)
        #expect(try StateStore().load(directory: directory, epoch: 2, sampleCount: count, into: &policy) == .current)
        #expect(policy.decodedEpochs.allSatisfy { $0 == 2 })
    }
}
