import CSystem

/// Writing to standard output and standard error without Foundation.
public enum Console {
    /// Makes standard output line-buffered, so `print` lines reach a log file or pipe as they
    /// happen (C stdio buffers fully when stdout is not a terminal).
    public static func lineBufferStandardOutput() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }

    /// Sends standard output to /dev/null (the ranks of a data-parallel run other than 0, whose
    /// lines would repeat rank 0's); standard error still shows their warnings and errors.
    public static func silenceStandardOutput() {
        fflush(stdout)
        let null = leitner_open_append("/dev/null")
        guard null >= 0 else { return }
        _ = dup2(null, 1)
        _ = close(null)
    }

    /// Writes `text` and a newline to standard error.
    public static func error(_ text: String) {
        write(fd: 2, text + "\n")
    }

    /// Writes `text` to standard error without a newline (progress bars).
    public static func errorInline(_ text: String) {
        write(fd: 2, text)
    }

    /// Writes `text` to standard output without a newline (progress lines).
    public static func out(_ text: String) {
        write(fd: 1, text)
    }

    /// True when standard output (fd 1) or error (fd 2) is a terminal.
    public static func isTerminal(fd: Int32) -> Bool {
        leitner_isatty(fd) == 1
    }

    static func write(fd: Int32, _ text: String) {
        var copy = text
        copy.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = unistd_write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }
}

@inline(__always)
func unistd_write(_ fd: Int32, _ pointer: UnsafePointer<UInt8>, _ count: Int) -> Int {
    CSystem.write(fd, pointer, count)
}
