import Platform
import Select
import Testing
import Train

/// The comparison's run plan and the random-remove budget it passes between runs.
@Suite struct ComparisonTests {
    func labels(_ runs: [Comparison.Run]) -> [String] { runs.map { $0.label } }

    @Test func randomRemoveRunsAfterTheIESRunsItMatches() {
        let plain = Comparison.plan(policies: [.randomRemove, .full, .ies, .dihcl], thresholds: [], match: .first)
        #expect(labels(plain) == ["full", "ies", "dihcl", "random-remove"])
        let thresholds = ["1e-3", "0.01"]
        let sweep = Comparison.plan(policies: [.randomRemove, .ies, .full], thresholds: thresholds, match: .first)
        #expect(labels(sweep) == ["ies@1e-3", "ies@0.01", "full", "random-remove@1e-3"])
        #expect(sweep[1].threshold == "0.01" && sweep[3].policy == .randomRemove)
        let all = Comparison.plan(policies: [.ies, .randomRemove], thresholds: thresholds, match: .all)
        #expect(labels(all) == ["ies@1e-3", "ies@0.01", "random-remove@1e-3", "random-remove@0.01"])
        let matched = Comparison.matchingThreshold("1e-2", in: thresholds)
        #expect(matched == "0.01")
        #expect(Comparison.matchingThreshold("0.02", in: thresholds) == nil)
        let one = Comparison.plan(policies: [.ies, .randomRemove], thresholds: thresholds, match: .threshold(matched!))
        #expect(labels(one) == ["ies@1e-3", "ies@0.01", "random-remove@0.01"])
    }

    /// The budget used to travel as text with 6 decimals (printed, then parsed as the option):
    /// the typed value must be that same double, bit for bit, so compare's results do not move.
    @Test func theBudgetIsTheDoubleItsSixDecimalTextParsesTo() {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var values: [Double] = [0, 0.99, 0.3, 1e-7, 0.1234565, 0.0000005, 0.9899995, -0.2, 1.5]
        for _ in 0..<20_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            values.append(Double(state >> 11) / Double(1 << 53))
        }
        for saved in values {
            let text = Format.fixed(min(max(saved, 0), 0.99), 6)
            #expect(Comparison.budget(saved).bitPattern == Double(text)!.bitPattern, "\(saved): \(Comparison.budget(saved)) vs \(text)")
        }
    }

    @Test func controlsFollowEverySelectiveRunAndNothingElse() {
        let runs = Comparison.plan(policies: [.full, .ies, .dihcl, .earlyStop, .infoBatch, .selectiveBackprop], thresholds: [], match: .first)
        let both = Comparison.withControls(runs, .both)
        #expect(labels(both) == ["full", "ies", "ies.ctl-compute", "ies.ctl-counts", "dihcl", "dihcl.ctl-compute", "dihcl.ctl-counts",
                                 "early-stop", "infobatch", "infobatch.ctl-compute", "infobatch.ctl-counts",
                                 "selective-backprop", "selective-backprop.ctl-compute", "selective-backprop.ctl-counts"])
        #expect(both[2].control == .compute("ies") && both[3].control == .counts("ies") && both[3].policy == .randomRemove)
        #expect(labels(Comparison.withControls(runs, .none)) == labels(runs))
        let counts = Comparison.withControls(Comparison.plan(policies: [.ies], thresholds: ["1e-3", "0.01"], match: .first),
                                             Comparison.Controls(compute: false, counts: true))
        #expect(labels(counts) == ["ies@1e-3", "ies@1e-3.ctl-counts", "ies@0.01", "ies@0.01.ctl-counts"])
    }

    @Test func seedStatisticsAndSignificance() {
        let three = SeedStatistics([0.90, 0.92, 0.94])
        #expect(abs(three.mean - 0.92) < 1e-12 && abs(three.deviation - 0.02) < 1e-12)
        #expect(abs(three.standardError - 0.02 / 3.0.squareRoot()) < 1e-12)
        #expect(three.isSignificant)  // 0.92 is far more than two standard errors from 0
        #expect(!SeedStatistics([0.001, -0.002, 0.003]).isSignificant)
        #expect(!SeedStatistics([0.5]).isSignificant && SeedStatistics([0.5]).deviation.isNaN)
    }
}
