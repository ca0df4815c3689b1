"""Per-example pitch shift that keeps duration and tempo: phase-locked vocoder, then resampling.

CLMR shifts pitch with sox `pitch <cents>` + `rate` (WSOLA then resampling), which runs on the CPU
one clip at a time. Here all clips of a batch are shifted at once with static shapes:

1. Time stretch by r = 2**(cents / 1200) with a phase vocoder (Hann, `n_fft` <= 1024, synthesis
   hop n_fft / 4): output frame k is the analysis frame starting at round(k * hop / r), so each
   example has its own analysis hop hop / r. Phases advance by each bin's instantaneous frequency,
   measured between consecutive analysis frames, for all frames at once by a cumulative sum. A
   plain vocoder with a longer window smears onsets by tens of milliseconds; 1024 points at
   22.05 kHz plus phase locking keep them within a few milliseconds.
2. Identity phase locking (Laroche & Dolson 1999): every bin keeps its analysis phase offset from
   the nearest spectral peak, so partials stay coherent across bins and transients stay sharp.
3. Bins above the new Nyquist (sample_rate / 2 / r) are zeroed (anti-aliasing for upward shifts),
   then inverse STFT by overlap-add with exact window-sum normalisation.
4. Resampling the stretched signal at positions n * r (cubic interpolation) restores the length and
   multiplies every frequency by r.

Every example carries the same number of output frames (enough for the largest configured ratio);
examples with smaller ratios simply read fewer of them. Non-finite results fall back to the input,
as torchaudio-augmentations does.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from mssl_tf import constants

#: Largest STFT size that keeps onsets within a few milliseconds at 22.05 kHz.
MAX_N_FFT = 1024


def _periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def _wrap(phase):
    """Maps phases to [-pi, pi)."""
    two_pi = 2.0 * math.pi
    return phase - two_pi * ops.floor(phase / two_pi + 0.5)


def _running_extreme(values, largest: bool, reverse: bool, reach: int):
    """Running max (or min) along the last axis over a window of `reach` bins (shifted compares)."""
    n = values.shape[-1]
    fill = -1e9 if largest else 1e9
    shift = 1
    while shift < min(n, reach):
        pad = ops.ones_like(values[..., :shift]) * fill
        if reverse:
            shifted = ops.concatenate([values[..., shift:], pad], axis=-1)
        else:
            shifted = ops.concatenate([pad, values[..., :-shift]], axis=-1)
        values = ops.maximum(values, shifted) if largest else ops.minimum(values, shifted)
        shift *= 2
    return values


#: Bins farther than this from every spectral peak keep their own phase (no locking). Partials of
#: music are far denser; the limit bounds the cost of the peak search (log2 passes).
PEAK_REACH = 32


def nearest_peak(magnitude, reach: int = PEAK_REACH):
    """Index of the nearest local spectral maximum for every bin, shape like `magnitude` (int32).

    Bins with no peak within `reach` bins (e.g. silence) map to themselves.
    """
    bins = magnitude.shape[-1]
    lower = ops.concatenate([magnitude[..., :1] + 1.0, magnitude[..., :-1]], axis=-1)
    upper = ops.concatenate([magnitude[..., 1:], magnitude[..., -1:] - 1.0], axis=-1)
    # Strictly above the left neighbour and not below the right one: one peak per plateau.
    is_peak = ops.logical_and(magnitude > lower, magnitude >= upper)
    index = ops.zeros_like(magnitude) + ops.arange(bins, dtype="float32")
    before = _running_extreme(ops.where(is_peak, index, -1e9), True, False, reach)
    after = _running_extreme(ops.where(is_peak, index, 1e9), False, True, reach)
    peak = ops.where(index - before <= after - index, before, after)
    peak = ops.where(ops.abs(peak - index) >= reach, index, peak)
    return ops.cast(peak, "int32")


def num_output_frames(length: int, max_ratio: float, hop: int) -> int:
    """Stretched frames needed so that positions n * r, n < length, stay inside the signal."""
    return int(math.ceil((length * max_ratio + 4) / hop)) + 2


def pitch_shift(x, cents, max_abs_cents: float, sample_rate: int = constants.SAMPLE_RATE,
                n_fft: int = MAX_N_FFT, phase_locking: bool = True):
    """Shifts each clip by its own number of cents, keeping its length, duration and tempo.

    Args:
      x: (batch, length) float32 clips (length static).
      cents: (batch,) shifts in cents (CLMR: integers in [-700, 700]).
      max_abs_cents: largest |cents| that may occur; sizes the (static) stretched buffer.
      sample_rate: only used to validate the window length against the time resolution.
      n_fft: STFT size (hop n_fft / 4); at most `MAX_N_FFT`.
      phase_locking: identity phase locking around spectral peaks (on by default).

    Returns:
      (batch, length) float32 shifted clips; a clip whose result is not finite comes back
      unchanged.
    """
    if n_fft > MAX_N_FFT or n_fft < 16 or n_fft % 4:
        raise ValueError(f"pitch shift n_fft={n_fft} at {sample_rate} Hz: use a multiple of 4 "
                         f"between 16 and {MAX_N_FFT} (longer windows smear onsets)")
    length = x.shape[-1]
    hop = n_fft // 4
    bins = n_fft // 2 + 1
    max_ratio = 2.0 ** (abs(float(max_abs_cents)) / 1200.0)
    n_out = num_output_frames(length, max_ratio, hop)
    window = _periodic_hann(n_fft).astype(np.float32)

    x = ops.cast(x, "float32")
    ratio = ops.power(2.0, ops.cast(cents, "float32") / 1200.0)  # (batch,)
    frames, starts = _analysis_frames(x, ratio, n_fft, hop, n_out)
    real, imag = ops.rfft(frames * window, fft_length=n_fft)  # (batch, n_out, bins)
    mag = ops.sqrt(real * real + imag * imag)
    analysis_phase = ops.arctan2(imag, real)

    # Instantaneous frequency of every bin from the phase change between consecutive analysis
    # frames (start distance = the example's analysis hop, hop / r up to rounding).
    omega = ops.convert_to_tensor((2.0 * math.pi / n_fft * np.arange(bins)).astype(np.float32))
    distance = ops.cast(starts[:, 1:] - starts[:, :-1], "float32")[..., None]  # (batch, n_out-1, 1)
    expected = omega * distance
    deviation = _wrap(analysis_phase[:, 1:] - analysis_phase[:, :-1] - expected)
    frequency = omega + deviation / ops.maximum(distance, 1.0)  # radians per sample
    # Synthesis advance per hop; reduced mod 2 pi before the cumulative sum (float32 precision).
    step = ops.mod(frequency * float(hop), 2.0 * math.pi)
    accumulated = ops.concatenate(
        [analysis_phase[:, :1], analysis_phase[:, :1] + ops.cumsum(step, axis=1)], axis=1)

    if phase_locking:
        peak = nearest_peak(mag)
        peak_phase = ops.take_along_axis(accumulated, peak, axis=-1)
        peak_analysis = ops.take_along_axis(analysis_phase, peak, axis=-1)
        out_phase = peak_phase + (analysis_phase - peak_analysis)
    else:
        out_phase = accumulated

    # Anti-aliasing: bins above the shifted signal's Nyquist would fold back after resampling.
    cutoff = (bins - 1) / ratio[:, None, None]
    bin_index = ops.arange(bins, dtype="float32")[None, None, :]
    mag = mag * ops.clip(cutoff - bin_index, 0.0, 1.0)

    frames = ops.irfft((mag * ops.cos(out_phase), mag * ops.sin(out_phase)), fft_length=n_fft)
    frames = frames * window
    stretched = _overlap_add(frames, hop)  # (batch, (n_out + 3) * hop)
    envelope = _window_envelope(window, hop, n_out)
    start = n_fft // 2  # undo the centre padding of the analysis
    stretched = stretched[:, start:] * ops.convert_to_tensor(envelope[start:])

    shifted = _cubic_resample(stretched, ratio, length)
    finite = ops.all(ops.isfinite(shifted), axis=-1, keepdims=True)
    return ops.where(finite, shifted, x)


def _analysis_frames(x, ratio, n_fft: int, hop: int, n_out: int):
    """Frames of `x` starting at round(k * hop / r) (centre-padded coordinates), k < n_out.

    Reading the analysis at the example's own hop (instead of interpolating a fixed-hop STFT)
    keeps each frame's phase offsets aligned with its true position, which keeps onsets in place.

    Returns:
      frames (batch, n_out, n_fft) and starts (batch, n_out) int32.
    """
    length = x.shape[-1]
    half = n_fft // 2
    # Reflect padding at the start as a centred STFT; zeros after the end (read only by frames
    # whose samples are cropped away after resampling).
    if length > half:
        head = ops.flip(x[:, 1:half + 1], axis=1)
        padded = ops.pad(ops.concatenate([head, x], axis=1), [[0, 0], [0, n_fft]])
    else:  # too short to reflect: zeros
        padded = ops.pad(x, [[0, 0], [half, n_fft]])
    padded_length = length + half + n_fft
    k = ops.arange(n_out, dtype="float32")[None, :]
    starts = ops.cast(ops.round(k * (hop / ratio[:, None])), "int32")
    starts = ops.minimum(starts, padded_length - n_fft)
    rows = ops.arange(ops.shape(x)[0], dtype="int32")[:, None, None] * padded_length
    index = rows + starts[..., None] + ops.arange(n_fft, dtype="int32")[None, None, :]
    frames = ops.take(ops.reshape(padded, (-1,)), ops.reshape(index, (-1,)), axis=0)
    return ops.reshape(frames, (-1, n_out, n_fft)), starts


def _overlap_add(frames, hop: int):
    """Overlap-adds (batch, n, 4 * hop) frames with hop `hop` into (batch, (n + 3) * hop)."""
    n = frames.shape[1]
    parts = ops.reshape(frames, (-1, n, 4, hop))
    total = None
    for j in range(4):
        # Quarter j of frame m lands in output block m + j.
        piece = ops.pad(parts[:, :, j, :], [[0, 0], [j, 3 - j], [0, 0]])
        total = piece if total is None else total + piece
    return ops.reshape(total, (-1, (n + 3) * hop))


def _window_envelope(window: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """1 / sum of squared windows at each output sample (static), guarded where it vanishes."""
    n_fft = len(window)
    total = np.zeros((n_frames + 3) * hop)
    for m in range(n_frames):
        total[m * hop:m * hop + n_fft] += window ** 2
    return (1.0 / np.maximum(total, 1e-3 * total.max())).astype(np.float32)


def _cubic_resample(signal, ratio, length: int):
    """signal(n * ratio) for n < length per example, Catmull-Rom cubic interpolation."""
    available = signal.shape[-1]
    position = ops.arange(length, dtype="float32")[None, :] * ratio[:, None]
    base = ops.floor(position)
    t = position - base
    base = ops.cast(base, "int32")
    weights = (
        ((-0.5 * t + 1.0) * t - 0.5) * t,          # x[i - 1]
        ((1.5 * t - 2.5) * t) * t + 1.0,           # x[i]
        ((-1.5 * t + 2.0) * t + 0.5) * t,          # x[i + 1]
        ((0.5 * t - 0.5) * t) * t,                 # x[i + 2]
    )
    out = None
    for offset, w in zip((-1, 0, 1, 2), weights):
        index = ops.clip(base + offset, 0, available - 1)
        term = w * ops.take_along_axis(signal, index, axis=-1)
        out = term if out is None else out + term
    return out
