import Select
import Testing

/// `PolicyKind` is the one list of policies: names, stored ids and construction must agree.
@Suite struct PolicyKindTests {
    @Test func everyStoredIdHasExactlyOneKind() {
        // Ids are append-only from 1: walk them until the first raw value without a case.
        var raw: UInt16 = 1
        var ids: [PolicyID] = []
        while let id = PolicyID(rawValue: raw) {
            ids.append(id)
            raw += 1
        }
        #expect(ids.count >= 7)
        for id in ids {
            let kinds = PolicyKind.allCases.filter { $0.id == id }
            #expect(kinds.count == 1, "policy id \(id.rawValue): \(kinds.count) kinds")
        }
        #expect(PolicyKind.allCases.count == ids.count, "a kind whose id is not a stored id")
    }

    @Test func namesAreUniqueAndParseBack() {
        #expect(Set(PolicyKind.names).count == PolicyKind.allCases.count)
        #expect(PolicyKind.names == PolicyKind.allCases.map { $0.name })
        for kind in PolicyKind.allCases {
            #expect(PolicyKind(name: kind.name) == kind)
            #expect(!kind.name.isEmpty && !kind.name.contains(",") && !kind.name.contains(" "), "'\(kind.name)' cannot be listed in --policies")
        }
        #expect(PolicyKind(name: "IES") == nil && PolicyKind(name: "") == nil)
    }

    @Test func everyKindBuildsThePolicyWithItsId() {
        let settings = PolicySettings()
        for kind in PolicyKind.allCases {
            let policy = AnyPolicy(kind, settings: settings, sampleCount: 40, epochs: 6)
            #expect(policy.id == kind.id, "\(kind.name) built a policy with id \(policy.id.rawValue)")
        }
    }

    @Test func settingsReachThePolicies() {
        var settings = PolicySettings()
        settings.removeFraction = 0.5
        settings.validationFraction = 0.25
        settings.iesThreshold = 0.02
        settings.patience = 3
        guard case .randomRemove(let remove) = AnyPolicy(.randomRemove, settings: settings, sampleCount: 10, epochs: 2),
              case .earlyStop(let early) = AnyPolicy(.earlyStop, settings: settings, sampleCount: 10, epochs: 2),
              case .ies(let ies) = AnyPolicy(.ies, settings: settings, sampleCount: 10, epochs: 2) else {
            Issue.record("a kind built a different policy")
            return
        }
        #expect(remove.fraction == 0.5)
        #expect(early.validationFraction == 0.25 && early.patience == 3)
        #expect(ies.threshold == 0.02)
        #expect(AnyPolicy(.earlyStop, settings: settings, sampleCount: 10, epochs: 2).validationFraction == 0.25)
    }
}
