import Platform

/// Raspberry Pi 5 PMIC rails through `vcgencmd pmic_read_adc`: power = sum over rails of
/// volts x amps, a rail's `_A` line paired with its `_V` line by name. The sum misses the
/// PMIC's conversion losses; `boardEstimate` turns it into an estimate of the board's input
/// power (sum x 1.1451 + 0.5879 W, a public tool's fit), labelled an estimate.
public final class PMICMeter {
    let capture: CommandCapture
    public let command: String
    public let boardEstimate: Bool
    public private(set) var railCount = 0

    public static let defaultCommand = "vcgencmd pmic_read_adc"
    public static let boardSlope = 1.1451
    public static let boardOffsetWatts = 0.5879

    /// Runs `command` once to check that it prints paired rails.
    public init(command: String, boardEstimate: Bool) throws(EnergyError) {
        self.command = command
        capture = CommandCapture(command)
        self.boardEstimate = boardEstimate
        let rails = try readRails()
        guard !rails.isEmpty else { throw EnergyError("pmic: `\(command)` printed no paired _A/_V rails") }
        railCount = rails.count
    }

    public var label: String {
        let base = "pmic (Pi 5 PMIC, \(railCount) rails V x A via `\(command)`)"
        return boardEstimate ? base + ", board input estimated as sum x 1.1451 + 0.5879 W" : base
    }

    func readRails() throws(EnergyError) -> [PMICRail] {
        let output: UnsafeBufferPointer<UInt8>
        do { output = try capture.run() } catch { throw EnergyError("pmic: " + error.description) }
        return PMICRail.parse(String(decoding: output, as: UTF8.self))
    }

    public func read() throws(EnergyError) -> Reading {
        let sum = PMICRail.totalWatts(try readRails())
        return .watts(boardEstimate ? PMICRail.boardInputEstimate(railWatts: sum) : sum)
    }
}

/// One PMIC rail: its name without the _A/_V suffix, volts, amps.
public struct PMICRail: Equatable {
    public var name: String
    public var volts: Double
    public var amps: Double
    public var watts: Double { volts * amps }

    /// Parses `vcgencmd pmic_read_adc` output: lines `NAME_A current(N)=0.123A` and
    /// `NAME_V volt(N)=0.86V`, separated by newlines (or NULs, as read through the mailbox).
    /// Returns the rails that have both lines, in the order of their current lines;
    /// voltage-only channels (EXT5V_V, BATT_V) give no rail.
    public static func parse(_ text: String) -> [PMICRail] {
        var currents: [(String, Double)] = []
        var voltages: [String: Double] = [:]
        for line in text.split(whereSeparator: { $0 == "\n" || $0 == "\0" || $0 == "\r" }) {
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard tokens.count >= 2, let equals = tokens[1].firstIndex(of: "=") else { continue }
            let channel = tokens[0]
            var valueText = tokens[1][tokens[1].index(after: equals)...]
            if let last = valueText.last, last == "A" || last == "V" { valueText = valueText.dropLast() }
            guard let value = Double(String(valueText)), value.isFinite else { continue }
            if channel.hasSuffix("_A") {
                currents.append((String(channel.dropLast(2)), value))
            } else if channel.hasSuffix("_V") {
                voltages[String(channel.dropLast(2))] = value
            }
        }
        var rails: [PMICRail] = []
        for (name, amps) in currents {
            if let volts = voltages[name] { rails.append(PMICRail(name: name, volts: volts, amps: amps)) }
        }
        return rails
    }

    /// The sum of volts x amps over `rails`.
    public static func totalWatts(_ rails: [PMICRail]) -> Double {
        var sum = 0.0
        for rail in rails { sum += rail.watts }
        return sum
    }

    /// Board input power estimated from the rail sum (an estimate, labelled so).
    public static func boardInputEstimate(railWatts: Double) -> Double {
        railWatts * PMICMeter.boardSlope + PMICMeter.boardOffsetWatts
    }
}
