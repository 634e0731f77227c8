import Platform

/// The text form of a model description: one node per line, so a user can define a model in a
/// file without writing Swift. Each node reads the previous node unless `from=NAME` says
/// otherwise; `as=NAME` names it (the name prefixes its tensors in checkpoints).
///
///     # cnn-s
///     input 1x28x28
///     classes 10
///     conv 32 k3 p1            # out channels, kernel, padding; s2 = stride 2; nobias
///     relu
///     maxpool 2                # kernel (stride = kernel unless s given)
///     flatten
///     linear 10
///     add NAME                 # previous node + node NAME (a residual connection)
///     relu6                    # min(max(x, 0), 6)
///     hardswish                # x * relu6(x + 3) / 6
///     hardsigmoid              # relu6(x + 3) / 6
///     mul NAME                 # previous node [N, C, H, W] times node NAME's [N, C] per channel
///     dropout 0.2              # zero with probability p in training (kept values / (1 - p))
///
/// Kinds: conv, dwconv, bn, relu, relu6, hardswish, hardsigmoid, maxpool, avgpool, gap, flatten,
/// linear, add, mul, dropout.
extension ModelDescription {
    public static func parse(_ text: String, name: String) throws(ModelError) -> ModelDescription {
        var input: TensorShape? = nil
        var classes: Int? = nil
        var builder: ModelBuilder? = nil
        var names: [String: Int] = ["input": -1]
        var lineNumber = 0
        for rawLine in TextLines.split(text) {
            lineNumber += 1
            var line = Substring(rawLine)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
            guard let kind = words.first else { continue }
            func fail(_ message: String) -> ModelError {
                ModelError(message: "model \(name) line \(lineNumber): \(message)")
            }
            if kind == "input" || kind == "classes" {
                if builder != nil { throw fail("'\(kind)' must come before the first layer") }
                if kind == "input" && input != nil || kind == "classes" && classes != nil { throw fail("'\(kind)' appears twice") }
            }
            if kind == "input" {
                let dims = words.count == 2 ? words[1].split(separator: "x").compactMap { Int($0) } : []
                guard dims.count == 3, dims.allSatisfy({ $0 >= 1 && $0 <= 65536 }) else { throw fail("input needs CxHxW, e.g. input 1x28x28") }
                input = .spatial(dims[0], dims[1], dims[2])
                continue
            }
            if kind == "classes" {
                guard words.count == 2, let count = Int(words[1]), count >= 2, count <= 100_000 else { throw fail("classes needs a count of at least 2") }
                classes = count
                continue
            }
            if builder == nil {
                guard let input, let classes else { throw fail("'input CxHxW' and 'classes N' must come before the first layer") }
                builder = ModelBuilder(name: name, input: input, classes: classes)
            }
            let kinds = ["conv", "dwconv", "bn", "relu", "relu6", "hardswish", "hardsigmoid", "maxpool", "avgpool", "gap",
                         "flatten", "linear", "add", "mul", "dropout"]
            guard kinds.contains(kind) else { throw fail("unknown layer kind '\(kind)' (kinds: \(kinds.joined(separator: ", ")))") }
            var numbers: [Int] = []
            var kernel: Int? = nil
            var stride: Int? = nil
            var padding = 0
            var bias = true
            var from = builder!.last
            var alias: String? = nil
            var addTarget: Int? = nil
            var probability: Double? = nil
            var epsilon: Double? = nil, momentum: Double? = nil
            // What each kind reads: a word it does not read is refused rather than ignored.
            let takesCount = ["conv", "maxpool", "avgpool", "linear"].contains(kind)
            let windowOptions: [Character] = kind == "conv" || kind == "dwconv" ? ["k", "s", "p"] : kind == "maxpool" || kind == "avgpool" ? ["s", "p"] : []
            let takesBias = ["conv", "dwconv", "linear"].contains(kind)
            var seenOptions: [Character] = []
            var seenBias = false
            for word in words.dropFirst() {
                if word.hasPrefix("from=") || word.hasPrefix("as=") {
                    guard !seenOptions.contains(word.first!) else { throw fail("'\(word.prefix(while: { $0 != "=" }))=' given twice") }
                    seenOptions.append(word.first!)
                }
                if kind == "bn" && (word.hasPrefix("eps=") || word.hasPrefix("momentum=")) {
                    let isEpsilon = word.hasPrefix("eps=")
                    let text = word.drop(while: { $0 != "=" }).dropFirst()
                    guard (isEpsilon ? epsilon : momentum) == nil else { throw fail("'\(isEpsilon ? "eps" : "momentum")=' given twice") }
                    guard text.allSatisfy({ $0.isASCII && ($0.isNumber || ".-+eE".contains($0)) }), let value = Double(String(text)),
                          value > 0, isEpsilon ? value < 1 : value <= 1 else {
                        throw fail(isEpsilon ? "bn eps needs 0 < eps < 1 ('\(word)')" : "bn momentum needs 0 < momentum <= 1 ('\(word)')")
                    }
                    if isEpsilon { epsilon = value } else { momentum = value }
                } else if word.hasPrefix("from=") {
                    guard let index = names[String(word.dropFirst(5))] else { throw fail("unknown node '\(word.dropFirst(5))'") }
                    from = index
                } else if word.hasPrefix("as=") {
                    alias = String(word.dropFirst(3))
                } else if word == "nobias" || word == "bias" {
                    guard takesBias else { throw fail("\(kind) has no bias ('\(word)')") }
                    guard !seenBias else { throw fail("bias or nobias given twice") }
                    seenBias = true
                    bias = word == "bias"
                } else if kind == "dropout", word.first.map({ $0.isNumber || $0 == "." || $0 == "-" }) == true {
                    // A decimal (an exponent allowed, as the text form prints 1e-05; no inf or nan).
                    guard probability == nil else { throw fail("dropout takes one probability ('\(word)')") }
                    guard word.allSatisfy({ $0.isASCII && ($0.isNumber || ".-+eE".contains($0)) }),
                          let value = Double(word), value >= 0, value < 1 else {
                        throw fail("dropout needs a probability p with 0 <= p < 1, e.g. dropout 0.2 ('\(word)')")
                    }
                    probability = value
                } else if let value = Int(word) {
                    guard takesCount else { throw fail("\(kind) takes no number ('\(word)')") }
                    numbers.append(value)
                } else if word.count > 1, let value = Int(word.dropFirst()), value >= 0 {
                    let option = word.first!
                    guard windowOptions.contains(option) else {
                        throw fail(["k", "s", "p"].contains(option) ? "\(kind) takes no option '\(word)'" : "unknown option '\(word)'")
                    }
                    guard !seenOptions.contains(option) else { throw fail("'\(option)' given twice ('\(word)')") }
                    seenOptions.append(option)
                    switch option {
                    case "k": kernel = value
                    case "s": stride = value
                    case "p": padding = value
                    default: throw fail("unknown option '\(word)'")
                    }
                } else if kind == "add" || kind == "mul", let index = names[word] {
                    guard addTarget == nil else { throw fail("\(kind) takes one node ('\(word)')") }
                    addTarget = index
                } else {
                    throw fail("unknown option or node '\(word)'")
                }
            }
            func number(_ what: String) throws(ModelError) -> Int {
                guard numbers.count == 1, numbers[0] >= 1, numbers[0] <= 1 << 20 else { throw fail("\(kind) needs one positive number (\(what))") }
                return numbers[0]
            }
            let index: Int
            switch kind {
            case "conv":
                index = builder!.conv(from, out: try number("output channels"), kernel: kernel ?? 3, stride: stride ?? 1, padding: padding, bias: bias)
            case "dwconv":
                index = builder!.depthwise(from, kernel: kernel ?? 3, stride: stride ?? 1, padding: padding, bias: bias)
            case "bn": index = builder!.batchNorm(from, epsilon: epsilon ?? 1e-5, momentum: momentum ?? 0.1)
            case "relu": index = builder!.relu(from)
            case "maxpool":
                let size = try number("kernel")
                index = builder!.maxPool(from, kernel: size, stride: stride ?? size, padding: padding)
            case "avgpool":
                let size = try number("kernel")
                index = builder!.avgPool(from, kernel: size, stride: stride ?? size, padding: padding)
            case "gap": index = builder!.globalAvgPool(from)
            case "flatten": index = builder!.flatten(from)
            case "linear": index = builder!.linear(from, out: try number("outputs"), bias: bias)
            case "add":
                guard let target = addTarget else { throw fail("add needs the name of the node to add") }
                index = builder!.add(from, target)
            case "relu6": index = builder!.relu6(from)
            case "hardswish": index = builder!.hardSwish(from)
            case "hardsigmoid": index = builder!.hardSigmoid(from)
            case "mul":
                guard let target = addTarget else { throw fail("mul needs the name of the node holding the per-channel scale") }
                index = builder!.channelMul(from, scale: target)
            case "dropout":
                guard let probability else { throw fail("dropout needs a probability p with 0 <= p < 1, e.g. dropout 0.2") }
                index = builder!.dropout(from, probability: probability)
            default:
                throw fail("unknown layer kind '\(kind)'")
            }
            if let alias {
                guard names[alias] == nil else { throw fail("name '\(alias)' is used twice") }
                builder!.rename(index, to: alias)
            }
            names[builder!.description.layers[index].name] = index
        }
        guard let builder else { throw ModelError(message: "model \(name): no layers") }
        let description = builder.description
        _ = try description.shapes()
        return description
    }

