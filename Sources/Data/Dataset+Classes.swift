/// Keeping some classes of a dataset (fine-tuning scenarios: pretrain on classes 0-4,
/// fine-tune on 5-9 with a few samples per class).
extension Dataset {
    /// Parses "5-9" (a range), "1,3,7" (a list) or a mix ("0-2,7") into class indices in the
    /// order given; nil when malformed, repeated or outside 0..<classCount.
    public static func parseClasses(_ text: String, classCount: Int) -> [Int]? {
        var result: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2, let first = Int(bounds[0]), let last = Int(bounds[bounds.count - 1]),
                  first >= 0, first <= last, last < classCount else { return nil }
            for label in first...last {
                if result.contains(label) { return nil }
                result.append(label)
            }
        }
        return result.isEmpty ? nil : result
    }

    /// The samples of `classes` in dataset order, labels renumbered 0..<k in the order of
    /// `classes`, at most the first `perClass` of each class (0 = all). Keeps the normalisation.
    public func selectingClasses(_ classes: [Int], perClass: Int = 0) throws(DataError) -> Dataset {
        guard stream == nil else {
            throw DataError(path: name, kind: .invalidArgument("class selection needs the dataset in memory (drop --data-memory-mb)"))
        }
        var newLabel = [Int](repeating: -1, count: classCount)
        for (position, label) in classes.enumerated() {
            guard label >= 0 && label < classCount else {
                throw DataError(path: name, kind: .invalidArgument("class \(label) is outside 0..<\(classCount)"))
            }
            newLabel[label] = position
        }
        var taken = [Int](repeating: 0, count: classes.count)
        var keptPixels: [UInt8] = []
        var keptLabels: [UInt8] = []
        for index in 0..<count {
            let mapped = newLabel[Int(labels[index])]
            guard mapped >= 0, perClass == 0 || taken[mapped] < perClass else { continue }
            taken[mapped] += 1
            keptPixels.append(contentsOf: sample(index))
            keptLabels.append(UInt8(mapped))
        }
        guard !keptLabels.isEmpty else {
            throw DataError(path: name, kind: .invalidArgument("no sample of the selected classes in the set"))
        }
        return try Dataset(name: name, pixels: keptPixels, labels: keptLabels, channels: channels, height: height, width: width,
                           classCount: max(classes.count, 2), classNames: classNames.map { names in
                               var kept = classes.map { names[$0] }
                               if classes.count == 1 { kept.append("(none)") }
                               return kept
                           }, normalization: normalization)
    }
}
