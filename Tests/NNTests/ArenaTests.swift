import Testing
import NN

@Suite struct ArenaTests {
    @Test func carvesAlignedViewsAndRefusesOverflowWithSizes() throws {
        let arena = try Arena(name: "test", capacityBytes: 1024)
        let first = try arena.floats(3, label: "first")
        let second = try arena.floats(10, label: "second")
        #expect(Int(bitPattern: first) % Arena.alignment == 0)
        #expect(Int(bitPattern: second) % Arena.alignment == 0)
        #expect(arena.usedBytes == 64 + 64)
        do {
            _ = try arena.floats(1000, label: "too big")
            Issue.record("an overflow was not reported")
        } catch {
            let message = error.description
            #expect(message.contains("'too big' needs 4032 bytes"), "\(message)")
            #expect(message.contains("896 free of 1024"), "\(message)")
        }
    }

    @Test func planOverBudgetIsRefusedWithTheNeededSize() {
        var plan = MemoryPlan()
        plan.activations = 3 << 20
        plan.parameters = 1 << 20
        #expect(throws: MemoryError.self) { try plan.check(budgetBytes: 2 << 20) }
        do { try plan.check(budgetBytes: 2 << 20) } catch {
            #expect(error.description.contains("needs 4194304 bytes"), "\(error.description)")
        }
        #expect(throws: Never.self) { try plan.check(budgetBytes: 4 << 20) }
    }
}
