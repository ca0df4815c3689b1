"""Projector and probe heads built from spec strings such as "8192-8192-8192" or "512-128"."""

from __future__ import annotations

import keras

from mssl_tf.models.layers import batch_norm, initializers
from mssl_tf.models.sample_cnn import BN_EPSILON, BN_MOMENTUM


def parse_spec(spec: str | int | tuple | list) -> list[int]:
    """Parses "8192-8192-8192" (or an int, or a list of ints) into a list of widths."""
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, (tuple, list)):
        widths = [int(w) for w in spec]
    else:
        try:
            widths = [int(w) for w in str(spec).strip().split("-") if w]
        except ValueError:
            raise ValueError(f"projector spec {spec!r}: expected widths joined by '-', "
                             "e.g. '8192-8192-8192' or '512-128'") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"projector spec {spec!r}: needs at least one positive width")
    return widths


def build_vicreg_projector(spec: str = "8192-8192-8192", input_dim: int = 512,
                           synchronized_bn: bool | None = None, init: str = "keras",
                           ghost_batch_size: int | None = None,
                           name: str = "projector") -> keras.Model:
    """facebookresearch/vicreg's Projector: (Dense + BN + ReLU) x (n-1), then Dense without bias.

    Args:
      spec: output widths of the layers, e.g. "8192-8192-8192" (the thesis' "8196" read as 8192).
      input_dim: width of the representation fed in.
      synchronized_bn: as in `build_sample_cnn`; None = on for the TensorFlow backend.
      init: "keras" or "torch" (nn.Linear's default), as in `build_sample_cnn`.
      ghost_batch_size: per-group BatchNorm statistics, as in `build_sample_cnn`.
      name: model name.
    """
    widths = parse_spec(spec)
    if synchronized_bn is None:
        synchronized_bn = keras.backend.backend() == "tensorflow"
    if ghost_batch_size:
        synchronized_bn = False
    inputs = keras.Input(shape=(input_dim,), name="representation")
    x = inputs
    for i, width in enumerate(widths[:-1]):
        x = keras.layers.Dense(width, name=f"dense{i + 1}",
                               **initializers(init, int(x.shape[-1])))(x)
        x = batch_norm(BN_MOMENTUM, BN_EPSILON, synchronized=synchronized_bn,
                       ghost_batch_size=ghost_batch_size, name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
    x = keras.layers.Dense(widths[-1], use_bias=False, name=f"dense{len(widths)}",
                           **initializers(init, int(x.shape[-1])))(x)
    outputs = keras.layers.Activation("linear", dtype="float32", name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def build_clmr_projector(spec: str = "512-128", input_dim: int = 512, init: str = "keras",
                         name: str = "projector") -> keras.Model:
    """Spijkervet/SimCLR's projector: Dense (no bias) + ReLU ..., last Dense without bias; no BN.

    Args:
      spec: output widths, e.g. "512-128" (thesis) or "512-64" (CLMR code's projection_dim 64).
      input_dim: width of the representation fed in.
      init: "keras" or "torch" (nn.Linear's default), as in `build_sample_cnn`.
      name: model name.
    """
    widths = parse_spec(spec)
    inputs = keras.Input(shape=(input_dim,), name="representation")
    x = inputs
    for i, width in enumerate(widths[:-1]):
        x = keras.layers.Dense(width, use_bias=False, name=f"dense{i + 1}",
                               **initializers(init, int(x.shape[-1])))(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
    x = keras.layers.Dense(widths[-1], use_bias=False, name=f"dense{len(widths)}",
                           **initializers(init, int(x.shape[-1])))(x)
    outputs = keras.layers.Activation("linear", dtype="float32", name="embedding")(x)
    return keras.Model(inputs, outputs, name=name)


def build_projector(kind: str = "vicreg", spec: str = "8192-8192-8192", input_dim: int = 512,
                    init: str = "keras", ghost_batch_size: int | None = None,
                    name: str = "projector") -> keras.Model:
    """Projector by kind: "vicreg" (BN, biases) or "clmr" (no BN, no biases).

    `init` and `ghost_batch_size` as in `build_sample_cnn` (the CLMR projector has no BN).
    """
    if kind == "vicreg":
        return build_vicreg_projector(spec, input_dim, init=init,
                                      ghost_batch_size=ghost_batch_size, name=name)
    if kind == "clmr":
        return build_clmr_projector(spec, input_dim, init=init, name=name)
    raise ValueError(f"projector kind must be 'vicreg' or 'clmr', got {kind!r}")


def build_probe_head(kind: str = "linear", input_dim: int = 512, num_labels: int = 50,
                     hidden: int | None = None, name: str = "probe_head") -> keras.Model:
    """CLMR's probe heads, returning logits.

    Args:
      kind: "linear" (Dense(num_labels)) or "mlp" (Dense(hidden) + ReLU + Dense(num_labels)).
      input_dim: representation width.
      num_labels: number of tags / classes.
      hidden: MLP hidden width; CLMR uses the representation width (default).
      name: model name.
    """
    inputs = keras.Input(shape=(input_dim,), name="features")
    x = inputs
    if kind == "mlp":
        x = keras.layers.Dense(hidden or input_dim, activation="relu", name="hidden")(x)
    elif kind != "linear":
        raise ValueError(f"probe head must be 'linear' or 'mlp', got {kind!r}")
    outputs = keras.layers.Dense(num_labels, dtype="float32", name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
