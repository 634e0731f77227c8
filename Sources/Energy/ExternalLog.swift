import Platform

/// An external meter's log (a USB power meter, a lab supply): CSV lines `timestamp,watts`,
/// read after the run and aligned to it by the timestamps. Timestamps are Unix seconds
/// (`1732350000.25`) or UTC date-times (`2026-11-23 09:15:02.5`, `2026-11-23T09:15:02Z`);
/// a header line and lines that do not parse are skipped (counted in `skipped`).
public struct ExternalLog {
    /// The largest log read (a day of 10 Hz samples is about 30 MB of CSV).
    public static let maximumBytes = 256 << 20

    /// Unix seconds and watts, in file order.
    public var unixTimes: [Double] = []
    public var watts: [Double] = []
    public var skipped = 0
    public var path: String

    public init(path: String) { self.path = path }

    /// Reads and parses the file.
    public static func load(_ path: String) throws(EnergyError) -> ExternalLog {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readAll(path, limit: ExternalLog.maximumBytes) } catch { throw EnergyError("external log: " + error.description) }
        var log = ExternalLog.parse(String(decoding: bytes, as: UTF8.self))
        log.path = path
        guard log.unixTimes.count >= 2 else { throw EnergyError("external log \(path): fewer than two `timestamp,watts` lines") }
        return log
    }

    /// Parses CSV text (comma, semicolon or tab separated; first two columns used).
    public static func parse(_ text: String) -> ExternalLog {
        var log = ExternalLog(path: "")
        for line in TextLines.split(text, omittingEmptyLines: true) {
            let fields = line.split(whereSeparator: { $0 == "," || $0 == ";" || $0 == "\t" })
            guard fields.count >= 2, let time = timestamp(trimmed(fields[0])),
                  let value = Double(trimmed(fields[1])), value.isFinite else {
                log.skipped += 1
                continue
            }
            log.unixTimes.append(time)
            log.watts.append(value)
        }
        return log
    }

    /// The log as a trace on the run's monotonic clock (`wallMinusMonotonic` from the recorder),
    /// shifted by `offset` seconds (a meter whose clock is off), sorted by time.
    public func trace(wallMinusMonotonic: Double, offset: Double = 0) -> PowerTrace {
        let order = unixTimes.indices.sorted { unixTimes[$0] < unixTimes[$1] }
        return PowerTrace(label: "external log \(path)", isEstimate: false,
                          times: order.map { unixTimes[$0] + offset - wallMinusMonotonic },
                          watts: order.map { watts[$0] })
    }

    static func trimmed(_ text: Substring) -> String {
        var text = text
        while let first = text.first, first == " " || first == "\"" { text = text.dropFirst() }
        while let last = text.last, last == " " || last == "\"" { text = text.dropLast() }
        return String(text)
    }

    /// Unix seconds from a number or a UTC `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z]`.
    public static func timestamp(_ text: String) -> Double? {
        if let seconds = Double(text), seconds.isFinite { return seconds }
        let bytes = Array(text.utf8)
        guard bytes.count >= 19, bytes[4] == UInt8(ascii: "-"), bytes[7] == UInt8(ascii: "-"),
              bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " "),
              bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":") else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                let byte = bytes[index]
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
              let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var fraction = 0.0
        var rest = 19
        if rest < bytes.count && bytes[rest] == UInt8(ascii: ".") {
            var scale = 0.1
            rest += 1
            while rest < bytes.count, bytes[rest] >= 0x30 && bytes[rest] <= 0x39 {
                fraction += Double(bytes[rest] - 0x30) * scale
                scale /= 10
                rest += 1
            }
        }
        if rest < bytes.count && bytes[rest] == UInt8(ascii: "Z") { rest += 1 }
        guard rest == bytes.count else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Double(days * 86400 + hour * 3600 + minute * 60 + second) + fraction
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146097 + dayOfEra - 719468
    }
}
