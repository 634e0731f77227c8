import Data
import Platform
import Testing

/// The pack's own per-block CRC-32 (the index entry's `crc`) catches what zlib cannot: two
/// blocks of equal compressed and uncompressed size swapped on disk. Each moved gzip member
/// is still a valid stream whose trailer (CRC-32 and ISIZE of its own data) matches, and the
/// index's offsets and sizes still add up, so inflate succeeds; only the comparison of the
/// inflated bytes with the index's CRC-32 for that position refuses it.
@Suite struct PackCRCTests {
    /// A pack of 1x6x6 samples, 4 per block, whose pixels all equal the sample's index: every
    /// block has the same deflate structure (a literal and a run per record), hence equal
    /// compressed sizes, and different bytes.
    static func write(_ path: String, count: Int) throws {
        let side = PackFixture.side
        let writer = try PackWriter(path: path, channels: 1, height: side, width: side, elementType: .uint8,
                                    classNames: ["a", "b", "c", "d"], blockBytes: 4 * (1 + side * side), level: 6)
        for sample in 0..<count {
            try writer.append(label: sample % 4, pixels: [UInt8](repeating: UInt8(sample), count: side * side)[...])
        }
        try writer.finish()
    }

    @Test func swappedEqualSizeBlocksAreRefusedByTheIndexCRC() throws {
        let fixtures = IDXFixtures()
        defer { fixtures.remove() }
        let path = fixtures.path("swap.pack")
        try Self.write(path, count: 24)
        let pack = try PackFile.open(path)
        let blocks = pack.blocks
        // The first later block with the sizes of block 1 (not block 0, so the index's first
        // entry is not the one that fails).
        let first = 1
        let second = try #require((first + 1..<blocks.count).first {
            blocks[$0].compressedBytes == blocks[first].compressedBytes && blocks[$0].uncompressedBytes == blocks[first].uncompressedBytes
        }, "no block with block 1's sizes: \(blocks.map { $0.compressedBytes })")
        #expect(blocks[first].crc != blocks[second].crc)

        var bytes = try FileSystem.readAll(path, limit: 1 << 30)
        let size = blocks[first].compressedBytes
        let memberA = Array(bytes[blocks[first].offset..<blocks[first].offset + size])
        let memberB = Array(bytes[blocks[second].offset..<blocks[second].offset + size])
        bytes.replaceSubrange(blocks[first].offset..<blocks[first].offset + size, with: memberB)
        bytes.replaceSubrange(blocks[second].offset..<blocks[second].offset + size, with: memberA)
        PackFixture.overwrite(path, bytes)

        // zlib alone accepts the member now at block `first`'s place: its trailer is its own.
        let codec = GzipCodec.decoder()
        var inflated = [UInt8](repeating: 0, count: blocks[first].uncompressedBytes)
        try memberB.withUnsafeBytes { input in
            try inflated.withUnsafeMutableBytes { output in
                try codec.inflate(input.baseAddress!, count: size, into: output.baseAddress!, expected: output.count)
            }
        }
        #expect(Checksum.crc32(inflated) == blocks[second].crc)

        let swapped = try PackFile.open(path)
        for check in ["verify", "loadDataset"] {
            do throws(DataError) {
                if check == "verify" { try swapped.verify() } else { _ = try swapped.loadDataset() }
                Issue.record("\(check): blocks \(first) and \(second) swapped were accepted")
            } catch {
                guard case .pack(let block, let message) = error.kind else {
                    Issue.record("\(check): \(error) is not a pack error")
                    continue
                }
                #expect(block == first, "\(check): \(error)")
                #expect(message.hasPrefix("CRC-32 mismatch (index \(DataError.hexForTests(blocks[first].crc)), data \(DataError.hexForTests(blocks[second].crc)))"),
                        "\(check): \(error)")
            }
        }
    }
}

extension DataError {
    /// "0x%08x", as the pack errors print CRCs.
    static func hexForTests(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
    }
}
