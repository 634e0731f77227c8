/// The process's command-line arguments. Embedded Swift has no `CommandLine`, so they are read
/// from /proc/self/cmdline (NUL-separated), which both build modes can do on Linux.
public enum Arguments {
    /// All arguments including the program name at index 0.
    public static func all() -> [String] {
        guard let bytes = try? FileSystem.readAll("/proc/self/cmdline", limit: 16 << 20) else { return [] }
        var result: [String] = []
        var start = 0
        for index in bytes.indices where bytes[index] == 0 {
            result.append(String(decoding: bytes[start..<index], as: UTF8.self))
            start = index + 1
        }
        if start < bytes.count { result.append(String(decoding: bytes[start...], as: UTF8.self)) }
        return result
    }
}
