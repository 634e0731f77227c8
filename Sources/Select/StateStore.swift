import Platform

/// A per-sample state file that could not be written or read back: which file, and why.
/// A corrupt, torn or mismatched file always ends here, never in a crash or in mixed state.
public struct SelectError: Error, CustomStringConvertible {
    public enum Kind {
        /// A system call failed (open, write, fsync, rename, ...).
        case system(SystemError)
        /// The file ends before the header or the records are complete (a torn write).
        case truncated(expectedBytes: Int, gotBytes: Int)
        /// The file is longer than its header says.
        case trailingData(expectedBytes: Int, gotBytes: Int)
        /// The first 8 bytes are not "LTNRSEL1".
        case badMagic
        /// The header's CRC-32 does not match its bytes.
        case headerChecksum(stored: UInt32, computed: UInt32)
        /// The records' CRC-32 does not match their bytes.
        case recordChecksum(stored: UInt32, computed: UInt32)
        /// A format version this build cannot read.
        case unsupportedVersion(found: UInt32)
        /// The file belongs to another policy (raw `PolicyID` values).
        case policyMismatch(expected: UInt16, found: UInt16)
        case sampleCountMismatch(expected: Int, found: Int)
        case strideMismatch(expected: Int, found: Int)
        /// The file is intact but holds another epoch's state.
        case epochMismatch(expected: Int, found: Int)
        /// No generation (current, previous, temporary) holds the wanted epoch intact;
        /// one line per file says why.
        case noUsableGeneration(epoch: Int, reasons: [String])
        /// A caller error (stride above 32 bytes, negative counts).
        case invalidArgument(String)
    }

    /// The file (or directory) the error is about.
    public let path: String
    public let kind: Kind

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public init(_ error: SystemError) {
        path = error.subject
        kind = .system(error)
    }

    public var description: String {
        switch kind {
        case .system(let error):
            return error.description
        case .truncated(let expected, let got):
            return "\(path): truncated selection state: expected \(expected) bytes, the file has \(got) (interrupted write?)"
        case .trailingData(let expected, let got):
            return "\(path): selection state has \(got) bytes, the header describes \(expected)"
        case .badMagic:
            return "\(path): not a selection state file (magic is not LTNRSEL1)"
        case .headerChecksum(let stored, let computed):
            return "\(path): selection state header is corrupt (CRC-32 stored \(stored), computed \(computed))"
        case .recordChecksum(let stored, let computed):
            return "\(path): selection state records are corrupt (CRC-32 stored \(stored), computed \(computed))"
        case .unsupportedVersion(let found):
            return "\(path): selection state format version \(found) is not supported (this build reads \(StateStore.version))"
        case .policyMismatch(let expected, let found):
            return "\(path): selection state belongs to policy id \(found), the run uses policy id \(expected)"
        case .sampleCountMismatch(let expected, let found):
            return "\(path): selection state has \(found) samples, the training set has \(expected)"
        case .strideMismatch(let expected, let found):
            return "\(path): selection state records are \(found) bytes, the policy uses \(expected)"
        case .epochMismatch(let expected, let found):
            return "\(path): selection state is from epoch \(found), the checkpoint is at epoch \(expected)"
        case .noUsableGeneration(let epoch, let reasons):
            var text = "\(path): no intact selection state for epoch \(epoch)"
            for reason in reasons { text += "\n  " + reason }
            return text
        case .invalidArgument(let detail):
            return "\(path): \(detail)"
        }
    }
}

/// Which file a state was loaded from.
public enum StateGeneration: Equatable {
    /// `selection.state`: the newest completed save.
    case current
    /// `selection.state.prev`: the save before it.
    case previous
    /// `selection.state.tmp`: a complete save interrupted between its two renames.
    case temporary
}

/// The fixed 64-byte header of a state file (all integers little-endian; docs/selection-state.md).
public struct StateHeader: Equatable {
    public var version: UInt32
    public var policy: UInt16
    public var sampleCount: Int
    public var stride: Int
    public var epoch: Int
    public var recordsChecksum: UInt32
}

