/// Lines of a text file written on any system. Swift treats "\r\n" as one Character, equal
/// neither to "\n" nor to "\r", so `split(separator: "\n")` leaves a CRLF file as one line;
/// this splits on "\n", "\r\n" and a lone "\r" alike.
public enum TextLines {
    public static func split(_ text: String, omittingEmptyLines: Bool = false) -> [Substring] {
        text.split(omittingEmptySubsequences: omittingEmptyLines, whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" })
    }
}
