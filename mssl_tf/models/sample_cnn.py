"""SampleCNN encoder: CLMR's raw-waveform convolutional encoder, channels-last, keras-only.

Layer for layer the `SampleCNN(strides=[3]*9)` of Spijkervet/CLMR: a strided stem, nine
Conv1D(k3, same) + BN + ReLU + MaxPool(3) blocks and a final Conv1D(rep_dim, k3) + BN + ReLU,
which turn 59,049 = 3**10 samples into a length-1 sequence of `rep_dim` features.
"""

from __future__ import annotations

import keras

from mssl_tf import constants
from mssl_tf.models.layers import batch_norm, initializers

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
                  synchronized: bool, name: str, init: str = "keras",
                  ghost_batch_size: int | None = None):
    x = keras.layers.Conv1D(filters, kernel_size, strides=strides, padding=padding,
                            name=f"{name}_conv",
                            **initializers(init, kernel_size * int(x.shape[-1])))(x)
    x = batch_norm(BN_MOMENTUM, BN_EPSILON, synchronized=synchronized,
                   ghost_batch_size=ghost_batch_size, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_sample_cnn(rep_dim: int = 512, crop_len: int = constants.CROP_LEN,
                     widths: tuple[int, ...] = DEFAULT_WIDTHS,
                     synchronized_bn: bool | None = None, init: str = "keras",
                     ghost_batch_size: int | None = None,
                     name: str = "sample_cnn") -> keras.Model:
    """Builds CLMR's SampleCNN encoder.

    Args:
      rep_dim: width of the final convolution = size of the representation (32..2048; the
        thesis uses 512 and sweeps smaller sizes in Table A.2).
      crop_len: input length in samples; must reduce to one frame (59,049 for 9 blocks).
      widths: output widths of the pooling blocks (CLMR's by default). A demo may shrink them.
      synchronized_bn: synchronize BatchNorm statistics across replicas. None = on for the
        TensorFlow backend (CLMR trains with sync_batchnorm); JAX computes BN on the global batch
        under `keras.distribution.DataParallel` anyway. Ignored (off) with `ghost_batch_size`.
      init: "keras" (Glorot-uniform kernels, zero biases) or "torch" (PyTorch's nn.Conv1d
        default, what CLMR and the thesis started from; `mssl_tf.models.layers.initializers`).
      ghost_batch_size: BatchNorm statistics per group of this many rows in training (the
        thesis' unsynchronised per-core BN on a TPU v3-8: the per-core batch); None = over the
        whole batch (synchronised across replicas per `synchronized_bn`).
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
    if ghost_batch_size:
        synchronized_bn = False
    blocks = {"synchronized": synchronized_bn, "init": init, "ghost_batch_size": ghost_batch_size}
    inputs = keras.Input(shape=(crop_len,), dtype="float32", name="waveform")
    x = keras.layers.Reshape((crop_len, 1), name="to_channels")(inputs)
    x = _conv_bn_relu(x, STEM_WIDTH, kernel_size=3, strides=3, padding="valid",
                      name="stem", **blocks)
    for i, width in enumerate(widths):
        x = _conv_bn_relu(x, width, kernel_size=3, strides=1, padding="same",
                          name=f"block{i + 1}", **blocks)
        x = keras.layers.MaxPooling1D(POOL, strides=POOL, name=f"block{i + 1}_pool")(x)
    x = _conv_bn_relu(x, rep_dim, kernel_size=3, strides=1, padding="same",
                      name="final", **blocks)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Activation("linear", dtype="float32", name="representation")(x)
    return keras.Model(inputs, outputs, name=name)