/// The per-sample state file: one 64-byte header, then `sampleCount` records of `stride` bytes.
/// `save` keeps two generations (`selection.state` and `selection.state.prev`) and replaces
/// files only by rename after fsync, so a crash at any moment leaves the previous or the new
/// epoch's state intact, never a mix; `load` picks the generation whose header epoch matches
/// the checkpoint and verifies both CRC-32s before it touches the policy.
/// The encode buffer is allocated on the first save and reused (grown only if the size grows).
public final class StateStore {
    public static let magic: [UInt8] = Array("LTNRSEL1".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 64
    public static let maximumStride = 32
    public static let fileName = "selection.state"

    private var buffer: UnsafeMutableRawPointer?
    private var capacity = 0

    /// A failure `save` simulates at one of its steps, as a full disk, a failing device or a
    /// refused rename would cause; for tests of crash safety. Checked once per step of a save
    /// (once per epoch), never on the training hot path.
    public enum InjectedFault: Equatable {
        case none
        /// Only the first `bytes` of the temporary file are written, then the write fails (ENOSPC).
        case shortWrite(bytes: Int)
        /// fsync of the complete temporary file fails (EIO).
        case failedSync
        /// Renaming the current file to `.prev` fails (EIO).
        case failedRotation
        /// Renaming the temporary file to current fails, after the rotation (EIO).
        case failedRename
        /// fsync of the directory fails, after both renames (EIO).
        case failedDirectorySync
    }

    /// Every later `save` fails at this step until reset to `.none`.
    public var injectedFault = InjectedFault.none

    public init() {}

    deinit { buffer?.deallocate() }

    public static func currentPath(directory: String) -> String { join(directory, fileName) }
    public static func previousPath(directory: String) -> String { join(directory, fileName + ".prev") }
    public static func temporaryPath(directory: String) -> String { join(directory, fileName + ".tmp") }

    /// Writes `policy`'s per-sample state after `epoch` and rotates the generations:
    /// temp written + fsync, current -> .prev, temp -> current, fsync of the directory.
    public func save<Policy: SelectionPolicy>(_ policy: Policy, sampleCount: Int, epoch: Int,
                                              directory: String) throws(SelectError) {
        let stride = policy.stateStride
        let current = StateStore.currentPath(directory: directory)
        guard stride >= 0 && stride <= StateStore.maximumStride else {
            throw SelectError(path: current, kind: .invalidArgument("state stride \(stride) is outside 0...\(StateStore.maximumStride) bytes"))
        }
        guard sampleCount >= 0 && epoch >= 0 else {
            throw SelectError(path: current, kind: .invalidArgument("negative sample count \(sampleCount) or epoch \(epoch)"))
        }
        let temporary = StateStore.temporaryPath(directory: directory)
        let previous = StateStore.previousPath(directory: directory)
        let rotate = try prepareGenerations(current: current, temporary: temporary, epoch: epoch, directory: directory)
        let recordBytes = sampleCount * stride
        let total = StateStore.headerSize + recordBytes
        let base = reserve(total)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: StateStore.headerSize)
        let records = base + StateStore.headerSize
        for index in 0..<sampleCount {
            policy.encodeState(index: index, into: records + index * stride)
        }
        let header = StateHeader(version: StateStore.version, policy: policy.id.rawValue, sampleCount: sampleCount,
                                 stride: stride, epoch: epoch, recordsChecksum: Checksum.crc32(records, count: recordBytes))
        StateStore.writeHeader(header, into: base)

        do throws(SystemError) {
            let file = try FileHandle.create(temporary)
            do throws(SystemError) {
                if case .shortWrite(let bytes) = injectedFault {
                    try file.writeAll(UnsafeRawPointer(base), count: min(max(bytes, 0), total))
                    throw SystemError(call: "write", subject: temporary, code: Errno.noSpace)
                }
                try file.writeAll(UnsafeRawPointer(base), count: total)
                if injectedFault == .failedSync { throw SystemError(call: "fsync", subject: temporary, code: Errno.ioError) }
                try file.sync()
            } catch {
                try? file.close()
                throw error
            }
            try file.close()
            if rotate {
                if injectedFault == .failedRotation { throw SystemError(call: "rename", subject: current, code: Errno.ioError) }
                try FileSystem.rename(current, to: previous)
            }
            if injectedFault == .failedRename { throw SystemError(call: "rename", subject: temporary, code: Errno.ioError) }
            try FileSystem.rename(temporary, to: current)
            // The renames are durable only once the directory entry is on the device.
            let directoryHandle = try FileHandle.openForReading(directory.isEmpty ? "." : directory)
            defer { try? directoryHandle.close() }
            if injectedFault == .failedDirectorySync { throw SystemError(call: "fsync", subject: directory, code: Errno.ioError) }
            try directoryHandle.sync()
        } catch {
            throw SelectError(error)
        }
    }

