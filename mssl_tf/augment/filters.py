"""Per-example windowed-sinc high/low-pass filters (julius' FIR design) by FFT convolution.

torchaudio-augmentations' HighLowPass calls `julius.lowpass_filter` / `julius.highpass_filter`:
a Hann-windowed sinc with `zeros=8` zero crossings, `half_size = int(zeros / cutoff / 2)` taps on
each side (cutoff in cycles per sample), normalised to unit DC gain, replicate padding so the output
keeps the input length, and high-pass = x - low-pass(x). Here every example has its own cutoff, so
every example gets its own kernel: all kernels share the longest support of the configured range and
are zero outside their own half size, which is exactly the same filter (the replicate-padded samples
beyond an example's half size are multiplied by zero taps).
"""

from __future__ import annotations

import math

from keras import ops

#: Zero crossings of julius' windowed sinc on each side of the centre tap.
ZEROS = 8


def half_size(cutoff_hz: float, sample_rate: int, zeros: int = ZEROS) -> int:
    """julius' half kernel size `int(zeros / cutoff / 2)` for a cutoff in Hz."""
    if not 0.0 < cutoff_hz:
        raise ValueError(f"filter cutoff {cutoff_hz} Hz must be positive")
    return int(zeros / (cutoff_hz / sample_rate) / 2)


def next_fast_len(n: int) -> int:
    """Smallest power of two >= n (FFT length that every backend handles well)."""
    return 1 << max(int(n) - 1, 1).bit_length()


def lowpass_kernels(cutoff_hz, sample_rate: int, max_half_size: int, zeros: int = ZEROS):
    """One julius low-pass kernel per example, all of length 2 * max_half_size + 1.

    Args:
      cutoff_hz: (batch,) float32 cutoff frequencies in Hz.
      sample_rate: sampling rate in Hz.
      max_half_size: common half support; at least `half_size` of the lowest cutoff.
      zeros: zero crossings on each side (julius default 8).

    Returns:
      (batch, 2 * max_half_size + 1) float32 kernels, each summing to 1.
    """
    cutoff = ops.cast(cutoff_hz, "float32")[:, None] / float(sample_rate)
    # int(zeros / cutoff / 2), as julius computes it in float64 from the Python float cutoff.
    half = ops.floor(float(zeros) / cutoff / 2.0)
    half = ops.minimum(half, float(max_half_size))
    t = ops.arange(-max_half_size, max_half_size + 1, dtype="float32")[None, :]
    # Hann window of 2*half+1 points (periodic=False), centred on t = 0 and zero outside.
    window = 0.5 + 0.5 * ops.cos(math.pi * t / ops.maximum(half, 1.0))
    window = ops.where(ops.abs(t) <= half, window, 0.0)
    arg = 2.0 * math.pi * cutoff * t
    safe = ops.where(t == 0.0, 1.0, arg)
    sinc = ops.where(t == 0.0, 1.0, ops.sin(safe) / safe)
    kernel = 2.0 * cutoff * window * sinc
    return kernel / ops.sum(kernel, axis=-1, keepdims=True)


def fft_convolve_same(x, kernels):
    """Centred convolution of each row of `x` with its own odd-length kernel, replicate padding.

    Args:
      x: (batch, length) float32 signals.
      kernels: (batch, 2 * h + 1) float32 kernels (symmetric ones give julius' correlation too).

    Returns:
      (batch, length) float32, `out[n] = sum_t k[t] * xpad[n + t]` over t in [-h, h].
    """
    length = x.shape[-1]
    taps = kernels.shape[-1]
    h = (taps - 1) // 2
    # Replicate padding (julius pads with mode='replicate').
    first = ops.repeat(x[:, :1], h, axis=1)
    last = ops.repeat(x[:, -1:], h, axis=1)
    padded = ops.concatenate([first, x, last], axis=1)
    n_fft = next_fast_len(length + 2 * h)
    xr, xi = ops.rfft(padded, fft_length=n_fft)
    kr, ki = ops.rfft(kernels, fft_length=n_fft)
    yr = xr * kr - xi * ki
    yi = xr * ki + xi * kr
    y = ops.irfft((yr, yi), fft_length=n_fft)
    # Circular convolution index 2h + n is the centred output n; no wrap since n_fft >= len + 2h.
    return y[:, 2 * h:2 * h + length]


def high_low_pass(x, cutoff_hz, highpass, sample_rate: int, max_half_size: int):
    """julius high-pass (where `highpass`) or low-pass per example, one FFT convolution for both.

    Args:
      x: (batch, length) float32.
      cutoff_hz: (batch,) cutoff in Hz of each example's filter.
      highpass: (batch,) bool, True for a high-pass (x - lowpass(x)), False for a low-pass.
      sample_rate: sampling rate in Hz.
      max_half_size: half support covering the lowest cutoff in use (`half_size(min_cutoff)`).

    Returns:
      (batch, length) float32 filtered signals.
    """
    low = fft_convolve_same(x, lowpass_kernels(cutoff_hz, sample_rate, max_half_size))
    return ops.where(ops.reshape(highpass, (-1, 1)), x - low, low)


__all__ = ["ZEROS", "half_size", "next_fast_len", "lowpass_kernels", "fft_convolve_same",
           "high_low_pass"]
