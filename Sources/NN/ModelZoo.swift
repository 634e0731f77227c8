/// The reference models, defined in the text form so they read like their specification and
/// a user can copy one into a file and change it (`leitner train --model-file FILE`).
public enum ModelZoo {
    /// 784-256-128-10 with ReLU between.
    public static let mlp = """
    input 1x28x28
    classes 10
    flatten
    linear 256 as=fc1
    relu
    linear 128 as=fc2
    relu
    linear 10 as=fc3
    """

    /// conv3x3(1->32, pad 1), ReLU, maxpool 2; conv3x3(32->64, pad 1), ReLU, maxpool 2;
    /// flatten 64x7x7; linear 3136->128, ReLU; linear 128->10.
    public static let cnnS = """
    input 1x28x28
    classes 10
    conv 32 k3 p1 as=conv1
    relu
    maxpool 2
    conv 64 k3 p1 as=conv2
    relu
    maxpool 2
    flatten
    linear 128 as=fc1
    relu
    linear 10 as=fc2
    """

    /// conv3x3(1->16, no bias), BN, ReLU; basic blocks 16->16, 16->32 (stride 2), 32->64
    /// (stride 2), each conv-BN-ReLU-conv-BN plus a shortcut (identity, or conv1x1 with stride
    /// and BN when the shape changes) and ReLU after the add; global average pool; linear 64->10.
    public static let resnet8 = """
    input 1x28x28
    classes 10
    conv 16 k3 p1 nobias as=conv1
    bn as=bn1
    relu as=stem
    conv 16 k3 p1 nobias as=layer1.conv1
    bn as=layer1.bn1
    relu
    conv 16 k3 p1 nobias as=layer1.conv2
    bn as=layer1.bn2
    add stem
    relu as=layer1
    conv 32 k3 s2 p1 nobias as=layer2.conv1
    bn as=layer2.bn1
    relu
    conv 32 k3 p1 nobias as=layer2.conv2
    bn as=layer2.bn2
    conv 32 k1 s2 nobias from=layer1 as=layer2.shortcut.0
    bn as=layer2.shortcut.1
    add layer2.bn2
    relu as=layer2
    conv 64 k3 s2 p1 nobias as=layer3.conv1
    bn as=layer3.bn1
    relu
    conv 64 k3 p1 nobias as=layer3.conv2
    bn as=layer3.bn2
    conv 64 k1 s2 nobias from=layer2 as=layer3.shortcut.0
    bn as=layer3.shortcut.1
    add layer3.bn2
    relu
    gap
    linear 10 as=fc
    """

    /// Names the `--model` option accepts.
    public static let names = ["mlp", "cnn-s", "resnet8"]

    /// The description of a reference model by name.
    public static func description(named name: String) throws(ModelError) -> ModelDescription {
        switch name {
        case "mlp": return try ModelDescription.parse(mlp, name: name)
        case "cnn-s": return try ModelDescription.parse(cnnS, name: name)
        case "resnet8": return try ModelDescription.parse(resnet8, name: name)
        default: throw ModelError(message: "unknown model '\(name)' (known: \(names.joined(separator: ", ")); or give --model-file FILE)")
        }
    }
}
