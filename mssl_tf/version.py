"""The package version, importable without TensorFlow or Keras (command lines' --version)."""

__version__ = "0.2.0"
