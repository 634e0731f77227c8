import Data
import NN

/// What a checkpoint must know of its data to be used on new inputs (`leitner predict`): the
/// sample shape, the normalisation the run used and the class names, stored as metadata
/// "data.shape" ("CxHxW"), "data.mean" and "data.std" (comma-separated, one per channel) and
/// "data.classes" (newline-separated, one per output; names may be empty).
public struct DataFacts: Equatable {
    public var channels: Int
    public var height: Int
    public var width: Int
    public var normalization: Normalization
    public var classNames: [String]

    public init(channels: Int, height: Int, width: Int, normalization: Normalization, classNames: [String]) {
        self.channels = channels
        self.height = height
        self.width = width
        self.normalization = normalization
        self.classNames = classNames
    }

    /// The facts of a training set (after --classes): unnamed classes get empty names.
    public init(dataset: Dataset) {
        self.init(channels: dataset.channels, height: dataset.height, width: dataset.width,
                  normalization: dataset.normalization,
                  classNames: dataset.classNames ?? [String](repeating: "", count: dataset.classCount))
    }

    public static let keys = ["data.shape", "data.mean", "data.std", "data.classes"]

    /// The checkpoint metadata entries, in `keys` order.
    public var metadata: [(String, String)] {
        func list(_ values: [Float]) -> String { values.map { "\($0)" }.joined(separator: ",") }
        return [("data.shape", "\(channels)x\(height)x\(width)"), ("data.mean", list(normalization.mean)),
                ("data.std", list(normalization.std)), ("data.classes", classNames.joined(separator: "\n"))]
    }

    /// Reads the facts back from a checkpoint's metadata; a checkpoint without them (written by
    /// a leitner before they were stored) or with malformed ones is refused by key.
    public init(metadata: [(String, String)], path: String) throws(TrainError) {
        let missing = Self.keys.filter { Checkpoint.value($0, in: metadata) == nil }
        guard missing.isEmpty else {
            throw TrainError("\(path) has no \(missing.joined(separator: ", ")) metadata: it was written by an older leitner (before checkpoints recorded their data's shape, normalisation and class names); train or fine-tune it again (a --resume of one epoch more rewrites it)")
        }
        let shapeText = Checkpoint.value("data.shape", in: metadata)!
        let sides = shapeText.split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
        guard sides.count == 3, let channels = sides[0], let height = sides[1], let width = sides[2],
              channels >= 1, height >= 1, width >= 1 else {
            throw TrainError("\(path): data.shape '\(shapeText)' is not CxHxW")
        }
        func floats(_ key: String) throws(TrainError) -> [Float] {
            let text = Checkpoint.value(key, in: metadata)!
            var values: [Float] = []
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                guard let value = Float(part), value.isFinite else { throw TrainError("\(path): \(key) '\(text)' is not \(channels) comma-separated numbers") }
                values.append(value)
            }
            guard values.count == channels else { throw TrainError("\(path): \(key) has \(values.count) values for \(channels) channels") }
            return values
        }
        let mean = try floats("data.mean")
        let std = try floats("data.std")
        for value in std where !(value > 0) { throw TrainError("\(path): data.std \(value) is not positive") }
        let names = Checkpoint.value("data.classes", in: metadata)!.split(separator: "\n", omittingEmptySubsequences: false).map { String($0) }
        self.init(channels: channels, height: height, width: width, normalization: Normalization(mean: mean, std: std), classNames: names)
    }
}
