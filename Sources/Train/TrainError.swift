import Data
import NN
import Platform

/// Why a training run could not start or continue; the message says what and where.
public struct TrainError: Error, CustomStringConvertible {
    public let message: String
    /// The run stopped because SIGINT or SIGTERM asked it to (its files are valid; `--resume`
    /// continues it), not because something failed.
    public var interrupted = false
    public init(_ message: String) { self.message = message }
    public init(_ error: DataError) { message = error.description }
    public init(_ error: ModelError) { message = error.message }
    public init(_ error: SystemError) { message = error.description }
    public init(_ error: MemoryError) { message = error.description }
    public var description: String { message }
}
