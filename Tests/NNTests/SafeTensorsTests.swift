import CSystem
import Testing
import TestSupport
import NN
import Platform

// Test support without Foundation: NNTests sees the CSystem module map (with _GNU_SOURCE),
// whose glibc declarations clash with Foundation's, so files and processes go through C here.

/// A fresh directory under /tmp; remove it with `removeTestDirectory`.
func checkpointTestDirectory(_ label: String) -> String {
    var template = Array("/tmp/leitner-\(label)-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed for \(label)") }
    return String(cString: made)
}

func removeTestDirectory(_ path: String) {
    precondition(path.hasPrefix("/tmp/leitner-") && !path.contains("'"))
    _ = system("rm -rf '\(path)'")
}

func fileBytes(_ path: String) -> [UInt8] {
    (try? FileSystem.readAll(path, limit: 1 << 30)) ?? []
}

func writeBytes(_ bytes: [UInt8], to path: String) {
    let file = try! FileHandle.create(path)
    bytes.withUnsafeBytes { raw in
        if raw.count > 0 { try! file.writeAll(raw.baseAddress!, count: raw.count) }
    }
    try! file.close()
}

/// True when a symbolic link (dangling or not) is at `path`.
func isSymbolicLink(_ path: String) -> Bool {
    var buffer = [CChar](repeating: 0, count: 256)
    return readlink(path, &buffer, buffer.count) >= 0
}

/// Runs a shell command; returns its exit status and combined output.
func runShell(_ command: String) -> (Int32, String) {
    let directory = checkpointTestDirectory("shell")
    defer { removeTestDirectory(directory) }
    let status = system(command + " > '\(directory)/out' 2>&1")
    let output = String(decoding: fileBytes(directory + "/out"), as: UTF8.self)
    return ((status >> 8) & 0xFF, output)
}

/// A safetensors file with the given JSON header text (unpadded) and data bytes.
func handMadeFile(header: String, data: [UInt8] = [], sizeField: UInt64? = nil) -> [UInt8] {
    handMadeFile(json: Array(header.utf8), data: data, sizeField: sizeField)
}

func handMadeFile(json: [UInt8], data: [UInt8] = [], sizeField: UInt64? = nil) -> [UInt8] {
    var size = sizeField ?? UInt64(json.count)
    var bytes: [UInt8] = []
    for _ in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: size)); size >>= 8 }
    return bytes + json + data
}

func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value -> [UInt8] in
        let bits = value.bitPattern
        return [UInt8(bits & 0xFF), UInt8((bits >> 8) & 0xFF), UInt8((bits >> 16) & 0xFF), UInt8(bits >> 24)]
    }
}

/// The error `SafeTensorsReader(path:)` throws for `bytes`, or nil when it reads them.
func readError(_ bytes: [UInt8], in directory: String, name: String = "bad.safetensors") -> SafeTensorsError? {
    let path = directory + "/" + name
    if FileSystem.exists(directory) { writeBytes(bytes, to: path) }
    do {
        _ = try SafeTensorsReader(path: path)
        return nil
    } catch {
        return error
    }
}

/// The repository root, from this file's path (Tests/NNTests/<file>).
func repositoryRoot() -> String {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}

/// Runs tools/check-safetensors.py; returns its exit status and output.
func runSafeTensorsCheck(_ arguments: [String]) -> (Int32, String) {
    runShell("python3 '\(repositoryRoot())/tools/check-safetensors.py' " + arguments.map { "'\($0)'" }.joined(separator: " "))
}

/// A reference file for tools/check-safetensors.py: tensors (name, shape, values) and metadata.
func writeReference(_ path: String, tensors: [(String, [Int], [Float])], metadata: [(String, String)]) {
    var members: [(String, JSONValue)] = []
    for (name, shape, values) in tensors {
        members.append((name, .object([
            ("shape", .array(shape.map { JSONValue.integer($0) })),
            ("values", .array(values.map { JSONValue.number(Double($0), raw: "") })),
        ])))
    }
    let root = JSONValue.object([("tensors", .object(members)),
                                 ("metadata", .object(metadata.map { ($0.0, JSONValue.string($0.1)) }))])
    writeBytes(Array(JSON.text(root).utf8), to: path)
}