    /// Before a save of `epoch`: makes sure the rotation can only ever push an intact, older
    /// generation to `.prev`, so the generation a run continues from survives any crash of
    /// this save. Returns whether `selection.state` is to be rotated to `.prev`.
    /// - A complete temporary file of an older epoch than this one, and newer than the current
    ///   file (or with no usable current file), is what a save interrupted before or between its
    ///   renames left, and what a resume may have loaded: it first becomes the current file, as
    ///   writing the new temporary file would destroy it.
    /// - A current file from this epoch or a later one (saved, but the crash came before the
    ///   checkpoint, so the run resumed from `.prev`) or a torn or corrupt one is removed, not
    ///   rotated: rotating it would replace the `.prev` generation the run resumed from.
    func prepareGenerations(current: String, temporary: String, epoch: Int, directory: String) throws(SelectError) -> Bool {
        do throws(SystemError) {
            let currentEpoch = FileSystem.exists(current) ? intactEpoch(path: current) : nil
            if FileSystem.exists(temporary), let temporaryEpoch = intactEpoch(path: temporary), temporaryEpoch < epoch {
                var promote = true
                if let currentEpoch, currentEpoch >= temporaryEpoch && currentEpoch < epoch { promote = false }
                if promote {
                    try FileSystem.rename(temporary, to: current)
                    return true
                }
            }
            guard FileSystem.exists(current) else { return false }
            if let currentEpoch, currentEpoch < epoch { return true }
            try FileSystem.remove(current)
            return false
        } catch {
            throw SelectError(error)
        }
    }

    /// The header epoch of `path` when the whole file is intact (sizes and both CRC-32s), else nil.
    func intactEpoch(path: String) -> Int? {
        let size: Int
        let file: FileHandle
        do throws(SystemError) {
            size = Int(try FileSystem.size(of: path))
            file = try FileHandle.openForReading(path)
        } catch {
            return nil
        }
        defer { try? file.close() }
        if size < StateStore.headerSize { return nil }
        let base = reserve(size)
        do throws(SystemError) { try file.readFully(into: base, count: size, at: 0) } catch { return nil }
        let header: StateHeader
        do throws(SelectError) { header = try StateStore.parseHeader(UnsafeRawPointer(base), path: path) } catch { return nil }
        if size != StateStore.headerSize + header.sampleCount * header.stride { return nil }
        let computed = Checksum.crc32(UnsafeRawPointer(base) + StateStore.headerSize, count: size - StateStore.headerSize)
        return computed == header.recordsChecksum ? header.epoch : nil
    }

