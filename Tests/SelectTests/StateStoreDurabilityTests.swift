import Foundation
import Platform
import Select
import Testing
import TestSupport

/// The state save's file calls in order, from the file layer's trace: the temporary file is
/// fsynced before the renames, and the directory is fsynced after both (the injected
/// `.failedDirectorySync` fault throws before that fsync, so only the trace sees the real call).
@Suite struct StateStoreDurabilityTests {
    @Test func stateSaveFsyncsItsDirectoryAfterBothRenames() throws {
        let count = 64
        let directory = NSTemporaryDirectory() + "leitner-state-dirsync-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        ScratchCleanup.removeAtExit()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = StateStore()
        try store.save(EpochStampPolicy(sampleCount: count, epoch: 1), sampleCount: count, epoch: 1, directory: directory)
        let current = StateStore.currentPath(directory: directory), temporary = StateStore.temporaryPath(directory: directory)
        FaultInjection.startTrace(path: directory)
        var failure: Error? = nil
        do { try store.save(EpochStampPolicy(sampleCount: count, epoch: 2), sampleCount: count, epoch: 2, directory: directory) }
        catch { failure = error }
        let calls = FaultInjection.stopTrace(path: directory).filter { !$0.hasPrefix("write ") }
        if let failure { throw failure }
        #expect(calls == ["open \(temporary)", "fsync \(temporary)", "rename \(current)", "rename \(temporary)", "fsync \(directory)"],
                "file calls of a state save (writes left out): \(calls)")
    }
}
