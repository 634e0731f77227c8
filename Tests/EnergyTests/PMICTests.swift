import Foundation
import Testing
import Energy

@Suite struct PMICTests {
    @Test func theRealPi5CaptureSumsTo7Point24Watts() throws {
        let text = try String(contentsOfFile: pmicFixturePath(), encoding: .utf8)
        let rails = PMICRail.parse(text)
        #expect(rails.count == 12, "\(rails.map(\.name))")
        let total = PMICRail.totalWatts(rails)
        #expect(abs(total - 7.24) < 0.005, "\(total)")
        let core = try #require(rails.first { $0.name == "VDD_CORE" })
        #expect(abs(core.watts - 5.36) < 0.005, "\(core.watts)")
        #expect(abs(core.amps - 6.22421) < 1e-9 && abs(core.volts - 0.861733) < 1e-9)
        // Voltage-only channels give no rail.
        #expect(!rails.contains { $0.name == "EXT5V" || $0.name == "BATT" })
        #expect(abs(PMICRail.boardInputEstimate(railWatts: total) - (total * 1.1451 + 0.5879)) < 1e-12)
    }

    @Test func mailboxTextIsNulSeparated() throws {
        let text = try String(contentsOfFile: pmicFixturePath(), encoding: .utf8)
        let nulSeparated = text.replacingOccurrences(of: "\n", with: "\0")
        #expect(PMICRail.parse(nulSeparated) == PMICRail.parse(text))
        #expect(PMICRail.parse(nulSeparated).count == 12)
    }

    @Test func idleDDRRailsAtZeroAmpsStillCount() {
        let text = "  DDR_VDD2_A current(3)=0.00000000A\n  DDR_VDD2_V volt(11)=1.10476100V\n VDD_CORE_A current(7)=1.0A\n VDD_CORE_V volt(15)=0.8V\n garbage line\n"
        let rails = PMICRail.parse(text)
        #expect(rails.count == 2)
        #expect(PMICRail.totalWatts(rails) == 0.8)
    }

    @Test func theMeterRunsTheCommandAndLabelsTheBoardEstimate() throws {
        let command = "cat " + pmicFixturePath()
        let rails = try PMICMeter(command: command, boardEstimate: false)
        let measured = try #require(watts(try rails.read()))
        #expect(abs(measured - 7.24) < 0.005)
        #expect(rails.label.contains("12 rails") && !rails.label.contains("estimate"), "\(rails.label)")
        #expect(!Meter.pmic(rails).isEstimate)
        let board = try PMICMeter(command: command, boardEstimate: true)
        let estimate = try #require(watts(try board.read()))
        #expect(abs(estimate - (measured * 1.1451 + 0.5879)) < 1e-9)
        #expect(board.label.contains("estimate"))
        #expect(Meter.pmic(board).isEstimate)
        // A command that prints nothing useful or fails is an error, not a zero.
        #expect(throws: EnergyError.self) { try PMICMeter(command: "echo hello", boardEstimate: false) }
        #expect(throws: EnergyError.self) { try PMICMeter(command: "false", boardEstimate: false) }
    }
}
