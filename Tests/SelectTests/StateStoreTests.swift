import Foundation
import Platform
import Select
import Testing

@Suite struct StateStoreTests {
    static let sampleCount = 257

    /// An IES policy after `epochs` epochs of seeded noisy, flat and decaying losses.
    static func trainedIES(epochs: Int, seed: UInt64 = 9) -> IESPolicy {
        var policy = IESPolicy(sampleCount: sampleCount)
        let plan = EpochPlan(sampleCount: sampleCount)
        var generator = SeededGenerator(seed: seed)
        for epoch in 0..<epochs {
            Drive.epoch(&policy, plan: plan, epoch: epoch, epochs: 40, generator: &generator) { index, epoch in
                var noise = SeededGenerator(seed: seed &* 7919 &+ UInt64(index * 100 + epoch))
                switch index % 3 {
                case 0: return 0.002
                case 1: return 2 * Float(0.8).power(epoch) + 0.01
                default: return noise.uniform(0.1, 2)
                }
            }
        }
        return policy
    }

    static func bytes(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path)!) }
    static func write(_ bytes: [UInt8], _ path: String) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

    @Test func roundTripRestoresEveryRecordAndTheSamePlans() throws {
        let directory = makeTemporaryDirectory("roundtrip")
        let store = StateStore()
        var original = Self.trainedIES(epochs: 9)
        try store.save(original, sampleCount: Self.sampleCount, epoch: 9, directory: directory)
        let header = try StateStore.readHeader(path: StateStore.currentPath(directory: directory))
        #expect(header.policy == PolicyID.ies.rawValue && header.sampleCount == Self.sampleCount)
        #expect(header.stride == 32 && header.epoch == 9 && header.version == 1)
        #expect(Self.bytes(StateStore.currentPath(directory: directory)).count == 64 + 32 * Self.sampleCount)

        var restored = IESPolicy(sampleCount: Self.sampleCount)
        let generation = try store.load(directory: directory, epoch: 9, sampleCount: Self.sampleCount, into: &restored)
        #expect(generation == .current)
        #expect(Drive.records(restored, sampleCount: Self.sampleCount) == Drive.records(original, sampleCount: Self.sampleCount))
        #expect(restored.totalReentries == original.totalReentries)
        // Resumed and uninterrupted policies plan identically from here on.
        let planA = EpochPlan(sampleCount: Self.sampleCount), planB = EpochPlan(sampleCount: Self.sampleCount)
        var generatorA = SeededGenerator(seed: 3), generatorB = SeededGenerator(seed: 3)
        for epoch in 9..<14 {
            let loss: (Int, Int) -> Float = { index, epoch in Float(index % 5) * 0.001 + (epoch == 11 ? 0.5 : 0) }
            let a = Drive.epoch(&original, plan: planA, epoch: epoch, epochs: 40, generator: &generatorA, loss: loss)
            let b = Drive.epoch(&restored, plan: planB, epoch: epoch, epochs: 40, generator: &generatorB, loss: loss)
            #expect(a == b)
        }
        #expect(restored.totalReentries == original.totalReentries)
    }

    @Test func otherPoliciesRoundTrip() throws {
        let directory = makeTemporaryDirectory("others")
        let store = StateStore()
        var infoBatch = InfoBatchPolicy(sampleCount: 50)
        Drive.trained(&infoBatch, (0..<40).map { Int32($0) }, (0..<40).map { Float($0) * 0.1 }, epoch: 0)
        try store.save(infoBatch, sampleCount: 50, epoch: 1, directory: directory)
        var restored = InfoBatchPolicy(sampleCount: 50)
        try store.load(directory: directory, epoch: 1, sampleCount: 50, into: &restored)
        #expect((0..<50).allSatisfy { restored.score($0) == infoBatch.score($0) })
        #expect(restored.score(45) == nil && restored.score(3) == Float(3) * 0.1)

        // Stateless policies still get a header (policy, count, epoch) and no records.
        let fullDirectory = makeTemporaryDirectory("full")
        var full = FullPolicy(sampleCount: 50)
        try store.save(full, sampleCount: 50, epoch: 2, directory: fullDirectory)
        #expect(Self.bytes(StateStore.currentPath(directory: fullDirectory)).count == 64)
        try store.load(directory: fullDirectory, epoch: 2, sampleCount: 50, into: &full)
    }

    @Test func twoGenerationsAreKept() throws {
        let directory = makeTemporaryDirectory("generations")
        let store = StateStore()
        let atThree = Self.trainedIES(epochs: 3), atFour = Self.trainedIES(epochs: 4), atFive = Self.trainedIES(epochs: 5)
        try store.save(atThree, sampleCount: Self.sampleCount, epoch: 3, directory: directory)
        try store.save(atFour, sampleCount: Self.sampleCount, epoch: 4, directory: directory)
        #expect(try StateStore.readHeader(path: StateStore.previousPath(directory: directory)).epoch == 3)
        try store.save(atFive, sampleCount: Self.sampleCount, epoch: 5, directory: directory)
        #expect(!FileManager.default.fileExists(atPath: StateStore.temporaryPath(directory: directory)))

        var policy = IESPolicy(sampleCount: Self.sampleCount)
        let newest = try store.load(directory: directory, epoch: 5, sampleCount: Self.sampleCount, into: &policy)
        #expect(newest == .current)
        #expect(Drive.records(policy, sampleCount: Self.sampleCount) == Drive.records(atFive, sampleCount: Self.sampleCount))
        // The checkpoint may be one save behind (crash between the state save and the checkpoint).
        let older = try store.load(directory: directory, epoch: 4, sampleCount: Self.sampleCount, into: &policy)
        #expect(older == .previous)
        #expect(Drive.records(policy, sampleCount: Self.sampleCount) == Drive.records(atFour, sampleCount: Self.sampleCount))
        // Epoch 3 was rotated out: a clear error naming the files, and the policy untouched.
        do {
            try store.load(directory: directory, epoch: 3, sampleCount: Self.sampleCount, into: &policy)
            Issue.record("loading a rotated-out epoch must fail")
        } catch {
            #expect(error.description.contains("no intact selection state for epoch 3"))
            #expect(error.description.contains("selection.state.prev: selection state is from epoch 4"))
        }
        #expect(Drive.records(policy, sampleCount: Self.sampleCount) == Drive.records(atFour, sampleCount: Self.sampleCount))
    }

    @Test func configurationMismatchesAreNamed() throws {
        let directory = makeTemporaryDirectory("mismatch")
        let store = StateStore()
        try store.save(Self.trainedIES(epochs: 2), sampleCount: Self.sampleCount, epoch: 2, directory: directory)
        var infoBatch = InfoBatchPolicy(sampleCount: Self.sampleCount)
        do {
            try store.load(directory: directory, epoch: 2, sampleCount: Self.sampleCount, into: &infoBatch)
            Issue.record("policy mismatch must fail")
        } catch {
            guard case .policyMismatch(let expected, let found) = error.kind else { Issue.record("\(error)"); return }
            #expect(expected == PolicyID.infoBatch.rawValue && found == PolicyID.ies.rawValue)
            #expect(error.description.contains(StateStore.currentPath(directory: directory)))
        }
        var smaller = IESPolicy(sampleCount: 10)
        do {
            try store.load(directory: directory, epoch: 2, sampleCount: 10, into: &smaller)
            Issue.record("sample count mismatch must fail")
        } catch {
            guard case .sampleCountMismatch = error.kind else { Issue.record("\(error)"); return }
        }
        var missing = IESPolicy(sampleCount: 1)
        #expect(throws: SelectError.self) {
            try store.load(directory: directory + "/nothing-here", epoch: 0, sampleCount: 1, into: &missing)
        }
    }

    /// Every way a file can be torn or damaged: the load returns the wanted epoch's exact
    /// records from an intact generation, or throws; never a mix, never a partial decode.
    @Test func tornAndCorruptFilesNeverLoadMixedState() throws {
        let directory = makeTemporaryDirectory("corrupt")
        let store = StateStore()
        let count = Self.sampleCount
        let atThree = Self.trainedIES(epochs: 3), atFour = Self.trainedIES(epochs: 4)
        let recordsThree = Drive.records(atThree, sampleCount: count), recordsFour = Drive.records(atFour, sampleCount: count)
        try store.save(atThree, sampleCount: count, epoch: 3, directory: directory)
        try store.save(atFour, sampleCount: count, epoch: 4, directory: directory)
        let current = StateStore.currentPath(directory: directory), previous = StateStore.previousPath(directory: directory)
        let temporary = StateStore.temporaryPath(directory: directory)
        let good = Self.bytes(current), goodPrevious = Self.bytes(previous)
        let sentinel = Drive.records(Self.trainedIES(epochs: 7, seed: 77), sampleCount: count)

        func attempt(epoch: Int) -> (StateGeneration?, [UInt8]) {
            var policy = Self.trainedIES(epochs: 7, seed: 77)
            do {
                let generation = try store.load(directory: directory, epoch: epoch, sampleCount: count, into: &policy)
                return (generation, Drive.records(policy, sampleCount: count))
            } catch {
                #expect(!error.description.isEmpty)
                return (nil, Drive.records(policy, sampleCount: count))
            }
        }

        var offsets = Array(0..<80) + stride(from: 80, to: good.count, by: 97).map { $0 } + [good.count - 1]
        offsets = Array(Set(offsets)).sorted()
        var checked = 0
        for offset in offsets {
            for damage in 0..<2 {
                var bytes = good
                if damage == 0 { bytes = Array(bytes.prefix(offset)) } else { bytes[offset] ^= 0x5A }
                Self.write(bytes, current)
                // The damaged newest generation: epoch 4 is gone, and the policy is untouched.
                let (newest, newestRecords) = attempt(epoch: 4)
                #expect(newest == nil, "damage \(damage) at \(offset) went unnoticed")
                #expect(newestRecords == sentinel)
                // The previous generation still loads exactly.
                let (older, olderRecords) = attempt(epoch: 3)
                #expect(older == .previous && olderRecords == recordsThree)
                checked += 1
            }
        }
        #expect(checked > 100)

        // Damaged previous generation, intact current: epoch 4 loads, epoch 3 is an error.
        Self.write(good, current)
        var damagedPrevious = goodPrevious
        damagedPrevious[100] ^= 1
        Self.write(damagedPrevious, previous)
        #expect(attempt(epoch: 4) == (.current, recordsFour))
        #expect(attempt(epoch: 3).0 == nil)
        Self.write(goodPrevious, previous)

        // Crash while writing the temporary file: current and previous are untouched.
        Self.write(Array(good.prefix(good.count / 2)), temporary)
        #expect(attempt(epoch: 4) == (.current, recordsFour))
        #expect(attempt(epoch: 3) == (.previous, recordsThree))

        // Crash between the two renames: current -> prev done, temp -> current not yet.
        let atFive = Self.trainedIES(epochs: 5)
        try store.save(atFive, sampleCount: count, epoch: 5, directory: directory)
        try FileManager.default.moveItem(atPath: current, toPath: temporary)
        #expect(attempt(epoch: 5) == (.temporary, Drive.records(atFive, sampleCount: count)))
        #expect(attempt(epoch: 4) == (.previous, recordsFour))
        // The next save completes the rotation.
        try store.save(Self.trainedIES(epochs: 6), sampleCount: count, epoch: 6, directory: directory)
        #expect(try StateStore.readHeader(path: current).epoch == 6)
        #expect(!FileManager.default.fileExists(atPath: temporary))
    }
}
