import Foundation
import Glibc
import Platform
import Select
import Testing
import TestSupport

/// A policy whose 32-byte records are a function of (epoch, sample index): after a load, every
/// record must be the stamp of the loaded epoch, so a mix of two epochs cannot go unnoticed.
struct EpochStampPolicy: SelectionPolicy {
    let sampleCount: Int
    /// The epoch the records encode (what `save` writes).
    var epoch: Int
    /// After a load: the epoch each record decoded to (-1 = not decoded, -2 = not a stamp).
    var decodedEpochs: [Int]

    init(sampleCount: Int, epoch: Int) {
        self.sampleCount = sampleCount
        self.epoch = epoch
        decodedEpochs = [Int](repeating: -1, count: sampleCount)
    }

    var id: PolicyID { .dihcl }
    var stateStride: Int { 32 }

    /// Word `word` of sample `index`'s record at `epoch` (word 0 is the epoch itself).
    static func stamp(epoch: Int, index: Int, word: Int) -> UInt32 {
        if word == 0 { return UInt32(epoch) }
        var mixed = UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(index) &* 0xBF58_476D_1CE4_E5B9 ^ UInt64(word) &* 0x94D0_49BB_1331_11EB
        mixed ^= mixed >> 31
        return UInt32(truncatingIfNeeded: mixed)
    }

