/// Select: the per-sample state store and the sample-selection policies.
public enum Selection {}
