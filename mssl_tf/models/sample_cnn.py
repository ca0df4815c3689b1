"""SampleCNN encoder: CLMR's raw-waveform convolutional encoder, channels-last, keras-only.

Layer for layer the `SampleCNN(strides=[3]*9)` of Spijkervet/CLMR: a strided stem, nine
Conv1D(k3, same) + BN + ReLU + MaxPool(3) blocks and a final Conv1D(rep_dim, k3) + BN + ReLU,
which turn 59,049 = 3**10 samples into a length-1 sequence of `rep_dim` features.
"""

from __future__ import annotations

import keras

DEFAULT_WIDTHS = (128, 128, 256, 256, 256, 256, 256, 256, 512)
STEM_WIDTH = 128
POOL = 3
# PyTorch BatchNorm1d defaults (momentum 0.1 there is 0.9 here), not Keras' 0.99 / 1e-3.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def reduced_length(crop_len: int, num_blocks: int = len(DEFAULT_WIDTHS)) -> int:
    """Sequence length after the stem and `num_blocks` pooling blocks (valid arithmetic)."""
    length = (crop_len - 3) // 3 + 1  # stem: kernel 3, stride 3, valid
    for _ in range(num_blocks):
        length //= POOL
    return length


def check_crop_len(crop_len: int, num_blocks: int = len(DEFAULT_WIDTHS)) -> None:
    """Raises ValueError unless `crop_len` reduces to exactly one frame.

    CLMR flattens the final length-1 sequence into the representation; any other length would
    silently change the representation size (anchors pitfall 2).
    """
    need = 3 ** (num_blocks + 1)
    if crop_len < need or reduced_length(crop_len, num_blocks) != 1:
        raise ValueError(
            f"crop_len={crop_len} does not reduce to length 1 in the SampleCNN "
            f"({num_blocks} pooling blocks); use crop_len in [{need}, {2 * need - 1}], "
            f"e.g. {need} (= 3**{num_blocks + 1}) as CLMR does.")


def _conv_bn_relu(x, filters: int, *, kernel_size: int, strides: int, padding: str,
                  synchronized: bool, name: str):
    x = keras.layers.Conv1D(filters, kernel_size, strides=strides, padding=padding,
                            name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                        synchronized=synchronized, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_sample_cnn(rep_dim: int = 512, crop_len: int = 59049,
                     widths: tuple[int, ...] = DEFAULT_WIDTHS,
                     synchronized_bn: bool | None = None,
                     name: str = "sample_cnn") -> keras.Model:
    """Builds CLMR's SampleCNN encoder.

    Args:
      rep_dim: width of the final convolution = size of the representation (32..2048; the
        thesis uses 512 and sweeps smaller sizes in Table A.2).
      crop_len: input length in samples; must reduce to one frame (59,049 for 9 blocks).
      widths: output widths of the pooling blocks (CLMR's by default). A demo may shrink them.
      synchronized_bn: synchronize BatchNorm statistics across replicas. None = on for the
        TensorFlow backend (CLMR trains with sync_batchnorm); JAX computes BN on the global batch
        under `keras.distribution.DataParallel` anyway.
      name: model name.

    Returns:
      A functional keras.Model mapping float32 waveforms `(batch, crop_len)` to
      `(batch, rep_dim)` (float32 even under a mixed-precision policy).
    """
    if not 1 <= rep_dim <= 8192:
        raise ValueError(f"rep_dim must be in [1, 8192], got {rep_dim}")
    check_crop_len(crop_len, len(widths))
    if synchronized_bn is None:
        synchronized_bn = keras.backend.backend() == "tensorflow"
    inputs = keras.Input(shape=(crop_len,), dtype="float32", name="waveform")
    x = keras.layers.Reshape((crop_len, 1), name="to_channels")(inputs)
    x = _conv_bn_relu(x, STEM_WIDTH, kernel_size=3, strides=3, padding="valid",
                      synchronized=synchronized_bn, name="stem")
    for i, width in enumerate(widths):
        x = _conv_bn_relu(x, width, kernel_size=3, strides=1, padding="same",
                          synchronized=synchronized_bn, name=f"block{i + 1}")
        x = keras.layers.MaxPooling1D(POOL, strides=POOL, name=f"block{i + 1}_pool")(x)
    x = _conv_bn_relu(x, rep_dim, kernel_size=3, strides=1, padding="same",
                      synchronized=synchronized_bn, name="final")
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Activation("linear", dtype="float32", name="representation")(x)
    return keras.Model(inputs, outputs, name=name)
