"""Per-clip random draws for AudioAugment: counter-based uniforms keyed by seed state and content.

Why not `keras.random.uniform(..., seed=SeedGenerator)` directly: under a TensorFlow
MirroredStrategy/TPUStrategy every replica holds the same SeedGenerator state, so every replica
would draw the same parameters for the clip at the same position of its shard (measured: identical
gains and pitch shifts on both replicas). Mixing a few quantised samples of each clip into its key
separates the replicas (their clips differ) without TensorFlow-only replica ids, and stays exact and
deterministic on every backend (integer hashing, no float reductions). The SeedGenerator still
provides the state, so draws advance on every call and Keras threads the state through compiled
steps on JAX.
"""

from __future__ import annotations

import numpy as np
from keras import ops

#: Samples at the start of each clip mixed into its key.
CONTENT_SAMPLES = 8


def lowbias32(h):
    """Chris Wellons' lowbias32 integer hash (uint32 in, uint32 out, wrapping arithmetic)."""
    h = ops.bitwise_xor(h, ops.right_shift(h, np.uint32(16)))
    h = ops.multiply(h, np.uint32(0x7FEB352D))
    h = ops.bitwise_xor(h, ops.right_shift(h, np.uint32(15)))
    h = ops.multiply(h, np.uint32(0x846CA68B))
    return ops.bitwise_xor(h, ops.right_shift(h, np.uint32(16)))


def _uint32(values):
    """int/float tensor -> uint32 (two's complement wrap for negative int32)."""
    return ops.cast(ops.cast(values, "int32"), "uint32")


def clip_keys(seed_state, x):
    """One uint32 key per clip from the generator state, the clip's position and its first samples.

    Args:
      seed_state: (2,) integer state drawn from a `keras.random.SeedGenerator` (`.next()`).
      x: (batch, length) float32 clips.

    Returns:
      (batch,) uint32 keys.
    """
    state = ops.cast(seed_state, "uint32")  # int64 on TensorFlow, uint32 on JAX
    key = lowbias32(ops.bitwise_xor(state[0], lowbias32(state[1] + np.uint32(0x9E3779B9))))
    head = x[:, :min(CONTENT_SAMPLES, x.shape[-1])]
    head = ops.where(ops.isfinite(head), ops.clip(head, -1.5, 1.5), 0.0)
    quantised = _uint32(ops.round(head * 32768.0))
    # A wrapping linear mix of the samples with odd multipliers, then one hash: a chain of hashes
    # here makes XLA's compile time grow exponentially with the number of samples (measured on
    # JAX/CPU: 14 s for 4 samples, no end for 8).
    multipliers = (0x9E3779B1 + 0x7F4A7C16 * np.arange(head.shape[-1], dtype=np.uint64)) | 1
    multipliers = ops.convert_to_tensor((multipliers % (1 << 32)).astype(np.uint32))
    content = ops.sum(ops.multiply(quantised, multipliers[None, :]), axis=1)
    position = ops.cast(ops.arange(ops.shape(x)[0], dtype="int32"), "uint32")
    return lowbias32(ops.bitwise_xor(lowbias32(ops.bitwise_xor(position, key)), content))


def uniforms(keys, count: int):
    """(batch, count) float32 uniforms in [0, 1) from the per-clip keys (24 random bits each)."""
    counter = ops.cast(ops.arange(count, dtype="int32"), "uint32")
    counter = lowbias32(counter + np.uint32(0x632BE5AB))
    bits = lowbias32(ops.bitwise_xor(ops.reshape(keys, (-1, 1)), counter[None, :]))
    return ops.cast(ops.right_shift(bits, np.uint32(8)), "float32") * (1.0 / (1 << 24))


def key_bits(keys, salt: int):
    """(batch,) int32 derived keys (e.g. for the noise generator), independent of `uniforms`."""
    bits = lowbias32(ops.bitwise_xor(keys, lowbias32(ops.convert_to_tensor(np.uint32(salt)))))
    return ops.cast(ops.right_shift(bits, np.uint32(1)), "int32")
