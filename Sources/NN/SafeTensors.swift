import Platform

// The format (https://github.com/huggingface/safetensors):
//     [8 bytes]  N, the header size, unsigned little-endian
//     [N bytes]  UTF-8 JSON object: name -> {"dtype", "shape", "data_offsets": [begin, end]},
//                plus an optional "__metadata__": {string: string}; may end in spaces
//     [rest]     the data section; offsets are relative to its first byte, tensors are
//                contiguous and cover it exactly, each tensor row-major little-endian.
// This writer pads the header with spaces so the data section starts 8-byte aligned.

#if !_endian(little)
#error("safetensors data is little-endian and is written straight from Float memory: big-endian hosts need a byte swap")
#endif

/// An element type named in a safetensors header. Only F32 is read as numbers; the others
/// are recognised so a file holding them can be listed and reported by name.
public enum SafeTensorsDType: Equatable {
    case bool, u8, i8, f8e5m2, f8e4m3, i16, u16, f16, bf16, i32, u32, f32, f64, i64, u64

    /// The dtype for a header name ("F32"); nil when unknown.
    public init?(name: String) {
        switch name {
        case "BOOL": self = .bool
        case "U8": self = .u8
        case "I8": self = .i8
        case "F8_E5M2": self = .f8e5m2
        case "F8_E4M3": self = .f8e4m3
        case "I16": self = .i16
        case "U16": self = .u16
        case "F16": self = .f16
        case "BF16": self = .bf16
        case "I32": self = .i32
        case "U32": self = .u32
        case "F32": self = .f32
        case "F64": self = .f64
        case "I64": self = .i64
        case "U64": self = .u64
        default: return nil
        }
    }

    /// The header name ("F32").
    public var name: String {
        switch self {
        case .bool: return "BOOL"
        case .u8: return "U8"
        case .i8: return "I8"
        case .f8e5m2: return "F8_E5M2"
        case .f8e4m3: return "F8_E4M3"
        case .i16: return "I16"
        case .u16: return "U16"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .i32: return "I32"
        case .u32: return "U32"
        case .f32: return "F32"
        case .f64: return "F64"
        case .i64: return "I64"
        case .u64: return "U64"
        }
    }

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .f64, .i64, .u64: return 8
        }
    }
}

/// A safetensors or checkpoint failure. The message names the file and, when there is one,
/// the tensor; for system-call failures it names the call and the path.
public struct SafeTensorsError: Error, CustomStringConvertible {
    public enum Kind: Equatable {
        /// A system call failed (open, read, write, fsync, rename, ...); see `system`.
        case io
        /// The file is shorter than its 8-byte size field or than the header it announces.
        case truncated
        /// The header size field is impossible (beyond the file or `SafeTensors.maximumHeaderBytes`).
        case headerSize
        /// The header is not valid JSON (or not UTF-8).
        case json
        /// The header is JSON but not a valid safetensors header (wrong types, missing keys).
        case header
        /// A tensor names a dtype this reader does not know.
        case unknownDType
        /// A tensor's shape does not match its byte span.
        case shapeMismatch
        /// Offsets outside the data section, overlapping, leaving gaps, or reversed.
        case offsets
        /// A tensor name or metadata key appears twice.
        case duplicate
        /// A requested tensor is not in the file.
        case notFound
        /// A tensor was requested as F32 but is stored as another dtype.
        case wrongDType
        /// Checkpoint load: the file's tensors do not match the model; `problems` lists all.
        case mismatch
        /// The caller asked for something impossible (bad names, wrong buffer size).
        case invalidArgument
    }

    public let kind: Kind
    /// The file the error is about.
    public let path: String
    /// The tensor the error is about; empty when none.
    public let tensor: String
    public let message: String
    /// For `.mismatch`: one line per unknown, missing, mis-typed or mis-shaped tensor.
    public let problems: [String]
    /// For `.io`: the failed system call.
    public let system: SystemError?

    public init(_ kind: Kind, path: String, tensor: String = "", _ message: String, problems: [String] = [],
                system: SystemError? = nil) {
        self.kind = kind
        self.path = path
        self.tensor = tensor
        self.message = message
        self.problems = problems
        self.system = system
    }

    /// Wraps a failed system call; its text already names the call and the path.
    public init(_ system: SystemError, path: String) {
        self.init(.io, path: path, system.description, system: system)
    }

    public var description: String {
        if kind == .io { return message }
        var text = path
        if !tensor.isEmpty { text += ": tensor \"\(tensor)\"" }
        return text + ": " + message
    }
}

