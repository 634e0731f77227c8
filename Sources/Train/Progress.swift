import Platform

/// The progress display: on a terminal a bar redrawn in place with rate and ETA; otherwise
/// nothing until the epoch's summary line (logs stay readable).
public struct ProgressDisplay {
    public let enabled: Bool
    private var lastDraw = 0.0

    public init(enabled: Bool?) {
        self.enabled = enabled ?? Console.isTerminal(fd: 2)
    }

    /// Redraws at most ten times a second.
    public mutating func update(epoch: Int, epochs: Int, done: Int, total: Int, started: Double, loss: Double) {
        guard enabled else { return }
        let now = Clock.seconds()
        if now - lastDraw < 0.1 && done < total { return }
        lastDraw = now
        let elapsed = max(now - started, 1e-9)
        let rate = Double(done) / elapsed
        let remaining = rate > 0 ? Double(total - done) / rate : 0
        let width = 24
        let filled = total > 0 ? min(width, done * width / total) : width
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        Console.errorInline("\repoch \(epoch)/\(epochs) [\(bar)] \(done)/\(total) \(Format.fixed(rate, 0)) samples/s ETA \(Format.duration(remaining)) loss \(Format.fixed(loss, 4))   ")
    }

    /// Clears the bar before a summary line.
    public func finish() {
        if enabled { Console.errorInline("\r" + String(repeating: " ", count: 100) + "\r") }
    }
}

/// Number formatting without Foundation.
public enum Format {
    /// `value` with `decimals` digits after the point.
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        if !value.isFinite { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (abs(value) * scale).rounded()
        let whole = rounded / scale
        let wholeText = whole >= 9.2e18 ? "\(whole)" : String(Int(whole.rounded(.down)))
        var text = (value < 0 && rounded != 0 ? "-" : "") + wholeText
        if decimals > 0 {
            let fraction = Int(rounded - whole.rounded(.down) * scale)
            var digits = String(fraction)
            while digits.count < decimals { digits = "0" + digits }
            text += "." + digits
        }
        return text
    }

    /// "1h02m", "3m05s" or "12s".
    public static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let total = Int(seconds.rounded())
        if total >= 3600 { return "\(total / 3600)h" + two(total % 3600 / 60) + "m" }
        if total >= 60 { return "\(total / 60)m" + two(total % 60) + "s" }
        return "\(total)s"
    }

    static func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
}
