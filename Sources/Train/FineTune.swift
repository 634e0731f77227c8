import NN

/// Fine-tuning from pretrained weights (`leitner finetune`): fits the model's classifier head
/// to the data's class count before the trainer is built.
public enum FineTune {
    /// Reads the head's shape in `config.pretrained` and sets `config.model`'s last linear
    /// layer to `classes` outputs. When the file's head has another output count, the head is
    /// replaced: its tensors are not loaded (they keep the seeded PyTorch initialisation) and
    /// it is trained whatever `config.update` says. Returns the sentence to print.
    public static func fitHead(_ config: inout TrainConfig, classes: Int) throws(TrainError) -> String {
        guard let path = config.pretrained else { return "no pretrained weights" }
        let layers = config.model.layers
        guard let head = layers.indices.last, layers[head].kind == .linear else {
            throw TrainError("model \(config.model.name) does not end in a linear layer, so its head cannot be fitted to \(classes) classes")
        }
        let name = layers[head].name
        let reader: SafeTensorsReader
        do { reader = try SafeTensorsReader(path: path) } catch { throw TrainError("--from: \(error.description)") }
        // A missing or odd head is reported with every other problem by the load itself.
        guard let entry = reader.header.entry(named: name + ".weight"), entry.shape.count == 2 else {
            return "pretrained head \(name): not found in \(path)"
        }
        let pretrainedClasses = entry.shape[0]
        config.model.classes = classes
        config.model.layers[head].outChannels = classes
        guard pretrainedClasses != classes else {
            return "pretrained head \(name): \(classes) outputs, kept"
        }
        config.trainHead = true
        config.replacedHead = [name + ".weight"] + (layers[head].bias ? [name + ".bias"] : [])
        return "pretrained head \(name) has \(pretrainedClasses) outputs, the data \(classes) classes: replaced by a new \(classes)-output head (PyTorch default initialisation, seed \(config.seed)), trained in every --update mode"
    }
}
