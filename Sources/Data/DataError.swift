import Platform

/// A dataset that could not be loaded or located: which file, and what is wrong with it.
/// Malformed input always ends here, never in a crash or an out-of-bounds read.
public struct DataError: Error, CustomStringConvertible {
    /// What went wrong. Sizes are in bytes or samples as named.
    public enum Kind {
        /// A system call failed (open, read, readlink, ...).
        case system(SystemError)
        /// zlib reported an error while reading (corrupt or truncated compressed stream).
        case compression(call: StaticString, message: String)
        /// The first four bytes are not the expected IDX magic number.
        case badMagic(expected: UInt32, found: UInt32)
        /// The file ends before the header or payload is complete.
        case truncated(expectedBytes: Int, gotBytes: Int)
        /// Bytes remain after the payload the header announced.
        case trailingData
        /// A dimension is zero, negative or too large to be a real dataset.
        case absurdDimensions(String)
        /// Images and labels (or pixels and a shape) disagree.
        case dimensionMismatch(String)
        /// A label is not below the class count.
        case labelOutOfRange(sample: Int, label: Int, classes: Int)
        /// A needed file or directory does not exist.
        case missing(String)
        /// An argument describing the dataset is inconsistent (class names, normalisation).
        case invalidArgument(String)
        /// An image file could not be decoded (corrupt, truncated, unsupported); the decoder's words.
        case image(String)
        /// A pack file is malformed; `block` names the block when the fault is in one.
        case pack(block: Int?, String)
    }

    /// The file (or directory) the error is about.
    public let path: String
    public let kind: Kind

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    /// Wraps a failed system call; the SystemError already names the call and the path.
    public init(_ error: SystemError) {
        self.path = error.subject
        self.kind = .system(error)
    }

    /// Wraps a failed zlib call: an I/O failure, or compressed data zlib could not decode.
    public init(_ error: GzipError) {
        switch error {
        case .system(let error): self.init(error)
        case .data(let call, let subject, let message): self.init(path: subject, kind: .compression(call: call, message: message))
        }
    }

    public var description: String {
        switch kind {
        case .system(let error):
            return error.description
        case .compression(let call, let message):
            return "\(path): \(call) failed: \(message) (corrupt or truncated compressed data)"
        case .badMagic(let expected, let found):
            return "\(path): bad magic number \(DataError.hex(found)), expected \(DataError.hex(expected))"
                + (found == 0x0000_0803 || found == 0x0000_0801 ? " (images and labels swapped?)" : "")
        case .truncated(let expectedBytes, let gotBytes):
            return "\(path): truncated: expected \(expectedBytes) bytes, the file ends after \(gotBytes)"
        case .trailingData:
            return "\(path): data continues after the payload the header describes (wrong dimensions?)"
        case .absurdDimensions(let detail):
            return "\(path): absurd dimensions: \(detail)"
        case .dimensionMismatch(let detail):
            return "\(path): dimension mismatch: \(detail)"
        case .labelOutOfRange(let sample, let label, let classes):
            return "\(path): label \(label) of sample \(sample) is out of range for \(classes) classes"
        case .missing(let detail):
            return "\(path): not found: \(detail)"
        case .invalidArgument(let detail), .image(let detail):
            return "\(path): \(detail)"
        case .pack(let block, let detail):
            if let block { return "\(path): block \(block): \(detail)" }
            return "\(path): \(detail)"
        }
    }

    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}
