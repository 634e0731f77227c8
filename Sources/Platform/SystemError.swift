import CSystem

/// A failed system call: which call, on what, and errno. Every C call is wrapped once and
/// reports through this type, so a message always names the call and the path.
public struct SystemError: Error, CustomStringConvertible {
    /// The C function that failed ("open", "write", "pthread_create", ...).
    public let call: StaticString
    /// The path or object the call was about; empty when there is none.
    public let subject: String
    /// errno at the moment of failure (0 when the failure was not an errno failure).
    public let code: Int32

    public init(call: StaticString, subject: String = "", code: Int32) {
        self.call = call
        self.subject = subject
        self.code = code
    }

    /// True when the path does not exist (ENOENT).
    public var isNotFound: Bool { code == ENOENT }

    /// Captures errno right after a failed call.
    public static func fromErrno(_ call: StaticString, _ subject: String = "") -> SystemError {
        SystemError(call: call, subject: subject, code: leitner_errno())
    }

    public var description: String {
        var text = "\(call)"
        if !subject.isEmpty { text += " \(subject)" }
        text += ": " + SystemError.message(for: code)
        return text
    }

    /// strerror text for an errno value (copied into a Swift string).
    public static func message(for code: Int32) -> String {
        if code == 0 { return "failed" }
        guard let cString = strerror(code) else { return "errno \(code)" }
        return String(cString: cString) + " (errno \(code))"
    }
}

/// errno values that code outside Platform names (injected faults, permission hints), spelled
/// as swift-system spells them.
public enum Errno {
    public static let noSpace: Int32 = ENOSPC
    public static let ioError: Int32 = EIO
    public static let permissionDenied: Int32 = EACCES
    public static let notPermitted: Int32 = EPERM
}