@Suite(.serialized) struct SafeTensorsTests {
    /// The exact bytes of a two-tensor file: size field, compact JSON padded with spaces to
    /// an 8-byte boundary, then the tensors' little-endian floats back to back.
    @Test func exactBytesOfTinyFile() throws {
        let directory = checkpointTestDirectory("st-bytes")
        defer { removeTestDirectory(directory) }
        let path = directory + "/tiny.safetensors"
        var a: [Float] = [1, -2]
        var b: [Float] = [0.5]
        try a.withUnsafeBufferPointer { pa in
            try b.withUnsafeBufferPointer { pb in
                try SafeTensors.write(path: path, tensors: [
                    SafeTensorsSource(name: "a", shape: [2], pointer: pa.baseAddress!),
                    SafeTensorsSource(name: "b", shape: [1, 1], pointer: pb.baseAddress!),
                ], metadata: [("k", "v\"\n")])
            }
        }
        a[0] = 0; b[0] = 0  // the file must not alias the arrays
        let json = #"{"__metadata__":{"k":"v\"\n"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1,1],"data_offsets":[8,12]}}"#
        var padded = Array(json.utf8)
        while padded.count % 8 != 0 { padded.append(0x20) }
        #expect(padded.count == 144, "JSON \(json.utf8.count) bytes padded to \(padded.count)")
        var expected: [UInt8] = [144, 0, 0, 0, 0, 0, 0, 0] + padded
        expected += littleEndianBytes([1, -2, 0.5])
        let actual = fileBytes(path)
        #expect(actual == expected, "\n\(String(decoding: actual, as: UTF8.self))")
        #expect((8 + padded.count) % 8 == 0)
        #expect(!FileSystem.exists(path + ".tmp"), "the temporary file was left behind")

        let reader = try SafeTensorsReader(path: path)
        #expect(reader.dataOffset == 152)
        #expect(reader.entries.map(\.name) == ["a", "b"])
        #expect(reader.entries.map(\.shape) == [[2], [1, 1]])
        #expect(try reader.floats("a") == [1, -2])
        #expect(try reader.floats("b") == [0.5])
        #expect(reader.metadata.count == 1 && reader.metadata[0] == ("k", "v\"\n"))
    }

