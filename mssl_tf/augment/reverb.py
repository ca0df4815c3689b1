"""sox's `reverb` effect (freeverb network) per example, evaluated exactly in the frequency domain.

CLMR's Reverb runs `sox reverb <reverberance> <hf-damping> <room-scale>` through WavAugment on a
mono clip: sox builds two freeverb networks (the second with comb/all-pass lengths spread by +-12
samples for stereo depth 100 %), writes `dry + wet` per channel clipped to [-1, 1], and
`channels 1` averages the two channels back to mono. The output keeps the input length (sox adds
no tail).

Each network is linear and time invariant: eight parallel feedback combs with a one-pole low-pass
in the loop, then four series all-passes, scaled by 0.015. So instead of synthesising an impulse
response, its exact transfer function is evaluated on an FFT grid. A recursive filter has an
infinite impulse response, which an N-point DFT would alias into the clip; weighting the input by
rho**n and evaluating the transfer function at z**-1 = rho * exp(-j w) (then undoing the weight)
suppresses that aliasing by rho**N = 1e-3 (-60 dB), with the FFT length only the next power of two
above the clip length. Constants are sox 14.4's `reverb.c`.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from mssl_tf.augment.filters import next_fast_len

#: freeverb comb and all-pass delay lengths at 44.1 kHz (sox reverb.c).
COMB_LENGTHS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
ALLPASS_LENGTHS = (225, 341, 441, 556)
#: Spread of the second channel's delay lengths, in samples at 44.1 kHz.
STEREO_ADJUST = 12
#: freeverb's fixed wet gain.
WET_SCALE = 0.015
#: rho**n_fft: how much of the impulse response beyond the FFT length may alias back in.
ALIAS_SUPPRESSION = 1e-3

# sox maps reverberance 0..100 % to a comb feedback of 0.3..0.98 on a log scale.
_FB_A = -1.0 / math.log(1.0 - 0.3)
_FB_B = 100.0 / (math.log(1.0 - 0.98) * _FB_A + 1.0)


def sox_feedback(reverberance):
    """Comb feedback for reverberance in percent: 0.3 at 0 %, 0.98 at 100 %."""
    return 1.0 - ops.exp((ops.cast(reverberance, "float32") - _FB_B) / (_FB_A * _FB_B))


def sox_hf_damping(damping):
    """One-pole damping coefficient for HF-damping in percent: 0.2 at 0 %, 0.5 at 100 %."""
    return ops.cast(damping, "float32") / 100.0 * 0.3 + 0.2


def sox_room_scale(room_size):
    """Delay-length scale for room-scale in percent: 0.1 at 0 %, 1.0 at 100 %."""
    return ops.cast(room_size, "float32") / 100.0 * 0.9 + 0.1


def _channel_offsets(stereo_depth: float) -> list[float]:
    """sox creates channel i with offset i * depth for i = 0 .. ceil(depth)."""
    depth = stereo_depth / 100.0
    return [i * depth for i in range(int(math.ceil(depth)) + 1)]


def comb_lengths(sample_rate: int, stereo_depth: float) -> np.ndarray:
    """Comb lengths before room scaling, r * (length +- 12 * offset), shape (channels, 8).

    sox alternates the sign of the channel's offset from one comb to the next.
    """
    r = sample_rate / 44100.0
    signs = np.array([1.0 if i % 2 == 0 else -1.0 for i in range(len(COMB_LENGTHS))])
    return np.stack([r * (np.array(COMB_LENGTHS) + STEREO_ADJUST * offset * signs)
                     for offset in _channel_offsets(stereo_depth)])


def allpass_sizes(sample_rate: int, offset: float) -> list[int]:
    """All-pass lengths of one sox channel (the spread's sign keeps alternating after the combs)."""
    r = sample_rate / 44100.0
    sign0 = 1 if len(COMB_LENGTHS) % 2 == 0 else -1
    return [int(r * (length + STEREO_ADJUST * offset * sign0 * (1 if i % 2 == 0 else -1)) + 0.5)
            for i, length in enumerate(ALLPASS_LENGTHS)]


def _allpass_response(sizes: list[int], q: np.ndarray) -> np.ndarray:
    """Series all-passes y = w[n-N] - x, w = x + 0.5 w[n-N]: H = (1.5 q^N - 1) / (1 - 0.5 q^N)."""
    h = np.ones_like(q)
    for size in sizes:
        qn = q ** size
        h = h * (1.5 * qn - 1.0) / (1.0 - 0.5 * qn)
    return h


def reverb(x, reverberance, damping, room_size, sample_rate: int, stereo_depth: float = 100.0,
           wet_gain_db: float = 0.0):
    """sox `reverb reverberance damping room_size` (dry + wet, mono in and out) per example.

    Args:
      x: (batch, length) float32 clips.
      reverberance: (batch,) reverberance in percent (CLMR: integers 0..99).
      damping: (batch,) HF damping in percent.
      room_size: (batch,) room scale in percent.
      sample_rate: sampling rate in Hz (sox scales its 44.1 kHz delay lengths by it).
      stereo_depth: sox stereo depth in percent; 100 (default) builds two channels, averaged.
      wet_gain_db: sox wet gain in dB.

    Returns:
      (batch, length) float32: mean over sox's channels of clip(dry + wet, -1, 1).
    """
    length = x.shape[-1]
    n_fft = next_fast_len(length)
    rho = ALIAS_SUPPRESSION ** (1.0 / n_fft)
    n = np.arange(length)
    weight = ops.convert_to_tensor((rho ** n).astype(np.float32))
    unweight = ops.convert_to_tensor((rho ** -n.astype(np.float64)).astype(np.float32))
    bins = n_fft // 2 + 1
    omega = 2.0 * np.pi * np.arange(bins) / n_fft
    q = rho * np.exp(-1j * omega)  # z**-1 on the weighted grid

    xr, xi = ops.rfft(ops.cast(x, "float32") * weight, fft_length=n_fft)  # (batch, bins)
    # Shapes below: (batch, channel, comb, bin); all combs of both channels at once.
    feedback = sox_feedback(reverberance)[:, None, None, None]
    d = sox_hf_damping(damping)[:, None, None, None]
    loop_gain = feedback * (1.0 - d)
    lengths = ops.convert_to_tensor(comb_lengths(sample_rate, stereo_depth).astype(np.float32))
    scale = sox_room_scale(room_size)[:, None, None]
    # sox: (size_t)(scale * r * (length + spread) + .5)
    sizes = ops.cast(ops.floor(scale * lengths[None] + 0.5), "int32")[..., None]
    q_r = ops.convert_to_tensor(q.real.astype(np.float32))
    q_i = ops.convert_to_tensor(q.imag.astype(np.float32))
    # A = 1 - d q, the comb's one-pole term, shared by all combs of an example.
    a_r = 1.0 - d * q_r
    a_i = -d * q_i
    # H_comb = q^N A / (A - g q^N) = A / t with t = A q^-N - g, and q^-N = rho^-N exp(+j w N).
    # The phase index (k * N) mod n_fft is exact in int32; summing 1 / t over the combs first
    # leaves one multiplication by A per example.
    k = ops.arange(bins, dtype="int32")
    index = ops.mod(k * sizes, n_fft)
    table = 2.0 * np.pi * np.arange(n_fft) / n_fft
    grow = ops.exp(ops.cast(sizes, "float32") * -math.log(rho))  # rho^-N
    e_r = grow * ops.take(ops.convert_to_tensor(np.cos(table).astype(np.float32)), index)
    e_i = grow * ops.take(ops.convert_to_tensor(np.sin(table).astype(np.float32)), index)
    t_r = a_r * e_r - a_i * e_i - loop_gain
    t_i = a_r * e_i + a_i * e_r
    t2 = t_r * t_r + t_i * t_i
    inv_r = ops.sum(t_r / t2, axis=2)  # sum over combs of 1 / t: (batch, channel, bins)
    inv_i = ops.sum(-t_i / t2, axis=2)
    a_r, a_i = a_r[:, :, 0], a_i[:, :, 0]
    hr = a_r * inv_r - a_i * inv_i
    hi = a_r * inv_i + a_i * inv_r
    wet_gain = WET_SCALE * 10.0 ** (wet_gain_db / 20.0)
    offsets = _channel_offsets(stereo_depth)
    ap = np.stack([_allpass_response(allpass_sizes(sample_rate, o), q) for o in offsets]) * wet_gain
    ap_r = ops.convert_to_tensor(ap.real.astype(np.float32))  # (channel, bins)
    ap_i = ops.convert_to_tensor(ap.imag.astype(np.float32))
    # Y = X * (1 + H_comb * H_allpass): dry plus wet, per channel.
    tr = 1.0 + hr * ap_r - hi * ap_i
    ti = hr * ap_i + hi * ap_r
    xr, xi = xr[:, None, :], xi[:, None, :]
    y = ops.irfft((xr * tr - xi * ti, xr * ti + xi * tr), fft_length=n_fft)[..., :length]
    # sox clips each channel to full scale, then `channels 1` averages them.
    return ops.mean(ops.clip(y * unweight, -1.0, 1.0), axis=1)