/// One tensor listed in a header. Offsets are relative to the data section.
public struct SafeTensorsEntry {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    public let begin: Int
    public let end: Int

    public var byteCount: Int { end - begin }
    /// Product of the shape (1 for a scalar).
    public var elementCount: Int { byteCount / dtype.byteSize }
}

/// A parsed and fully validated header.
public struct SafeTensorsHeader {
    /// Tensors in header order.
    public let entries: [SafeTensorsEntry]
    /// The "__metadata__" pairs in header order (empty when absent).
    public let metadata: [(String, String)]
    /// Size of the data section in bytes; the entries cover it exactly.
    public let dataSize: Int
    let index: [String: Int]

    /// The entry named `name`, if any.
    public func entry(named name: String) -> SafeTensorsEntry? {
        guard let position = index[name] else { return nil }
        return entries[position]
    }

    /// Parses and validates the JSON header `json` of a file whose data section holds
    /// `dataSize` bytes: JSON syntax, types of every field, known dtypes, shape x dtype size ==
    /// byte span, offsets inside the data section, contiguous without overlap or gap, no
    /// duplicate names. `path` only labels errors. Never traps on malformed input.
    public static func parse(json: UnsafeBufferPointer<UInt8>, dataSize: Int, path: String) throws(SafeTensorsError) -> SafeTensorsHeader {
        guard json.count > 0, json[0] == UInt8(ascii: "{") else {
            throw SafeTensorsError(.header, path: path, "the header does not start with '{'")
        }
        let root: JSONValue
        do { root = try JSON.parse(json) } catch {
            throw SafeTensorsError(.json, path: path, "header JSON: \(error.description) (offset within the header)")
        }
        guard case .object(let members) = root else {
            throw SafeTensorsError(.header, path: path, "the header is not a JSON object")
        }
        var entries: [SafeTensorsEntry] = []
        var metadata: [(String, String)] = []
        var sawMetadata = false
        var index: [String: Int] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                if sawMetadata { throw SafeTensorsError(.duplicate, path: path, "\"__metadata__\" appears twice") }
                sawMetadata = true
                metadata = try parseMetadata(value, path: path)
                continue
            }
            let entry = try parseEntry(name: name, value, dataSize: dataSize, path: path)
            if index[name] != nil { throw SafeTensorsError(.duplicate, path: path, tensor: name, "appears twice in the header") }
            index[name] = entries.count
            entries.append(entry)
        }
        try checkContiguous(entries, dataSize: dataSize, path: path)
        return SafeTensorsHeader(entries: entries, metadata: metadata, dataSize: dataSize, index: index)
    }

    static func parseMetadata(_ value: JSONValue, path: String) throws(SafeTensorsError) -> [(String, String)] {
        guard case .object(let pairs) = value else {
            throw SafeTensorsError(.header, path: path, "\"__metadata__\" is a \(value.kindName), not an object")
        }
        var result: [(String, String)] = []
        var seen: [String: Bool] = [:]
        for (key, item) in pairs {
            guard case .string(let text) = item else {
                throw SafeTensorsError(.header, path: path, "metadata \"\(key)\" is a \(item.kindName), not a string")
            }
            if seen[key] != nil { throw SafeTensorsError(.duplicate, path: path, "metadata key \"\(key)\" appears twice") }
            seen[key] = true
            result.append((key, text))
        }
        return result
    }

    static func parseEntry(name: String, _ value: JSONValue, dataSize: Int, path: String) throws(SafeTensorsError) -> SafeTensorsEntry {
        guard case .object(let fields) = value else {
            throw SafeTensorsError(.header, path: path, tensor: name, "is a \(value.kindName), not an object")
        }
        var dtypeValue: JSONValue? = nil, shapeValue: JSONValue? = nil, offsetsValue: JSONValue? = nil
        for (key, field) in fields {
            switch key {
            case "dtype" where dtypeValue == nil: dtypeValue = field
            case "shape" where shapeValue == nil: shapeValue = field
            case "data_offsets" where offsetsValue == nil: offsetsValue = field
            case "dtype", "shape", "data_offsets":
                throw SafeTensorsError(.duplicate, path: path, tensor: name, "field \"\(key)\" appears twice")
            default:
                throw SafeTensorsError(.header, path: path, tensor: name, "unexpected field \"\(key)\"")
            }
        }
        guard case .string(let dtypeName)? = dtypeValue else {
            throw SafeTensorsError(.header, path: path, tensor: name, "\"dtype\" is missing or not a string")
        }
        guard let dtype = SafeTensorsDType(name: dtypeName) else {
            throw SafeTensorsError(.unknownDType, path: path, tensor: name, "unknown dtype \"\(dtypeName)\"")
        }
        guard case .array(let dimensions)? = shapeValue else {
            throw SafeTensorsError(.header, path: path, tensor: name, "\"shape\" is missing or not an array")
        }
        var shape: [Int] = []
        var elements = 1
        var overflow = false
        for dimension in dimensions {
            guard let size = dimension.nonNegativeInteger else {
                throw SafeTensorsError(.header, path: path, tensor: name, "shape entries must be non-negative integers")
            }
            shape.append(size)
            let (product, overflowed) = elements.multipliedReportingOverflow(by: size)
            elements = product
            overflow = overflow || overflowed
        }
        let (bytes, bytesOverflowed) = elements.multipliedReportingOverflow(by: dtype.byteSize)
        guard case .array(let offsets)? = offsetsValue, offsets.count == 2,
              let begin = offsets[0].nonNegativeInteger, let end = offsets[1].nonNegativeInteger else {
            throw SafeTensorsError(.header, path: path, tensor: name,
                                   "\"data_offsets\" is missing or not two non-negative integers")
        }
        guard begin <= end else {
            throw SafeTensorsError(.offsets, path: path, tensor: name, "data_offsets [\(begin), \(end)] end before they begin")
        }
        guard end <= dataSize else {
            throw SafeTensorsError(.offsets, path: path, tensor: name,
                                   "data_offsets [\(begin), \(end)] reach past the data section (\(dataSize) bytes)")
        }
        guard !overflow && !bytesOverflowed && bytes == end - begin else {
            throw SafeTensorsError(.shapeMismatch, path: path, tensor: name,
                                   "shape \(shapeText(shape)) of \(dtype.name) needs \(overflow || bytesOverflowed ? "more than Int.max" : "\(bytes)") bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
        }
        return SafeTensorsEntry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// Sorted by offset, the tensors must tile [0, dataSize) exactly.
    static func checkContiguous(_ entries: [SafeTensorsEntry], dataSize: Int, path: String) throws(SafeTensorsError) {
        let order = entries.indices.sorted { left, right in
            (entries[left].begin, entries[left].end) < (entries[right].begin, entries[right].end)
        }
        var covered = 0
        var previous = ""
        for position in order {
            let entry = entries[position]
            if entry.begin < covered {
                throw SafeTensorsError(.offsets, path: path, tensor: entry.name,
                                       "data_offsets [\(entry.begin), \(entry.end)] overlap tensor \"\(previous)\" (which ends at \(covered))")
            }
            if entry.begin > covered {
                throw SafeTensorsError(.offsets, path: path, tensor: entry.name,
                                       "data_offsets [\(entry.begin), \(entry.end)] leave a gap of \(entry.begin - covered) bytes after \(previous.isEmpty ? "the start of the data section" : "tensor \"\(previous)\"")")
            }
            covered = entry.end
            previous = entry.name
        }
        if covered != dataSize {
            throw SafeTensorsError(.offsets, path: path,
                                   "the tensors cover \(covered) bytes but the data section holds \(dataSize)")
        }
    }
}

/// "[2, 3]".
func shapeText(_ shape: [Int]) -> String {
    var text = "["
    for (index, size) in shape.enumerated() { text += (index > 0 ? ", " : "") + "\(size)" }
    return text + "]"
}

/// An open safetensors file with its validated header; tensors are read on request with
/// pread, straight into the caller's memory.
public final class SafeTensorsReader {
    public let path: String
    public let header: SafeTensorsHeader
    /// File offset of the data section (8 + header size).
    public let dataOffset: Int
    let file: FileHandle

    /// Opens `path` and reads and validates its header (see `SafeTensorsHeader.parse`).
    public init(path: String) throws(SafeTensorsError) {
        self.path = path
        let file: FileHandle
        do { file = try FileHandle.openForReading(path) } catch { throw SafeTensorsError(error, path: path) }
        do throws(SafeTensorsError) {
            let fileSize: Int
            do { fileSize = Int(try FileSystem.size(of: path)) } catch { throw SafeTensorsError(error, path: path) }
            guard fileSize >= 8 else {
                throw SafeTensorsError(.truncated, path: path, "the file holds \(fileSize) bytes, fewer than the 8-byte header size")
            }
            var sizeField: UInt64 = 0
            do { try file.readFully(into: &sizeField, count: 8, at: 0) } catch { throw SafeTensorsError(error, path: path) }
            let headerSize = UInt64(littleEndian: sizeField)
            guard headerSize <= UInt64(SafeTensors.maximumHeaderBytes) else {
                throw SafeTensorsError(.headerSize, path: path,
                                       "header size \(headerSize) exceeds the \(SafeTensors.maximumHeaderBytes)-byte limit")
            }
            guard headerSize <= UInt64(fileSize - 8) else {
                throw SafeTensorsError(.truncated, path: path,
                                       "header size \(headerSize) exceeds the \(fileSize - 8) bytes after the size field")
            }
            let count = Int(headerSize)
            var json = [UInt8](repeating: 0, count: count)
            var readError: SystemError? = nil
            json.withUnsafeMutableBytes { raw in
                guard count > 0 else { return }
                do throws(SystemError) { try file.readFully(into: raw.baseAddress!, count: count, at: 8) } catch { readError = error }
            }
            if let readError { throw SafeTensorsError(readError, path: path) }
            var parsed: Result<SafeTensorsHeader, SafeTensorsError> = .failure(SafeTensorsError(.header, path: path, "empty"))
            json.withUnsafeBufferPointer { buffer in
                do throws(SafeTensorsError) {
                    parsed = .success(try SafeTensorsHeader.parse(json: buffer, dataSize: fileSize - 8 - count, path: path))
                } catch { parsed = .failure(error) }
            }
            header = try parsed.get()
            dataOffset = 8 + count
            self.file = file
        } catch {
            try? file.close()
            throw error
        }
    }

    deinit { try? file.close() }

    public var entries: [SafeTensorsEntry] { header.entries }
    public var metadata: [(String, String)] { header.metadata }

    /// The F32 entry `name`, or an error naming it when absent or of another dtype.
    public func floatEntry(_ name: String) throws(SafeTensorsError) -> SafeTensorsEntry {
        guard let entry = header.entry(named: name) else {
            throw SafeTensorsError(.notFound, path: path, tensor: name, "is not in the file")
        }
        guard entry.dtype == .f32 else {
            throw SafeTensorsError(.wrongDType, path: path, tensor: name, "is stored as \(entry.dtype.name); only F32 can be read as Float")
        }
        return entry
    }

    /// Reads F32 tensor `name` into `destination`, which must hold exactly its element count.
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws(SafeTensorsError) {
        let entry = try floatEntry(name)
        guard entry.elementCount == count else {
            throw SafeTensorsError(.invalidArgument, path: path, tensor: name,
                                   "holds \(entry.elementCount) values but the destination holds \(count)")
        }
        guard count > 0 else { return }
        do { try file.readFully(into: destination, count: entry.byteCount, at: Int64(dataOffset + entry.begin)) }
        catch { throw SafeTensorsError(error, path: path) }
    }

    /// F32 tensor `name` as an array.
    public func floats(_ name: String) throws(SafeTensorsError) -> [Float] {
        let entry = try floatEntry(name)
        var values = [Float](repeating: 0, count: entry.elementCount)
        var failure: SafeTensorsError? = nil
        values.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            do throws(SafeTensorsError) { try read(name, into: base, count: buffer.count) } catch { failure = error }
        }
        if let failure { throw failure }
        return values
    }

    /// The stored bytes of tensor `name`, whatever its dtype.
    public func bytes(_ name: String) throws(SafeTensorsError) -> [UInt8] {
        guard let entry = header.entry(named: name) else {
            throw SafeTensorsError(.notFound, path: path, tensor: name, "is not in the file")
        }
        var result = [UInt8](repeating: 0, count: entry.byteCount)
        var failure: SystemError? = nil
        result.withUnsafeMutableBytes { raw in
            guard raw.count > 0 else { return }
            do throws(SystemError) { try file.readFully(into: raw.baseAddress!, count: raw.count, at: Int64(dataOffset + entry.begin)) }
            catch { failure = error }
        }
        if let failure { throw SafeTensorsError(failure, path: path) }
        return result
    }
}