    /// Metadata with every kind of character survives a write and a read.
    @Test func metadataRoundTrip() throws {
        let directory = checkpointTestDirectory("st-meta")
        defer { removeTestDirectory(directory) }
        let path = directory + "/meta.safetensors"
        let pairs = [("epoch", "7"), ("quote\"back\\slash", "tab\tnl\ncr\r\u{1}ctl"), ("unicode", "Grüße ✓ 𝄞"),
                     ("empty", ""), ("json", #"{"lr": 0.1, "betas": [0.9, 0.999]}"#)]
        try SafeTensors.write(path: path, tensors: [], metadata: pairs)
        let reader = try SafeTensorsReader(path: path)
        #expect(reader.metadata.map(\.0) == pairs.map(\.0))
        #expect(reader.metadata.map(\.1) == pairs.map(\.1))
        #expect(reader.entries.isEmpty)
    }

    /// Other dtypes are listed by name and readable as bytes, but refused as Float.
    @Test func otherDTypesAreReportedByName() throws {
        let directory = checkpointTestDirectory("st-dtype")
        defer { removeTestDirectory(directory) }
        let header = #"{"steps":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"half":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"flags":{"dtype":"U8","shape":[4],"data_offsets":[12,16]}}"#
        let path = directory + "/mixed.safetensors"
        writeBytes(handMadeFile(header: header, data: [42, 0, 0, 0, 0, 0, 0, 0, 0, 0x3C, 0, 0x40, 1, 2, 3, 4]), to: path)
        let reader = try SafeTensorsReader(path: path)
        #expect(reader.entries.map(\.dtype) == [.i64, .f16, .u8])
        #expect(try reader.bytes("flags") == [1, 2, 3, 4])
        do {
            _ = try reader.floats("steps")
            Issue.record("reading I64 as Float succeeded")
        } catch {
            #expect(error.kind == .wrongDType)
            #expect(error.description.contains("steps") && error.description.contains("I64") && error.description.contains(path), "\(error)")
        }
        do {
            _ = try reader.floats("absent")
            Issue.record("reading an absent tensor succeeded")
        } catch {
            #expect(error.kind == .notFound && error.description.contains("absent"), "\(error)")
        }
    }

    /// Each kind of malformed file gives its own clear, typed error naming the file and tensor.
    @Test func malformedFilesGiveClearErrors() throws {
        let directory = checkpointTestDirectory("st-bad")
        defer { removeTestDirectory(directory) }
        let four = littleEndianBytes([1])
        func entry(_ name: String, _ dtype: String = "F32", _ shape: String = "[1]", _ offsets: String = "[0,4]") -> String {
            #""\#(name)":{"dtype":"\#(dtype)","shape":\#(shape),"data_offsets":\#(offsets)}"#
        }
        let cases: [(String, [UInt8], SafeTensorsError.Kind, [String])] = [
            ("empty file", [], .truncated, ["fewer than the 8-byte"]),
            ("truncated size field", [1, 0, 0], .truncated, ["3 bytes"]),
            ("header size beyond the file", handMadeFile(header: "{}", sizeField: 50), .truncated, ["header size 50"]),
            ("absurd header size 2^63", handMadeFile(header: "{}", sizeField: 1 << 63), .headerSize, ["9223372036854775808"]),
            ("header size 2^64-1", handMadeFile(header: "{}", sizeField: UInt64.max), .headerSize, ["limit"]),
            ("truncated header", Array(handMadeFile(header: "{" + entry("w") + "}", data: four).prefix(20)), .truncated, ["header size"]),
            ("bad JSON", handMadeFile(header: #"{"w":{"dtype":"F32",}}"#, data: four), .json, ["header JSON"]),
            ("not an object", handMadeFile(header: "[1]"), .header, ["'{'"]),
            ("trailing garbage", handMadeFile(header: "{} x"), .json, ["after the JSON value"]),
            ("unknown dtype", handMadeFile(header: "{" + entry("w", "F31") + "}", data: four), .unknownDType, ["\"w\"", "F31"]),
            ("offsets out of range", handMadeFile(header: "{" + entry("w", "F32", "[2]", "[0,8]") + "}", data: four), .offsets, ["\"w\"", "past the data section"]),
            ("reversed offsets", handMadeFile(header: "{" + entry("w", "F32", "[0]", "[4,0]") + "}", data: four), .offsets, ["\"w\""]),
            ("overlapping offsets", handMadeFile(header: "{" + entry("w", "F32", "[2]", "[0,8]") + "," + entry("v", "F32", "[1]", "[4,8]") + "}", data: four + four), .offsets, ["\"v\"", "overlap", "\"w\""]),
            ("gap", handMadeFile(header: "{" + entry("w", "F32", "[1]", "[4,8]") + "}", data: four + four), .offsets, ["\"w\"", "gap of 4 bytes"]),
            ("uncovered tail", handMadeFile(header: "{" + entry("w") + "}", data: four + four), .offsets, ["cover 4 bytes", "holds 8"]),
            ("shape/size mismatch", handMadeFile(header: "{" + entry("w", "F32", "[3]", "[0,4]") + "}", data: four), .shapeMismatch, ["\"w\"", "[3]", "12 bytes"]),
            ("shape product overflow", handMadeFile(header: "{" + entry("w", "F32", "[4294967296,4294967296]", "[0,4]") + "}", data: four), .shapeMismatch, ["\"w\"", "Int.max"]),
            ("negative dimension", handMadeFile(header: "{" + entry("w", "F32", "[-1]") + "}", data: four), .header, ["\"w\"", "non-negative"]),
            ("fractional offset", handMadeFile(header: "{" + entry("w", "F32", "[1]", "[0,4.0]") + "}", data: four), .header, ["\"w\"", "data_offsets"]),
            ("huge offset", handMadeFile(header: "{" + entry("w", "F32", "[1]", "[0,99999999999999999999999]") + "}", data: four), .header, ["\"w\""]),
            ("duplicate name", handMadeFile(header: "{" + entry("w") + "," + entry("w") + "}", data: four), .duplicate, ["\"w\"", "twice"]),
            ("missing dtype", handMadeFile(header: #"{"w":{"shape":[1],"data_offsets":[0,4]}}"#, data: four), .header, ["\"w\"", "dtype"]),
            ("extra field", handMadeFile(header: #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}"#, data: four), .header, ["\"w\"", "\"x\""]),
            ("metadata not strings", handMadeFile(header: #"{"__metadata__":{"epoch":3}}"#), .header, ["epoch", "number"]),
            ("deep nesting", handMadeFile(header: #"{"__metadata__":"# + String(repeating: "[", count: 100_000) + "}"), .json, ["nesting"]),
            ("invalid UTF-8", handMadeFile(json: Array(#"{"__metadata__":{"a":"#.utf8) + [0x22, 0xC0, 0x80, 0x22, 0x7D, 0x7D]), .json, ["UTF-8"]),
        ]
        for (label, bytes, kind, fragments) in cases {
            guard let error = readError(bytes, in: directory) else {
                Issue.record("\(label): the reader accepted the file")
                continue
            }
            #expect(error.kind == kind, "\(label): kind \(error.kind), expected \(kind): \(error)")
            #expect(error.description.contains(directory + "/bad.safetensors"), "\(label): error does not name the file: \(error)")
            for fragment in fragments {
                #expect(error.description.contains(fragment), "\(label): \"\(fragment)\" not in: \(error)")
            }
        }
        let missing = readError([], in: directory + "/no-such-directory")
        #expect(missing?.kind == .io && missing?.description.contains("open") == true, "\(String(describing: missing))")
    }

    /// Random corruption of a valid file (flipped bytes, truncation, spliced sizes) is either
    /// read or refused with an error; never a trap. A crash here fails the whole run.
    @Test func corruptedFilesNeverCrash() throws {
        let directory = checkpointTestDirectory("st-fuzz")
        defer { removeTestDirectory(directory) }
        let header = #"{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]},"b":{"dtype":"I32","shape":[1],"data_offsets":[8,12]}}"#
        let valid = handMadeFile(header: header, data: littleEndianBytes([1, 2, 3]))
        #expect(readError(valid, in: directory) == nil)
        var generator = SystemRandomNumberGenerator()
        var refused = 0
        for _ in 0..<1500 {
            var bytes = valid
            switch Int.random(in: 0..<4, using: &generator) {
            case 0:
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            case 1:
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
            case 2:
                // Replace a header character with a JSON-significant one.
                let significant = Array(#"{}[],:"0123456789-.eE\ "#.utf8)
                bytes[Int.random(in: 8..<(8 + header.utf8.count), using: &generator)] = significant.randomElement(using: &generator)!
            default:
                let value = UInt64.random(in: 0...UInt64.max, using: &generator) >> UInt64.random(in: 0...63, using: &generator)
                for index in 0..<8 { bytes[index] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(index))) }
            }
            if readError(bytes, in: directory) != nil { refused += 1 }
        }
        #expect(refused > 500, "only \(refused) of 1500 corrupted files were refused")
    }

    /// The reference implementation (Python `safetensors`) loads our file and finds the values.
    @Test(.enabled(if: Requirement.runs(Requirement.hasPythonSafeTensors), Requirement.pythonReason))
    func pythonSafeTensorsLoadsOurFile() throws {
        try #require(Requirement.hasPythonSafeTensors, Requirement.pythonReason)
        let directory = checkpointTestDirectory("st-python")
        defer { removeTestDirectory(directory) }
        let path = directory + "/interop.safetensors"
        let weight: [Float] = (0..<24).map { Float($0) * 0.37 - 4 }
        let bias: [Float] = [Float.pi, -0.0, 1e-30, 3.4e38]
        try weight.withUnsafeBufferPointer { w in
            try bias.withUnsafeBufferPointer { b in
                try SafeTensors.write(path: path, tensors: [
                    SafeTensorsSource(name: "conv0.weight", shape: [4, 3, 2, 1], pointer: w.baseAddress!),
                    SafeTensorsSource(name: "conv0.bias", shape: [4], pointer: b.baseAddress!),
                ], metadata: [("epoch", "3"), ("note", "ü\"\n")])
            }
        }
        let referencePath = directory + "/reference.json"
        let tensors = [("conv0.weight", [4, 3, 2, 1], weight), ("conv0.bias", [4], bias)]
        writeReference(referencePath, tensors: tensors, metadata: [("epoch", "3"), ("note", "ü\"\n")])
        let (status, output) = runSafeTensorsCheck([path, "--reference", referencePath, "--exact-names"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("OK verified 2 tensors and 2 metadata pairs"), "\(output)")
        #expect(output.contains("tensor conv0.weight float32 [4, 3, 2, 1]"), "\(output)")
        // The check itself must be able to fail.
        writeReference(referencePath, tensors: tensors, metadata: [("epoch", "4")])
        let (wrongStatus, wrongOutput) = runSafeTensorsCheck([path, "--reference", referencePath])
        #expect(wrongStatus == 1 && wrongOutput.contains("FAIL metadata epoch"), "\(wrongOutput)")
        var changed = bias
        changed[2] = 2e-30
        writeReference(referencePath, tensors: [("conv0.bias", [4], changed)], metadata: [])
        let (valueStatus, valueOutput) = runSafeTensorsCheck([path, "--reference", referencePath])
        #expect(valueStatus == 1 && valueOutput.contains("FAIL conv0.bias: value at [2]"), "\(valueOutput)")
    }
}

@Suite struct JSONTests {
    @Test func parsesAndWritesStrictly() throws {
        let text = #"{"a":[1,-2.5e3,0,true,false,null],"s":"x\"\\\/\b\f\n\r\t\u00e9\ud834\udd1e","big":18446744073709551615}"#
        let value = try JSON.parse(text)
        guard case .object(let members) = value else { Issue.record("not an object"); return }
        #expect(members.map(\.0) == ["a", "s", "big"])
        guard case .string(let string)? = value["s"] else { Issue.record("no s"); return }
        #expect(string == "x\"\\/\u{8}\u{C}\n\r\té𝄞")
        guard case .number(_, let raw)? = value["big"] else { Issue.record("no big"); return }
        #expect(raw == "18446744073709551615")
        #expect(value["big"]?.nonNegativeInteger == nil, "2^64-1 does not fit in Int")
        #expect(JSON.text(try JSON.parse(JSON.text(value))) == JSON.text(value))
        #expect(JSON.text(.string("a\"b\\c\n\u{1}")) == #""a\"b\\c\n\u0001""#)
    }

    @Test func rejectsWhatRFC8259Rejects() {
        let bad = ["", "{", "[1,]", "{\"a\":1,}", "01", "-", "1.", "1e", ".5", "+1", "NaN", "Infinity", "'a'",
                   "\"\u{1}\"", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"abc", "{\"a\" 1}", "[1 2]", "tru", "nul",
                   String(repeating: "[", count: 65) + String(repeating: "]", count: 65)]
        for text in bad {
            #expect(throws: JSONError.self, "accepted \(text.debugDescription)") { _ = try JSON.parse(text) }
        }
        #expect(throws: JSONError.self) { _ = try JSON.parse([0x22, 0xED, 0xA0, 0x80, 0x22]) }  // UTF-8 surrogate
        #expect(throws: JSONError.self) { _ = try JSON.parse([0x22, 0xC0, 0xAF, 0x22]) }  // overlong
        #expect(throws: Never.self) { _ = try JSON.parse(String(repeating: "[", count: 64) + String(repeating: "]", count: 64)) }
    }
}