    /// Restores `policy` from the generation whose header epoch is `epoch` (current, then
    /// previous, then a complete temporary file). A file that is torn, corrupt or from another
    /// epoch is passed over; if none qualifies the error lists every file and why.
    /// A mismatch of policy, sample count or stride is reported as such (not as corruption).
    @discardableResult
    public func load<Policy: SelectionPolicy>(directory: String, epoch: Int, sampleCount: Int,
                                              into policy: inout Policy) throws(SelectError) -> StateGeneration {
        let candidates: [(StateGeneration, String)] = [
            (.current, StateStore.currentPath(directory: directory)),
            (.previous, StateStore.previousPath(directory: directory)),
            (.temporary, StateStore.temporaryPath(directory: directory)),
        ]
        var reasons: [String] = []
        var configurationError: SelectError?
        for (generation, path) in candidates {
            if !FileSystem.exists(path) {
                if generation != .temporary { reasons.append(path + ": missing") }
                continue
            }
            do throws(SelectError) {
                let header = try readVerified(path: path, policy: policy.id.rawValue, sampleCount: sampleCount,
                                              stride: policy.stateStride, epoch: epoch)
                let records = UnsafeRawPointer(buffer!) + StateStore.headerSize
                for index in 0..<header.sampleCount {
                    policy.decodeState(index: index, from: records + index * header.stride)
                }
                return generation
            } catch {
                switch error.kind {
                case .policyMismatch, .sampleCountMismatch, .strideMismatch, .unsupportedVersion:
                    if configurationError == nil { configurationError = error }
                default: break
                }
                reasons.append(error.description)
            }
        }
        // An intact file written for another policy or training set: say that, not "corrupt".
        if let configurationError { throw configurationError }
        throw SelectError(path: StateStore.currentPath(directory: directory),
                          kind: .noUsableGeneration(epoch: epoch, reasons: reasons))
    }

    /// Reads and checks only the header of `path` (magic, header CRC-32, version).
    public static func readHeader(path: String) throws(SelectError) -> StateHeader {
        var bytes = [UInt8](repeating: 0, count: headerSize)
        let size: Int
        readFile: do throws(SystemError) {
            size = Int(try FileSystem.size(of: path))
            if size < headerSize { break readFile }
            let file = try FileHandle.openForReading(path)
            defer { try? file.close() }
            try readInto(&bytes, file: file)
        } catch {
            throw SelectError(error)
        }
        if size < headerSize { throw SelectError(path: path, kind: .truncated(expectedBytes: headerSize, gotBytes: size)) }
        var result: Result<StateHeader, SelectError> = .failure(SelectError(path: path, kind: .badMagic))
        bytes.withUnsafeBytes { raw in
            do throws(SelectError) { result = .success(try parseHeader(raw.baseAddress!, path: path)) }
            catch { result = .failure(error) }
        }
        return try result.get()
    }

    // MARK: - Private

