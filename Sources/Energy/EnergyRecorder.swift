import Platform

/// Samples a meter on its own thread (default 10 Hz) into a fixed-capacity trace allocated
/// once: the thread allocates nothing in steady state and never touches training. When the
/// trace is full it keeps every other sample and stores every second reading from then on, so
/// a run of any length fits while cumulative joules stay exact. A reading that costs time
/// (the PMIC meter runs a command) stretches the interval to at least 100 times its cost,
/// which keeps the sampler under 1% of a core. Energy figures are computed by the caller at
/// epoch ends from `trace()`.
public final class EnergyRecorder {
    public let meter: Meter
    /// The requested interval between readings (1 / Hz).
    public let interval: Double
    public let capacity: Int

    let condition = Condition()
    let times: UnsafeMutablePointer<Double>
    let cumulative: UnsafeMutablePointer<Double>
    let power: UnsafeMutablePointer<Double>
    var count = 0
    var stride = 1
    var readings = 0
    var head: (time: Double, joules: Double, watts: Double)? = nil
    var lastPower: (time: Double, watts: Double)? = nil
    var lastCounter: (time: Double, joules: Double)? = nil
    var firstCounter: Double? = nil
    var total = 0.0
    var requests = 0
    var served = 0
    var stopping = false
    var running = false
    var thread: Thread? = nil
    var readCost = 0.0

    /// Readings that failed (the last error is kept in `lastError`).
    public private(set) var failures = 0
    public private(set) var lastError: String? = nil
    /// CPU seconds the sampling thread has used, and when it started (monotonic seconds).
    public private(set) var samplerCPUSeconds = 0.0
    public private(set) var startTime = 0.0
    /// Wall clock minus monotonic clock at the start: aligns external logs (Unix time) to the trace.
    public private(set) var wallMinusMonotonic = 0.0

    public init(meter: Meter, hz: Double = 10, capacity: Int = 1 << 16) {
        self.meter = meter
        interval = 1 / max(min(hz, 1000), 0.01)
        self.capacity = max(capacity, 4)
        times = .allocate(capacity: self.capacity)
        cumulative = .allocate(capacity: self.capacity)
        power = .allocate(capacity: self.capacity)
    }

    deinit {
        stop()
        times.deallocate()
        cumulative.deallocate()
        power.deallocate()
    }

    /// Takes a first reading (so a broken meter fails here, not later) and starts the thread.
    public func start() throws(EnergyError) {
        guard !running else { return }
        wallMinusMonotonic = Clock.wallSeconds() - Clock.seconds()
        startTime = Clock.seconds()
        let reading = try meter.read(at: startTime)
        condition.withLock { record(reading, at: startTime, forced: true) }
        stopping = false
        running = true
        do { thread = try Thread(name: "energy sampler") { [self] in self.loop() } }
        catch { running = false; throw EnergyError(error) }
    }

    /// Stops and joins the thread (a final reading is asked for first, waited for at most
    /// 0.5 s; the join then waits for a reading in progress, which the meter's own timeout bounds).
    public func stop() {
        guard running else { return }
        sampleNow(waitingAtMost: 0.5)
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
        thread?.join()
        thread = nil
        running = false
    }

