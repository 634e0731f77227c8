import Foundation
import Platform
import Testing

/// The C wrappers that moved into Platform: CRC-32 against the standard check value, a gzip
/// round trip and the inflate failures, libm bit for bit, the environment and readlink.
@Suite struct WrapperTests {
    /// Reports, logs and CSVs are replaced atomically, and the replace is durable: the temporary
    /// file is fsynced, renamed, then the directory fsynced (without the last step a power cut
    /// can bring the old file back after the run said it wrote the new one).
    @Test func replaceFsyncsTheFileThenTheDirectory() throws {
        let directory = NSTemporaryDirectory() + "leitner-replace-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/report.csv"
        try FileSystem.replace(path, with: "old\n")
        FaultInjection.startTrace(path: directory)
        var failure: Error? = nil
        do { try FileSystem.replace(path, with: "new\n") } catch { failure = error }
        let calls = FaultInjection.stopTrace(path: directory).filter { !$0.hasPrefix("write ") }
        if let failure { throw failure }
        #expect(calls == ["open \(path).tmp", "fsync \(path).tmp", "rename \(path).tmp", "fsync \(directory)"], "\(calls)")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new\n")
        // A relative path's directory is the working directory.
        #expect(throws: Never.self) { try FileSystem.syncDirectory(containing: "relative-name") }
    }

    @Test func crc32MatchesTheCheckValue() {
        #expect(Checksum.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(Checksum.crc32([]) == 0)
    }

    @Test func gzipRoundTripAndFailures() throws {
        let input = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 13) }
        let encoder = GzipCodec.encoder(level: 6)
        var member = [UInt8](repeating: 0, count: encoder.bound(input.count))
        let length = input.withUnsafeBytes { source in
            member.withUnsafeMutableBytes { encoder.deflate(source.baseAddress!, count: input.count, into: $0.baseAddress!, capacity: $0.count) }
        }
        let decoder = GzipCodec.decoder()
        func inflate(_ count: Int, expected: Int) -> GzipError? {
            var output = [UInt8](repeating: 0, count: expected)
            var failure: GzipError?
            member.withUnsafeBytes { source in
                output.withUnsafeMutableBytes { target in
                    do throws(GzipError) {
                        try decoder.inflate(source.baseAddress!, count: count, into: target.baseAddress!, expected: expected)
                    } catch { failure = error }
                }
            }
            if let failure { return failure }
            #expect(output == Array(input.prefix(expected)))
            return nil
        }
        #expect(inflate(length, expected: input.count) == nil)
        let cut = try #require(inflate(length - 10, expected: input.count))
        #expect(cut.description.hasPrefix("inflate: ") && cut.message.contains("cut short"), "\(cut)")
        let small = try #require(inflate(length, expected: input.count - 1))
        #expect(small.message.contains("more than"), "\(small)")
    }

    @Test func gzipFileNamesTheCallAndPath() {
        do throws(GzipError) {
            _ = try GzipFile.open("/nonexistent/leitner-wrapper-test.gz")
            Issue.record("opened a missing file")
        } catch {
            #expect(error.description.hasPrefix("gzopen /nonexistent/leitner-wrapper-test.gz"), "\(error)")
        }
    }

    @Test func floatMathIsLibmBitForBit() {
        for x: Float in [-87.5, -3.25, -0.001, 0.5, 1, 2.75, 40] {
            #expect(FloatMath.exp(x).bitPattern == expf(x).bitPattern)
            #expect(FloatMath.expm1(x).bitPattern == expm1f(x).bitPattern)
            #expect(FloatMath.cos(x).bitPattern == cosf(x).bitPattern)
            #expect(FloatMath.log(abs(x)).bitPattern == logf(abs(x)).bitPattern)
            #expect(FloatMath.sqrt(abs(x)).bitPattern == sqrtf(abs(x)).bitPattern)
            #expect(FloatMath.pow(abs(x), 0.3).bitPattern == powf(abs(x), 0.3).bitPattern)
            let d = Double(x) * 1.1
            #expect(FloatMath.exp(d).bitPattern == Foundation.exp(d).bitPattern)
            #expect(FloatMath.expm1(d).bitPattern == Foundation.expm1(d).bitPattern)
            #expect(FloatMath.cos(d).bitPattern == Foundation.cos(d).bitPattern)
            #expect(FloatMath.log(abs(d)).bitPattern == Foundation.log(abs(d)).bitPattern)
            #expect(FloatMath.sqrt(abs(d)).bitPattern == Foundation.sqrt(abs(d)).bitPattern)
            #expect(FloatMath.pow(abs(d), 0.3).bitPattern == Foundation.pow(abs(d), 0.3).bitPattern)
        }
    }

    @Test func environmentAndSymbolicLinks() {
        setenv("LEITNER_WRAPPER_TEST", "value", 1)
        #expect(Environment.value("LEITNER_WRAPPER_TEST") == "value")
        unsetenv("LEITNER_WRAPPER_TEST")
        #expect(Environment.value("LEITNER_WRAPPER_TEST") == nil)
        #expect(FileSystem.symbolicLinkTarget("/proc/self/exe")?.hasPrefix("/") == true)
        #expect(FileSystem.symbolicLinkTarget("/proc/self/status") == nil)
        #expect(Errno.noSpace == ENOSPC && Errno.ioError == EIO && Errno.permissionDenied == EACCES && Errno.notPermitted == EPERM)
    }
}
