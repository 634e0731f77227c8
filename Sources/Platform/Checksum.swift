import CSystem

/// zlib's CRC-32 (the gzip one), the checksum of packs and of the per-sample state file.
public enum Checksum {
    /// CRC-32 of `count` bytes, in chunks: zlib takes a 32-bit length.
    public static func crc32(_ pointer: UnsafeRawPointer, count: Int) -> UInt32 {
        var value = CSystem.crc32(0, nil, 0)
        var done = 0
        while done < count {
            let chunk = min(count - done, 1 << 30)
            value = CSystem.crc32(value, pointer.assumingMemoryBound(to: UInt8.self) + done, UInt32(chunk))
            done += chunk
        }
        return UInt32(truncatingIfNeeded: value)
    }

    /// CRC-32 of a byte array (0 for an empty one).
    public static func crc32(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { raw in crc32(raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, count: raw.count) }
    }
}
