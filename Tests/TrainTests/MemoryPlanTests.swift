import Testing
import Data
import NN
import Train

/// The start-up memory plan is what a run holds: every arena a trainer makes has its plan
/// field's bytes and is carved full, and together they are the plan's total.
@Suite struct MemoryPlanTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var optimizer: String
        var update: String
        var validation: Double
        var testDescription: String { "\(optimizer), update \(update), validation \(validation)" }
    }

    static let cases = [
        Case(optimizer: "sgd", update: "all", validation: 0), Case(optimizer: "sgd0", update: "all", validation: 0.1),
        Case(optimizer: "adamw", update: "all", validation: 0.25), Case(optimizer: "sgd", update: "bias-only", validation: 0),
    ]

    @Test(arguments: cases)
    func planTotalIsTheBytesTheArenasHold(_ run: Case) throws {
        let train = try syntheticSet(count: 203, seed: 1), test = try syntheticSet(count: 37, seed: 2)
        var config = try tinyConfig("/tmp/leitner-plan-unused", epochs: 1)
        config.batch = 20
        switch run.optimizer {
        case "sgd0": config.optimizer = .sgd(momentum: 0, nesterov: false, weightDecay: 5e-4)
        case "adamw": config.optimizer = .adamw(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 1e-2)
        default: break
        }
        config.update = try #require(UpdateMode(parsing: run.update))
        let trainer = try Trainer(config: config, train: train, test: test, validationFraction: run.validation)
        let plan = trainer.plan
        let planned = [("parameters", plan.parameters), ("gradients", plan.gradients), ("activations", plan.activations),
                       ("scratch", plan.scratch), ("optimizer", plan.optimizerState), ("indices", plan.indices), ("staging", plan.staging)]
        let arenas = trainer.arenas
        #expect(arenas.map(\.name).sorted() == planned.map(\.0).sorted())
        for (name, bytes) in planned {
            let arena = try #require(arenas.first { $0.name == name })
            #expect(arena.capacityBytes == bytes, "\(run): arena \(name) holds \(arena.capacityBytes) bytes, the plan says \(bytes)")
            #expect(arena.usedBytes == arena.capacityBytes, "\(run): arena \(name) uses \(arena.usedBytes) of \(arena.capacityBytes) bytes")
        }
        #expect(arenas.reduce(0) { $0 + $1.capacityBytes } == plan.totalBytes)
        // The index buffers: three orders over the training set, the test order, the
        // validation split, a batch of flags, the policy's action byte and Float weight per sample.
        let validation = trainer.validationCount
        #expect(plan.indices >= 3 * 203 * 4 + 37 * 4 + validation * 4 + 20 + 203 * 5)
        #expect(plan.budgetLine.contains("indices "), "\(plan.budgetLine)")
        // Selective Backprop's staging: two batches of 1x8x8 inputs and labels.
        #expect(plan.staging >= 2 * 20 * 64 * 4 + 2 * 20 * 4)
        #expect(plan.budgetLine.contains("staging "), "\(plan.budgetLine)")

        // The budget refuses the plan one byte short of its total, indices included.
        config.memoryBudgetBytes = plan.totalBytes - 1
        #expect(throws: TrainError.self) { _ = try Trainer(config: config, train: train, test: test, validationFraction: run.validation) }
        config.memoryBudgetBytes = plan.totalBytes
        _ = try Trainer(config: config, train: train, test: test, validationFraction: run.validation)
    }
}
