/// Model + optimizer state + metadata in one safetensors file (see docs/checkpoints.md).
///
/// Tensors: every `model.tensors()` entry under its PyTorch-style name ("conv0.weight",
/// "bn0.running_mean"), then for each optimizer buffer and trainable tensor
/// "optimizer.<tensor name>.<state>" ("optimizer.conv0.weight.exp_avg"), all F32.
/// Metadata: "format" = "leitner-checkpoint", "format_version" = "1", "model" (the
/// description's name), "parameter_count", "optimizer" (its name), then the caller's pairs.
public enum Checkpoint {
    /// The value of metadata "format" in files written here.
    public static let format = "leitner-checkpoint"
    /// The value of metadata "format_version"; bumped when names or layout change.
    public static let formatVersion = "1"
    /// Metadata keys written by `save`; callers may not pass them.
    public static let reservedKeys = ["format", "format_version", "model", "parameter_count", "optimizer"]

    /// Writes `model`'s tensors, `optimizer`'s state and `metadata` (e.g. "epoch", "step",
    /// "rng_state", "learning_rate", "model_description") to `path` atomically: a failure at
    /// any point leaves a previous file at `path` byte-identical and throws an error naming
    /// the call and path. Tensors are written straight from the model's memory.
    public static func save(model: Model, optimizer: OptimizerState = .none, metadata: [(String, String)],
                            path: String) throws(SafeTensorsError) {
        var pairs: [(String, String)] = [
            ("format", format), ("format_version", formatVersion), ("model", model.description.name),
            ("parameter_count", "\(model.parameterCount)"), ("optimizer", optimizer.name),
        ]
        for (key, value) in metadata {
            if reservedKeys.contains(key) {
                throw SafeTensorsError(.invalidArgument, path: path, "metadata key \"\(key)\" is reserved (written by Checkpoint.save)")
            }
            pairs.append((key, value))
        }
        var sources: [SafeTensorsSource] = []
        for tensor in expectedTensors(model: model, optimizer: optimizer) {
            sources.append(SafeTensorsSource(name: tensor.name, shape: tensor.shape, pointer: UnsafePointer(tensor.pointer)))
        }
        try SafeTensors.write(path: path, tensors: sources, metadata: pairs)
    }

    /// Restores `model`'s tensors and `optimizer`'s state from `path` and returns the file's
    /// metadata. Before any value is read, every expected tensor is checked to be present, F32
    /// and of the model's shape, and no unexpected tensor may be present; all problems are
    /// reported together in one `.mismatch` error listing each. When `optimizer` has no
    /// buffers, "optimizer.*" tensors in the file are ignored (loading weights only).
    /// A read failure after the checks can leave the model partly overwritten.
    @discardableResult
    public static func load(path: String, into model: Model, optimizer: OptimizerState = .none) throws(SafeTensorsError) -> [(String, String)] {
        try load(path: path, into: model, optimizer: optimizer, skipping: [])
    }

    /// Pretrained weights for fine-tuning: like `load` without optimizer state, except that the
    /// tensors named in `reinitialized` (a replaced classifier head) are neither read nor
    /// checked, whatever their shape in the file, and keep the model's values. Plain PyTorch
    /// state_dicts load too (see docs/checkpoints.md for the names).
    @discardableResult
    public static func loadPretrained(path: String, into model: Model, reinitialized: [String] = []) throws(SafeTensorsError) -> [(String, String)] {
        try load(path: path, into: model, optimizer: .none, skipping: reinitialized)
    }

    /// The names PyTorch adds to a state_dict that Leitner neither stores nor needs: each batch
    /// norm's `num_batches_tracked` counter (an I64 scalar; the momentum is fixed, so unused).
    static func ignoredPyTorchNames(_ model: Model) -> [String: Bool] {
        var names: [String: Bool] = [:]
        for layer in model.description.layers where layer.kind == .batchNorm { names[layer.name + ".num_batches_tracked"] = true }
        return names
    }

    static func load(path: String, into model: Model, optimizer: OptimizerState, skipping: [String]) throws(SafeTensorsError) -> [(String, String)] {
        let reader = try SafeTensorsReader(path: path)
        // Files from elsewhere (no "format" key) are accepted if their tensors match.
        if value("format", in: reader.metadata) == format {
            let version = value("format_version", in: reader.metadata) ?? "(none)"
            if version != formatVersion {
                throw SafeTensorsError(.header, path: path, "checkpoint format version \(version) is not supported (this build reads \(formatVersion))")
            }
        }
        let expected = expectedTensors(model: model, optimizer: optimizer).filter { !skipping.contains($0.name) }
        var expectedNames = ignoredPyTorchNames(model)
        for name in skipping { expectedNames[name] = true }
        var missing: [String] = []
        var problems: [String] = []
        for tensor in expected {
            expectedNames[tensor.name] = true
            guard let entry = reader.header.entry(named: tensor.name) else { missing.append(tensor.name); continue }
            if entry.dtype != .f32 {
                problems.append("wrong dtype: \(tensor.name) is \(entry.dtype.name), expected F32")
            } else if entry.shape != tensor.shape {
                problems.append("mis-shaped: \(tensor.name) is \(shapeText(entry.shape)) in the file, \(shapeText(tensor.shape)) in the model")
            }
        }
        for name in missing { problems.append("missing: \(name)") }
        let ignoreOptimizer = optimizer.buffers.isEmpty
        for entry in reader.entries where expectedNames[entry.name] == nil {
            if ignoreOptimizer && entry.name.hasPrefix(OptimizerState.tensorPrefix) { continue }
            problems.append("unknown: \(entry.name) \(entry.dtype.name) \(shapeText(entry.shape))")
        }
        if !problems.isEmpty {
            var message = "\(problems.count) problem\(problems.count == 1 ? "" : "s") loading into model \"\(model.description.name)\" (optimizer \(optimizer.name)):"
            for problem in problems { message += "\n  " + problem }
            throw SafeTensorsError(.mismatch, path: path, message, problems: problems)
        }
        for tensor in expected {
            try reader.read(tensor.name, into: tensor.pointer, count: tensor.count)
        }
        return reader.metadata
    }

    /// The metadata of the checkpoint at `path` (the header is validated; no tensor is read).
    public static func readMetadata(path: String) throws(SafeTensorsError) -> [(String, String)] {
        try SafeTensorsReader(path: path).metadata
    }

    /// The value of `key` in `metadata`, if present.
    public static func value(_ key: String, in metadata: [(String, String)]) -> String? {
        for (name, value) in metadata where name == key { return value }
        return nil
    }

    /// Every tensor a checkpoint of `model` with `optimizer` holds, in file order.
    static func expectedTensors(model: Model, optimizer: OptimizerState) -> [NamedTensor] {
        let tensors = model.tensors()
        var result = tensors
        for buffer in optimizer.buffers {
            for tensor in tensors where tensor.trainable {
                result.append(NamedTensor(name: OptimizerState.tensorName(tensor.name, state: buffer.state), shape: tensor.shape,
                                          pointer: buffer.pointer + tensor.offset, trainable: false, offset: tensor.offset))
            }
        }
        return result
    }
}