    /// The text form (round-trips through `parse`).
    public var text: String {
        var lines = ["input \(input.channels)x\(input.height)x\(input.width)", "classes \(classes)"]
        for (index, layer) in layers.enumerated() {
            var words: [String]
            switch layer.kind {
            case .conv2d: words = ["conv", "\(layer.outChannels)", "k\(layer.kernel)", "s\(layer.stride)", "p\(layer.padding)", layer.bias ? "bias" : "nobias"]
            case .depthwiseConv2d: words = ["dwconv", "k\(layer.kernel)", "s\(layer.stride)", "p\(layer.padding)", layer.bias ? "bias" : "nobias"]
            case .batchNorm:
                words = ["bn"]
                // Written only when not PyTorch's defaults, so existing descriptions read as before.
                if layer.epsilon != 1e-5 { words.append("eps=\(layer.epsilon)") }
                if layer.momentum != 0.1 { words.append("momentum=\(layer.momentum)") }
            case .relu: words = ["relu"]
            case .maxPool: words = ["maxpool", "\(layer.kernel)", "s\(layer.stride)", "p\(layer.padding)"]
            case .avgPool: words = ["avgpool", "\(layer.kernel)", "s\(layer.stride)", "p\(layer.padding)"]
            case .globalAvgPool: words = ["gap"]
            case .flatten: words = ["flatten"]
            case .linear: words = ["linear", "\(layer.outChannels)", layer.bias ? "bias" : "nobias"]
            case .add: words = ["add", layer.inputs[1] == -1 ? "input" : layers[layer.inputs[1]].name]
            case .relu6: words = ["relu6"]
            case .hardSwish: words = ["hardswish"]
            case .hardSigmoid: words = ["hardsigmoid"]
            case .channelMul: words = ["mul", layer.inputs[1] == -1 ? "input" : layers[layer.inputs[1]].name]
            case .dropout: words = ["dropout", "\(layer.probability)"]
            }
            if layer.inputs[0] != index - 1 {
                words.append("from=" + (layer.inputs[0] == -1 ? "input" : layers[layer.inputs[0]].name))
            }
            words.append("as=" + layer.name)
            lines.append(words.joined(separator: " "))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension ModelBuilder {
    /// Renames node `index` (its tensors are named after it).
    public mutating func rename(_ index: Int, to name: String) {
        renameLayer(index, name)
    }
}

extension ModelDescription {
    /// Reads and parses a model file (the text form, e.g. from tools/import-torch), named by its
    /// path; errors say which file.
    public static func read(file path: String) throws(ModelError) -> ModelDescription {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readAll(path, limit: maximumFileBytes) }
        catch { throw ModelError(message: "cannot read \(path): \(error.description)") }
        return try parse(String(decoding: bytes, as: UTF8.self), name: path)
    }
}