/// A Float tensor to write: its name, shape and where its values are.
public struct SafeTensorsSource {
    public let name: String
    public let shape: [Int]
    public let pointer: UnsafePointer<Float>

    public init(name: String, shape: [Int], pointer: UnsafePointer<Float>) {
        self.name = name
        self.shape = shape
        self.pointer = pointer
    }

    public var count: Int { shape.reduce(1, *) }
}

/// Writing safetensors files.
public enum SafeTensors {
    /// Headers larger than this are refused when reading (the reference implementation's limit),
    /// so a corrupt size field cannot make the reader allocate gigabytes.
    public static let maximumHeaderBytes = 100_000_000

    /// The first 8 + N bytes of a file holding F32 tensors `tensors` (name, shape) stored
    /// contiguously in the given order, and `metadata`: the little-endian size N and the
    /// JSON header padded with spaces so that 8 + N is a multiple of 8.
    public static func encodeHeader(tensors: [(name: String, shape: [Int])], metadata: [(String, String)],
                                    path: String = "") throws(SafeTensorsError) -> [UInt8] {
        var members: [(String, JSONValue)] = []
        var names: [String: Bool] = [:]
        if !metadata.isEmpty {
            var pairs: [(String, JSONValue)] = []
            for (key, value) in metadata {
                if names[key] != nil { throw SafeTensorsError(.duplicate, path: path, "metadata key \"\(key)\" given twice") }
                names[key] = true
                pairs.append((key, .string(value)))
            }
            members.append(("__metadata__", .object(pairs)))
        }
        names = ["__metadata__": true]
        var offset = 0
        for tensor in tensors {
            if names[tensor.name] != nil {
                throw SafeTensorsError(tensor.name == "__metadata__" ? .invalidArgument : .duplicate, path: path, tensor: tensor.name,
                                       tensor.name == "__metadata__" ? "is reserved for metadata" : "given twice")
            }
            names[tensor.name] = true
            var bytes = SafeTensorsDType.f32.byteSize
            var overflow = false
            for size in tensor.shape {
                guard size >= 0 else { throw SafeTensorsError(.invalidArgument, path: path, tensor: tensor.name, "has a negative dimension") }
                let (product, overflowed) = bytes.multipliedReportingOverflow(by: size)
                bytes = product
                overflow = overflow || overflowed
            }
            let (end, endOverflowed) = offset.addingReportingOverflow(bytes)
            if overflow || endOverflowed {
                throw SafeTensorsError(.invalidArgument, path: path, tensor: tensor.name, "shape \(shapeText(tensor.shape)) is too large")
            }
            members.append((tensor.name, .object([
                ("dtype", .string("F32")),
                ("shape", .array(tensor.shape.map { JSONValue.integer($0) })),
                ("data_offsets", .array([.integer(offset), .integer(end)])),
            ])))
            offset = end
        }
        var json: [UInt8] = []
        JSON.write(.object(members), to: &json)
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        var result: [UInt8] = []
        result.reserveCapacity(8 + json.count)
        var size = UInt64(json.count)
        for _ in 0..<8 { result.append(UInt8(truncatingIfNeeded: size)); size >>= 8 }
        result.append(contentsOf: json)
        return result
    }