    private func reserve(_ bytes: Int) -> UnsafeMutableRawPointer {
        if let buffer, capacity >= bytes { return buffer }
        buffer?.deallocate()
        capacity = max(bytes, StateStore.headerSize)
        let fresh = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 16)
        buffer = fresh
        return fresh
    }

    /// Reads `path` whole into the buffer and checks everything; the records are decoded only
    /// after this returns, so a policy never sees bytes that failed a check.
    private func readVerified(path: String, policy: UInt16, sampleCount: Int, stride: Int,
                              epoch: Int) throws(SelectError) -> StateHeader {
        let size: Int
        let file: FileHandle
        do throws(SystemError) {
            size = Int(try FileSystem.size(of: path))
            file = try FileHandle.openForReading(path)
        } catch {
            throw SelectError(error)
        }
        defer { try? file.close() }
        if size < StateStore.headerSize {
            throw SelectError(path: path, kind: .truncated(expectedBytes: StateStore.headerSize, gotBytes: size))
        }
        let base = reserve(max(size, StateStore.headerSize))
        do throws(SystemError) {
            try file.readFully(into: base, count: size, at: 0)
        } catch {
            throw SelectError(error)
        }
        let header = try StateStore.parseHeader(UnsafeRawPointer(base), path: path)
        if header.policy != policy { throw SelectError(path: path, kind: .policyMismatch(expected: policy, found: header.policy)) }
        if header.sampleCount != sampleCount {
            throw SelectError(path: path, kind: .sampleCountMismatch(expected: sampleCount, found: header.sampleCount))
        }
        if header.stride != stride { throw SelectError(path: path, kind: .strideMismatch(expected: stride, found: header.stride)) }
        let expected = StateStore.headerSize + header.sampleCount * header.stride
        if size < expected { throw SelectError(path: path, kind: .truncated(expectedBytes: expected, gotBytes: size)) }
        if size > expected { throw SelectError(path: path, kind: .trailingData(expectedBytes: expected, gotBytes: size)) }
        let computed = Checksum.crc32(UnsafeRawPointer(base) + StateStore.headerSize, count: expected - StateStore.headerSize)
        if computed != header.recordsChecksum {
            throw SelectError(path: path, kind: .recordChecksum(stored: header.recordsChecksum, computed: computed))
        }
        if header.epoch != epoch { throw SelectError(path: path, kind: .epochMismatch(expected: epoch, found: header.epoch)) }
        return header
    }

    // Header layout (docs/selection-state.md): 0 magic[8], 8 version u32, 12 policy u16,
    // 14 reserved u16, 16 sample count u64, 24 stride u32, 28 reserved u32, 32 epoch i64,
    // 40 record bytes u64, 48 records CRC-32 u32, 52..60 reserved, 60 header CRC-32 of bytes 0..<60.
    private static func writeHeader(_ header: StateHeader, into base: UnsafeMutableRawPointer) {
        for (offset, byte) in magic.enumerated() { base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self) }
        base.storeBytes(of: header.version.littleEndian, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: header.policy.littleEndian, toByteOffset: 12, as: UInt16.self)
        base.storeBytes(of: UInt64(header.sampleCount).littleEndian, toByteOffset: 16, as: UInt64.self)
        base.storeBytes(of: UInt32(header.stride).littleEndian, toByteOffset: 24, as: UInt32.self)
        base.storeBytes(of: Int64(header.epoch).littleEndian, toByteOffset: 32, as: Int64.self)
        base.storeBytes(of: UInt64(header.sampleCount * header.stride).littleEndian, toByteOffset: 40, as: UInt64.self)
        base.storeBytes(of: header.recordsChecksum.littleEndian, toByteOffset: 48, as: UInt32.self)
        base.storeBytes(of: Checksum.crc32(UnsafeRawPointer(base), count: 60).littleEndian, toByteOffset: 60, as: UInt32.self)
    }

    private static func parseHeader(_ base: UnsafeRawPointer, path: String) throws(SelectError) -> StateHeader {
        for (offset, byte) in magic.enumerated() where base.load(fromByteOffset: offset, as: UInt8.self) != byte {
            throw SelectError(path: path, kind: .badMagic)
        }
        let stored = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 60, as: UInt32.self))
        let computed = Checksum.crc32(base, count: 60)
        if stored != computed { throw SelectError(path: path, kind: .headerChecksum(stored: stored, computed: computed)) }
        let version = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        if version != StateStore.version { throw SelectError(path: path, kind: .unsupportedVersion(found: version)) }
        let count = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
        let stride = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt32.self))
        let epoch = Int64(littleEndian: base.loadUnaligned(fromByteOffset: 32, as: Int64.self))
        let recordBytes = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 40, as: UInt64.self))
        // A header that passed its CRC was written by `save`; these bounds guard against a
        // hand-made file overflowing the size arithmetic.
        if count > UInt64(Int32.max) || stride > UInt32(maximumStride) || epoch < 0
            || recordBytes != count * UInt64(stride) {
            throw SelectError(path: path, kind: .invalidArgument("selection state header has impossible sizes (count \(count), stride \(stride), epoch \(epoch))"))
        }
        return StateHeader(version: version,
                           policy: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 12, as: UInt16.self)),
                           sampleCount: Int(count), stride: Int(stride), epoch: Int(epoch),
                           recordsChecksum: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 48, as: UInt32.self)))
    }

    private static func readInto(_ bytes: inout [UInt8], file: FileHandle) throws(SystemError) {
        var result: Result<Void, SystemError> = .success(())
        bytes.withUnsafeMutableBytes { raw in
            do throws(SystemError) { try file.readFully(into: raw.baseAddress!, count: raw.count, at: 0) }
            catch { result = .failure(error) }
        }
        try result.get()
    }

    private static func join(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
