/// NN: arenas, tensor views, layers, models, optimizers.
public enum NN {}