    /// Asks for a reading now and returns once one taken after this call has been stored
    /// (true), or after `seconds` (false; the reading still lands in the trace when it comes).
    /// Epoch boundaries wait a bounded time, so a slow meter (a PMIC command taking seconds)
    /// never holds the training thread longer than that.
    @discardableResult
    public func sampleNow(waitingAtMost seconds: Double = .infinity) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard running, !stopping else { return false }
        requests += 1
        let mine = requests
        condition.broadcast()
        let deadline = Clock.seconds() + seconds
        while served < mine && !stopping {
            if seconds.isInfinite {
                condition.wait()
            } else {
                let remaining = deadline - Clock.seconds()
                if remaining <= 0 { break }
                _ = condition.wait(seconds: remaining)
            }
        }
        if served < mine { lateBoundaries += 1 }
        return served >= mine
    }

    /// Boundaries at which `sampleNow(waitingAtMost:)` gave up waiting for the meter.
    public private(set) var lateBoundaries = 0

    func loop() {
        let cpuStart = Thread.cpuSeconds()
        condition.lock()
        // start() took the first reading: the first of the loop is due one interval later
        // (or at the first sampleNow), never at once.
        var deadline = startTime + interval
        while !stopping {
            while !stopping && requests == served {
                let remaining = deadline - Clock.seconds()
                if remaining <= 0 { break }
                condition.wait(seconds: remaining)
            }
            if stopping { break }
            let serving = requests
            condition.unlock()
            let now = Clock.seconds()
            var reading: Reading? = nil
            var failure: EnergyError? = nil
            do throws(EnergyError) { reading = try meter.read(at: now) } catch { failure = error }
            let cost = Clock.seconds() - now
            condition.lock()
            readCost = readCost == 0 ? cost : 0.8 * readCost + 0.2 * cost
            if let reading {
                record(reading, at: now, forced: serving > served)
            } else if let failure {
                failures += 1
                if failures == 1 { lastError = failure.message }
            }
            served = serving
            samplerCPUSeconds = Thread.cpuSeconds() - cpuStart
            condition.broadcast()
            deadline = now + max(interval, 100 * readCost)
        }
        condition.unlock()
    }

    /// Adds a reading to the running total and, every `stride` readings (always when forced),
    /// to the stored trace. Called with the lock held; allocates nothing.
    func record(_ reading: Reading, at time: Double, forced: Bool) {
        var watts = Double.nan
        switch reading {
        case .watts(let value):
            if let last = lastPower { total += (last.watts + value) / 2 * (time - last.time) }
            lastPower = (time, value)
            watts = value
        case .joules(let value):
            if firstCounter == nil { firstCounter = value }
            total = value - firstCounter!
            if let last = lastCounter, time > last.time { watts = (total - last.joules) / (time - last.time) }
            lastCounter = (time, total)
        }
        head = (time, total, watts)
        readings += 1
        guard forced || readings % stride == 0 else { return }
        if count == capacity { compact() }
        times[count] = time
        cumulative[count] = total
        power[count] = watts
        count += 1
    }

    /// Keeps samples 0, 2, 4, ... and the last one; halves the storage rate from now on.
    func compact() {
        let last = count - 1
        var kept = 0
        var index = 0
        while index < last {
            times[kept] = times[index]; cumulative[kept] = cumulative[index]; power[kept] = power[index]
            kept += 1
            index += 2
        }
        times[kept] = times[last]; cumulative[kept] = cumulative[last]; power[kept] = power[last]
        count = kept + 1
        stride *= 2
    }

    /// A copy of the stored samples plus the latest reading.
    public func trace() -> PowerTrace {
        condition.withLock {
            var trace = PowerTrace(label: meter.label, isEstimate: meter.isEstimate)
            trace.times = Array(UnsafeBufferPointer(start: times, count: count))
            trace.joules = Array(UnsafeBufferPointer(start: cumulative, count: count))
            trace.watts = Array(UnsafeBufferPointer(start: power, count: count))
            if let head, count == 0 || head.time > times[count - 1] {
                trace.times.append(head.time)
                trace.joules.append(head.joules)
                trace.watts.append(head.watts)
            }
            return trace
        }
    }

    /// Energy between two monotonic instants, after a fresh reading.
    public func energy(from start: Double, to end: Double) -> EnergyFigures {
        sampleNow()
        return trace().energy(from: start, to: end)
    }

    /// Readings taken so far.
    public var readingCount: Int { condition.withLock { readings } }

    /// "sampler: N readings at H Hz, X ms CPU over Y s (Z% of one core)".
    public var overheadLine: String {
        let (readings, cpu, failures, error) = condition.withLock { (self.readings, samplerCPUSeconds, self.failures, lastError) }
        let elapsed = max(Clock.seconds() - startTime, 1e-9)
        var line = "energy sampler: \(readings) readings over \(Energy.watts(elapsed)) s (\(Energy.watts(1 / interval)) Hz requested), "
            + "\(Energy.watts(cpu * 1000)) ms CPU = \(Energy.watts(100 * cpu / elapsed))% of one core"
        if failures > 0 { line += "; \(failures) failed readings, first: \(error ?? "")" }
        return line
    }
}
