"""Pure per-example audio transforms: (batch, length) float32 in, same shape out, one row per clip.

Every function is deterministic given its parameters (random draws live in `AudioAugment`), uses
keras.ops only (TensorFlow and JAX backends, XLA-compilable) and keeps static shapes. Semantics
follow torchaudio-augmentations 0.2.4 as used by CLMR (the reference's per-clip `(channels, time)`
becomes a row of the batch). The longer transforms live in their own modules, re-exported here.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from mssl_tf.augment.draws import lowbias32
from mssl_tf.augment.filters import high_low_pass
from mssl_tf.augment.pitch import pitch_shift
from mssl_tf.augment.reverb import reverb


def _column(values):
    """(batch,) -> (batch, 1) float32 for broadcasting against (batch, length)."""
    return ops.reshape(ops.cast(values, "float32"), (-1, 1))


def polarity_inversion(x):
    """PolarityInversion: x -> -x."""
    return -x


def clip_std(x):
    """Unbiased standard deviation of each clip (torch.std), shape (batch, 1)."""
    n = x.shape[-1]
    mean = ops.mean(x, axis=-1, keepdims=True)
    var = ops.sum(ops.square(x - mean), axis=-1, keepdims=True) / max(n - 1, 1)
    return ops.sqrt(var)


def add_noise(x, std_ratio, unit_noise):
    """Noise: x + N(0, std_ratio * std(x)) with the standard normal draw passed in.

    torchaudio-augmentations' Noise draws noise_std ~ U(min_snr * std(x), max_snr * std(x)), so
    `std_ratio` is the uniform draw in [min_snr, max_snr] ("snr" there is a std ratio).

    Args:
      x: (batch, length) float32.
      std_ratio: (batch,) noise std relative to each clip's std.
      unit_noise: (batch, length) standard normal samples.
    """
    return x + unit_noise * (_column(std_ratio) * clip_std(x))


def counter_normal(keys, length: int):
    """Standard normal noise (batch, length) from one random int32 key per example.

    A counter-based generator (hashed sample index, mixed with the key, hashed again; Box-Muller)
    instead of `keras.random.normal`: XLA on CPU generates large random tensors about 25x slower
    than this (about 3 s for 64 clips of 59,049 samples), and the noise must be drawn for every clip
    because the op is selected per clip by mask. The per-example key comes from the layer's
    draws (mssl_tf.augment.draws), so noise stays reproducible and advances with its state.

    Args:
      keys: (batch,) int32 keys.
      length: samples per example.
    """
    counter = ops.cast(ops.arange(2 * length, dtype="int32"), "uint32")[None, :]
    keys = ops.cast(ops.reshape(keys, (-1, 1)), "uint32")
    bits = lowbias32(ops.bitwise_xor(lowbias32(counter), lowbias32(keys)))
    # 24 random bits -> uniform in (0, 1), never exactly 0 (log) or 1.
    uniform = (ops.cast(ops.right_shift(bits, np.uint32(8)), "float32") + 0.5) * (1.0 / (1 << 24))
    u1, u2 = uniform[:, :length], uniform[:, length:]
    return ops.sqrt(-2.0 * ops.log(u1)) * ops.cos((2.0 * math.pi) * u2)


def gain(x, gain_db):
    """Gain: x * 10**(gain_db / 20), then clamp to [-1, 1] (torchaudio's Vol in dB mode)."""
    return ops.clip(x * ops.power(10.0, _column(gain_db) / 20.0), -1.0, 1.0)


def delay_offset(delay_ms, sample_rate: int):
    """CLMR's delay in samples, `int(ms * sample_rate / 1000)` (truncation), int32.

    Computed in integers so that e.g. 200 ms at 22050 Hz is exactly 4410 samples (float32 would
    give 4409.9998 and truncate to 4409). `delay_ms` holds whole milliseconds.
    """
    return ops.floor_divide(ops.cast(delay_ms, "int32") * int(sample_rate), 1000)


def delay(x, offset, volume_factor: float = 0.5):
    """Delay: (x + volume_factor * x delayed by `offset` samples) / 2, same length.

    Args:
      x: (batch, length) float32.
      offset: (batch,) int32 delay in samples (see `delay_offset`).
      volume_factor: level of the delayed copy (CLMR 0.5).
    """
    length = x.shape[-1]
    n = ops.arange(length, dtype="int32")[None, :]
    source = n - ops.reshape(offset, (-1, 1))
    delayed = ops.take_along_axis(x, ops.maximum(source, 0), axis=-1)
    delayed = ops.where(source >= 0, delayed, 0.0)
    return (x + volume_factor * delayed) / 2.0


__all__ = ["polarity_inversion", "clip_std", "counter_normal", "add_noise", "gain", "delay_offset",
           "delay",
           "high_low_pass", "pitch_shift", "reverb"]