    func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) { plan.setAll(.train) }
    func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
                        epoch: Int, learningRate: Double) {}

    func encodeState(index: Int, into record: UnsafeMutableRawPointer) {
        for word in 0..<8 {
            record.storeBytes(of: Self.stamp(epoch: epoch, index: index, word: word).littleEndian, toByteOffset: word * 4, as: UInt32.self)
        }
    }

    mutating func decodeState(index: Int, from record: UnsafeRawPointer) {
        let recordEpoch = Int(UInt32(littleEndian: record.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        var matches = true
        for word in 1..<8 where UInt32(littleEndian: record.loadUnaligned(fromByteOffset: word * 4, as: UInt32.self))
            != Self.stamp(epoch: recordEpoch, index: index, word: word) {
            matches = false
        }
        decodedEpochs[index] = matches ? recordEpoch : -2
    }
}

/// Crash safety tested on real interrupted writes: a child process saves epoch after epoch and
/// is killed with SIGKILL at a random moment; and injected failures at each step of a save.
@Suite(.serialized) struct StateStoreCrashTests {
    static let sampleCount = 4096  // 128 KiB of records: a save is several write calls' worth

    func makeDirectory(_ name: String) -> String {
        let path = NSTemporaryDirectory() + "leitner-\(name)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        ScratchCleanup.removeAtExit()
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Loads `epoch` with a fresh store; nil when no generation holds it intact. Records that
    /// decode to another epoch (or to no stamp) are reported through `mixed`.
    func load(_ directory: String, epoch: Int, mixed: inout Int) -> StateGeneration? {
        var lastLoadError = ""
        return load(directory, epoch: epoch, mixed: &mixed, error: &lastLoadError)
    }

    func load(_ directory: String, epoch: Int, mixed: inout Int, error lastLoadError: inout String) -> StateGeneration? {
        var policy = EpochStampPolicy(sampleCount: Self.sampleCount, epoch: -1)
        do {
            let generation = try StateStore().load(directory: directory, epoch: epoch, sampleCount: Self.sampleCount, into: &policy)
            mixed += policy.decodedEpochs.filter { $0 != epoch }.count
            return generation
        } catch {
            lastLoadError = error.description
            // A failed load must not have touched the policy.
            mixed += policy.decodedEpochs.filter { $0 != -1 }.count
            return nil
        }
    }

    /// 300 times: fork a child that saves epochs F+1, F+2, ... as fast as it can (publishing in
    /// shared memory the epoch it is saving and the last one whose save returned), SIGKILL it
    /// after a random delay of 0 to ~3 saves, then load. The epoch being saved (S) or the last
    /// completed one (F) must load, with every record stamped with that epoch; the next child
    /// continues from the newest epoch that loaded, as a resumed run would.
    @Test func killedWritersAlwaysLeaveTheNewOrThePreviousEpoch() throws {
        let directory = makeDirectory("state-kill")
        let store = StateStore()
        try store.save(EpochStampPolicy(sampleCount: Self.sampleCount, epoch: 1), sampleCount: Self.sampleCount, epoch: 1, directory: directory)
        // A save's duration sets the range of kill delays (not asserted).
        let timing = Date()
        for epoch in 2...6 {
            try store.save(EpochStampPolicy(sampleCount: Self.sampleCount, epoch: epoch), sampleCount: Self.sampleCount, epoch: epoch, directory: directory)
        }
        let saveMicroseconds = min(20_000, max(50, Int(Date().timeIntervalSince(timing) * 1e6 / 5)))
        var lastLoaded = 6

        let shared = mmap(nil, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)!
        defer { munmap(shared, 4096) }
        let progress = shared.bindMemory(to: Int64.self, capacity: 2)  // [0] saving, [1] completed
        var generator = SystemRandomNumberGenerator()
        var killedMidSave = 0, newEpochLoaded = 0, unloadable = 0, mixed = 0, childFailures = 0, resumedFromOlder = 0
        let iterations = 300
        for _ in 0..<iterations {
            let start = lastLoaded + 1
            progress[0] = Int64(lastLoaded)
            progress[1] = Int64(lastLoaded)
            let child = fork()
            #expect(child >= 0)
            if child == 0 {
                let childStore = StateStore()
                var epoch = start
                while epoch < start + 10_000 {
                    progress[0] = Int64(epoch)
                    do {
                        try childStore.save(EpochStampPolicy(sampleCount: Self.sampleCount, epoch: epoch), sampleCount: Self.sampleCount,
                                            epoch: epoch, directory: directory)
                    } catch {
                        _exit(3)
                    }
                    progress[1] = Int64(epoch)
                    epoch += 1
                }
                _exit(0)
            }
            usleep(UInt32(Int.random(in: 0...(3 * saveMicroseconds), using: &generator)))
            kill(child, SIGKILL)
            var status: Int32 = 0
            waitpid(child, &status, 0)
            // Killed, or exited; exit code 3 would be a failed save.
            if (status & 0x7f) == 0 && ((status >> 8) & 0xff) == 3 { childFailures += 1 }
            let saving = Int(progress[0]), completed = Int(progress[1])
            if saving != completed { killedMidSave += 1 }
            var newError = "", oldError = ""
            let newLoads = saving != completed && load(directory, epoch: saving, mixed: &mixed, error: &newError) != nil
            let oldLoads = load(directory, epoch: completed, mixed: &mixed, error: &oldError) != nil
            if newLoads { newEpochLoaded += 1 }
            if !newLoads && !oldLoads {
                unloadable += 1
                Issue.record("after a kill while saving epoch \(saving) (last completed \(completed)) neither epoch loads:\n\(newError)\n\(oldError)")
                return
            }
            // Half the time the run continues from the older epoch even when the new one is in
            // place, as after a crash between the state file and the checkpoint: the next save
            // then re-saves an epoch whose (stale) state exists already.
            if newLoads && (!oldLoads || Bool.random(using: &generator)) {
                lastLoaded = saving
            } else {
                if oldLoads { lastLoaded = completed } else { Issue.record("epoch \(completed) was completed but does not load"); return }
                if newLoads { resumedFromOlder += 1 }
            }
        }
        print("state store kill test: \(iterations) kills, \(killedMidSave) during a save, \(newEpochLoaded) of those already had the new epoch, \(resumedFromOlder) resumed from the older one, reached epoch \(lastLoaded), save ≈ \(saveMicroseconds) µs")
        #expect(unloadable == 0)
        #expect(mixed == 0, "records of another epoch were decoded")
        #expect(childFailures == 0, "a save failed in the child")
        // Not vacuous: many kills landed inside a save, and the writers made progress.
        #expect(killedMidSave >= iterations / 10, "only \(killedMidSave) kills landed inside a save")
        #expect(killedMidSave > newEpochLoaded, "some kills must have hit before the new epoch was in place")
        // Progress: alone this reaches about 270 of 300; a full parallel test run on 2 cores once
        // reached 71 (saves slow down, so more kills land before a save completes).
        #expect(lastLoaded > 6 + iterations / 8, "the writers reached only epoch \(lastLoaded)")
        #expect(resumedFromOlder > 0, "the older-epoch resume path was never taken")
    }

    /// The two ways a save used to destroy the generation a resumed run started from, each
    /// followed by a crash inside the next save (an injected failure stands for the crash).
    @Test func aSaveAfterAResumeKeepsTheGenerationItResumedFrom() throws {
        let count = Self.sampleCount
        func stamp(_ epoch: Int) -> EpochStampPolicy { EpochStampPolicy(sampleCount: count, epoch: epoch) }
        var mixed = 0

        // Resumed from .prev: state 4 was saved but the checkpoint stayed at 3. The re-save of
        // epoch 4 must not rotate the stale current file over .prev (epoch 3).
        let fromPrevious = makeDirectory("state-resume-prev")
        let store = StateStore()
        try store.save(stamp(3), sampleCount: count, epoch: 3, directory: fromPrevious)
        try store.save(stamp(4), sampleCount: count, epoch: 4, directory: fromPrevious)
        #expect(load(fromPrevious, epoch: 3, mixed: &mixed) == .previous)
        store.injectedFault = .failedRename  // crash after the rotation, before the rename
        #expect(throws: SelectError.self) { try store.save(stamp(4), sampleCount: count, epoch: 4, directory: fromPrevious) }
        #expect(load(fromPrevious, epoch: 3, mixed: &mixed) != nil, "the epoch the run resumed from was lost")

        // Resumed from .tmp: the save of 4 stopped between its renames. The save of epoch 5
        // must not overwrite that temporary file while .prev holds epoch 3.
        let fromTemporary = makeDirectory("state-resume-tmp")
        store.injectedFault = .none
        try store.save(stamp(3), sampleCount: count, epoch: 3, directory: fromTemporary)
        store.injectedFault = .failedRename
        #expect(throws: SelectError.self) { try store.save(stamp(4), sampleCount: count, epoch: 4, directory: fromTemporary) }
        #expect(load(fromTemporary, epoch: 4, mixed: &mixed) == .temporary)
        store.injectedFault = .shortWrite(bytes: 100)  // crash while writing epoch 5
        #expect(throws: SelectError.self) { try store.save(stamp(5), sampleCount: count, epoch: 5, directory: fromTemporary) }
        #expect(load(fromTemporary, epoch: 4, mixed: &mixed) == .current, "the epoch the run resumed from was lost")
        #expect(mixed == 0)
    }

    /// A failure at each step of a save (short write, failed fsync, failed rotation, failed
    /// rename, failed directory fsync): the save throws, the previous epoch still loads with its
    /// own records, a load never decodes a mix, and the next save without the fault recovers.
    @Test(arguments: [StateStore.InjectedFault.shortWrite(bytes: 0), .shortWrite(bytes: 63), .shortWrite(bytes: 64),
                      .shortWrite(bytes: 64 + 32 * 1000 + 5), .failedSync, .failedRotation, .failedRename, .failedDirectorySync])
    func injectedFailuresLeaveThePreviousEpoch(fault: StateStore.InjectedFault) throws {
        let directory = makeDirectory("state-fault")
        let store = StateStore()
        let count = Self.sampleCount
        for epoch in 3...4 {
            try store.save(EpochStampPolicy(sampleCount: count, epoch: epoch), sampleCount: count, epoch: epoch, directory: directory)
        }
        store.injectedFault = fault
        #expect(throws: SelectError.self) {
            try store.save(EpochStampPolicy(sampleCount: count, epoch: 5), sampleCount: count, epoch: 5, directory: directory)
        }
        var mixed = 0
        #expect(load(directory, epoch: 4, mixed: &mixed) != nil, "\(fault): the previous epoch no longer loads")
        // Epoch 5 loads only where its file was complete (a full temporary file, or renamed).
        let newest = load(directory, epoch: 5, mixed: &mixed)
        switch fault {
        case .shortWrite: #expect(newest == nil)
        case .failedSync, .failedRotation, .failedRename: #expect(newest == .temporary)
        case .failedDirectorySync: #expect(newest == .current)
        case .none: break
        }
        #expect(mixed == 0, "\(fault): records of another epoch were decoded")

        // The fault clears: the next saves work and rotate normally.
        store.injectedFault = .none
        for epoch in 5...6 {
            try store.save(EpochStampPolicy(sampleCount: count, epoch: epoch), sampleCount: count, epoch: epoch, directory: directory)
        }
        #expect(load(directory, epoch: 6, mixed: &mixed) == .current)
        #expect(load(directory, epoch: 5, mixed: &mixed) == .previous)
        #expect(mixed == 0)
        #expect(!FileManager.default.fileExists(atPath: StateStore.temporaryPath(directory: directory)))
    }
}
