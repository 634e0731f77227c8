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
