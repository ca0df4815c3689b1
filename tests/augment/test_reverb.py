"""sox reverb in the frequency domain, against a sample-by-sample transcription of sox reverb.c."""

import math

import numpy as np
import pytest

from mssl_tf.augment import reverb as rv

SR = 22050


def numpy_sox_reverb(x: np.ndarray, reverberance: float, damping: float, room_size: float,
                     sample_rate: int, stereo_depth: float = 100.0) -> np.ndarray:
    """sox 14.4 reverb.c (freeverb) transcribed loop for loop, mono in, `channels 1` out."""
    a = -1.0 / math.log(1.0 - 0.3)
    b = 100.0 / (math.log(1.0 - 0.98) * a + 1.0)
    feedback = 1.0 - math.exp((reverberance - b) / (a * b))
    hf_damping = damping / 100.0 * 0.3 + 0.2
    scale = room_size / 100.0 * 0.9 + 0.1
    r = sample_rate / 44100.0
    depth = stereo_depth / 100.0
    channels = []
    for i in range(int(math.ceil(depth)) + 1):
        offset = i * depth
        combs, allpasses = [], []
        for length in (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617):
            combs.append([np.zeros(int(scale * r * (length + 12 * offset) + 0.5)), 0, 0.0])
            offset = -offset
        for length in (225, 341, 441, 556):
            allpasses.append([np.zeros(int(r * (length + 12 * offset) + 0.5)), 0])
            offset = -offset
        wet = np.zeros(len(x))
        for n, sample in enumerate(x):
            out = 0.0
            for comb in reversed(combs):  # comb_process
                buf, ptr, store = comb
                output = buf[ptr]
                store = output + (store - output) * hf_damping
                buf[ptr] = sample + store * feedback
                comb[1], comb[2] = (ptr + 1) % len(buf), store
                out += output
            for allpass in reversed(allpasses):  # allpass_process
                buf, ptr = allpass
                output = buf[ptr]
                buf[ptr] = out + output * 0.5
                allpass[1] = (ptr + 1) % len(buf)
                out = output - out
            wet[n] = out * 0.015
        channels.append(np.clip(x + wet, -1.0, 1.0))  # dry + wet, clipped per channel
    return np.mean(channels, axis=0)


def _burst(length: int, burst: int, seed: int = 0, level: float = 0.1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(length) * level
    x[burst:] = 0.0
    return x


@pytest.mark.parametrize("params", [(50, 50, 100), (99, 0, 0), (0, 99, 37), (99, 99, 99),
                                    (73, 12, 5)])
def test_matches_sox_transcription(params):
    x = _burst(3000, 1200, seed=params[0])
    y = np.asarray(rv.reverb(x[None].astype(np.float32), *[np.array([p], np.float32)
                                                          for p in params], SR))[0]
    ref = numpy_sox_reverb(x, *params, SR)
    assert np.max(np.abs(ref - x)) > 1e-2  # the wet part is really there
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_clipping_per_channel_like_sox():
    # Loud input at full reverberance drives the wet part past full scale; sox clips each channel.
    x = _burst(2000, 1500, seed=3, level=0.6)
    y = np.asarray(rv.reverb(x[None].astype(np.float32), np.array([99.0], np.float32),
                             np.array([0.0], np.float32), np.array([99.0], np.float32), SR))[0]
    ref = numpy_sox_reverb(x, 99, 0, 99, SR)
    assert np.mean(np.abs(ref) >= 1.0 - 1e-9) > 0.01
    # The wet level reaches several times full scale here; float32 rounding, amplified by the
    # un-weighting rho**-n, stays within 1e-4 of that level.
    np.testing.assert_allclose(y, ref, atol=1e-3)


def test_first_reflection_follows_room_size():
    # An impulse: the dry path is exact at t = 0 and the wet part starts at the shortest comb.
    x = np.zeros((3, 4000), np.float32)
    x[:, 0] = 0.5
    rooms = np.array([0.0, 50.0, 99.0], np.float32)
    y = np.asarray(rv.reverb(x, np.full(3, 50.0, np.float32), np.full(3, 50.0, np.float32),
                             rooms, SR))
    np.testing.assert_allclose(y[:, 0], 0.5, atol=1e-5)
    for row, room in zip(y, rooms):
        scale = room / 100 * 0.9 + 0.1
        first = min(int(scale * 0.5 * (1116 + 12 * s) + 0.5) for s in (0, 1))
        assert np.max(np.abs(row[1:first])) < 1e-5
        assert np.abs(row[first]) > 1e-4


def test_tail_energy_grows_with_reverberance():
    length, burst = 22050, 2205  # 0.1 s of noise, then 0.9 s of tail
    x = np.tile(_burst(length, burst, seed=1).astype(np.float32), (3, 1))
    levels = np.array([0.0, 50.0, 99.0], np.float32)
    y = np.asarray(rv.reverb(x, levels, np.full(3, 50.0, np.float32), np.full(3, 80.0, np.float32),
                             SR))
    tail = y[:, burst + 1102:]  # from 50 ms after the burst
    energy = np.sum(tail ** 2, axis=1)
    assert energy[0] < energy[1] < energy[2]
    assert energy[2] > 10 * energy[0]


def test_damping_removes_high_frequencies_from_the_tail():
    length, burst = 22050, 2205
    x = np.tile(_burst(length, burst, seed=2).astype(np.float32), (2, 1))
    damping = np.array([0.0, 99.0], np.float32)
    y = np.asarray(rv.reverb(x, np.full(2, 90.0, np.float32), damping, np.full(2, 80.0, np.float32),
                             SR))
    tail = y[:, burst + 4410:]
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(tail.shape[1]), axis=1)) ** 2
    freqs = np.fft.rfftfreq(tail.shape[1], 1 / SR)
    high = spectrum[:, freqs > 5000].sum(axis=1)
    low = spectrum[:, freqs < 1000].sum(axis=1)
    ratio_db = 10 * np.log10(high / low)
    # More damping, darker tail: at least 6 dB less high-frequency energy relative to lows.
    assert ratio_db[1] < ratio_db[0] - 6.0
