/// Train: the loop that wires model, data and optimizer together; metrics log; reports.
public enum Training {}