    /// Writes `tensors` and `metadata` to `path` atomically: the bytes go to "<path>.tmp" in
    /// the same directory, which is fsynced, renamed over `path`, and the directory fsynced.
    /// On any failure the temporary file is removed, a previous file at `path` is untouched,
    /// and the error names the call and path that failed. Each tensor is written straight
    /// from its pointer (no copy of the weights).
    public static func write(path: String, tensors: [SafeTensorsSource], metadata: [(String, String)]) throws(SafeTensorsError) {
        let header = try encodeHeader(tensors: tensors.map { (name: $0.name, shape: $0.shape) }, metadata: metadata, path: path)
        let temporary = path + ".tmp"
        do throws(SystemError) {
            let file = try FileHandle.create(temporary)
            do throws(SystemError) {
                var headerError: SystemError? = nil
                header.withUnsafeBytes { raw in
                    do throws(SystemError) { try file.writeAll(raw.baseAddress!, count: raw.count) } catch { headerError = error }
                }
                if let headerError { throw headerError }
                for tensor in tensors where tensor.count > 0 {
                    try file.writeAll(UnsafeRawPointer(tensor.pointer), count: tensor.count * MemoryLayout<Float>.size)
                }
                try file.sync()
            } catch {
                try? file.close()
                throw error
            }
            try file.close()
            try FileSystem.rename(temporary, to: path)
        } catch {
            try? FileSystem.remove(temporary)
            throw SafeTensorsError(error, path: path)
        }
        // The rename is durable only once the directory entry is on the device.
        do throws(SystemError) {
            let directory = try FileHandle.openForReading(directoryName(of: path))
            defer { try? directory.close() }
            try directory.sync()
        } catch {
            throw SafeTensorsError(error, path: path)
        }
    }

    /// The directory holding `path` ("." for a bare file name).
    static func directoryName(of path: String) -> String {
        let bytes = Array(path.utf8)
        guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == 0 { return "/" }
        return String(decoding: bytes[0..<slash], as: UTF8.self)
    }
}
