/// Data: dataset formats, batches, normalisation and augmentation.
public enum DataFormats {}
