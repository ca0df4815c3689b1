"""Phase-locked pitch shift: measured pitch, onset positions, length, level, non-finite input."""

import numpy as np
import pytest

from mssl_tf.augment import pitch

SR = 22050
LENGTH = 59049
CENTS = np.array([200.0, -200.0, 700.0, -700.0], np.float32)


def _frequency(y: np.ndarray, low: float, high: float) -> float:
    """Peak frequency in [low, high] from a zero-padded Hann-windowed FFT (0.02 Hz bins)."""
    n = 1 << 20
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y)), n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    band = (freqs > low) & (freqs < high)
    return freqs[band][np.argmax(spectrum[band])]


def _shift(signal: np.ndarray, cents=CENTS) -> np.ndarray:
    x = np.tile(signal.astype(np.float32), (len(cents), 1))
    return np.asarray(pitch.pitch_shift(x, cents, 700, sample_rate=SR))


@pytest.mark.slow
def test_tone_and_harmonic_tone_land_within_20_cents():
    t = np.arange(LENGTH) / SR
    tone = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    harmonic = sum(0.3 / k * np.sin(2 * np.pi * 220.0 * k * t + k) for k in range(1, 6))
    for signal, f0 in ((tone, 440.0), (harmonic, 220.0)):
        shifted = _shift(signal)
        assert shifted.shape == (4, LENGTH)
        for y, cents in zip(shifted, CENTS):
            target = f0 * 2 ** (cents / 1200)
            measured = _frequency(y[4096:-4096], 0.8 * target, 1.2 * target)
            assert abs(1200 * np.log2(measured / target)) < 20.0, (f0, cents, measured)
            # Duration and level kept: same length, RMS within 10 %.
            assert abs(np.std(y[4096:-4096]) / np.std(signal) - 1) < 0.1
        if f0 == 220.0:  # the upper partials move with the fundamental
            for y, cents in zip(shifted, CENTS):
                third = 3 * 220.0 * 2 ** (cents / 1200)
                measured = _frequency(y[4096:-4096], 0.95 * third, 1.05 * third)
                assert abs(1200 * np.log2(measured / third)) < 20.0


@pytest.mark.slow
def test_click_train_keeps_click_positions_within_10_ms():
    clicks = np.zeros(LENGTH)
    # Irregular spacing so that no click sits at the same phase of the analysis hop.
    positions = np.arange(2000, LENGTH - 2000, 4410) + np.arange(13) * 37
    positions = positions[positions < LENGTH - 2000]
    clicks[positions] = 1.0
    shifted = _shift(clicks)
    smooth = np.hanning(45)  # 2 ms energy envelope
    for y, cents in zip(shifted, CENTS):
        envelope = np.convolve(y ** 2, smooth, mode="same")
        for p in positions:
            found = p - 441 + np.argmax(envelope[p - 441:p + 441])
            assert abs(found - p) / SR * 1000 < 10.0, (cents, p, found)


def test_zero_cents_is_nearly_transparent():
    t = np.arange(8192) / SR
    tones = np.sin(2 * np.pi * 1000 * t) + 0.5 * np.sin(2 * np.pi * 3000 * t)
    noise = np.random.default_rng(0).standard_normal(8192) * 0.1
    x = np.stack([tones, noise]).astype(np.float32)
    y = np.asarray(pitch.pitch_shift(x, np.zeros(2, np.float32), 700))
    err = y[:, 1024:-1024] - x[:, 1024:-1024]
    err_db = 10 * np.log10(np.mean(err ** 2, axis=1) / np.mean(x[:, 1024:-1024] ** 2, axis=1))
    # At ratio 1 the vocoder resynthesises its input; only the Nyquist bin (zeroed by the
    # anti-aliasing ramp) is lost, which matters for white noise only.
    assert err_db[0] < -60.0 and err_db[1] < -30.0, err_db


def test_non_finite_clip_is_returned_unchanged():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((2, 4096)) * 0.1).astype(np.float32)
    x[1, 100] = np.nan
    y = np.asarray(pitch.pitch_shift(x, np.array([300.0, 300.0], np.float32), 700))
    np.testing.assert_array_equal(y[1], x[1])
    assert np.all(np.isfinite(y[0])) and not np.allclose(y[0], x[0], atol=1e-3)


def test_any_length_and_short_clips():
    for length in (100, 1000, 3001):
        x = np.sin(np.arange(length) * 0.3).astype(np.float32)[None]
        y = np.asarray(pitch.pitch_shift(x, np.array([-500.0], np.float32), 700))
        assert y.shape == (1, length) and np.all(np.isfinite(y))


def test_nearest_peak():
    mag = np.array([[0.0, 1.0, 0.5, 0.2, 0.3, 0.9, 0.1, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(pitch.nearest_peak(mag))[0],
                                  [1, 1, 1, 1, 5, 5, 5, 5, 5])
    flat = np.zeros((1, 5), np.float32)  # no peak: every bin is its own reference
    np.testing.assert_array_equal(np.asarray(pitch.nearest_peak(flat))[0], np.arange(5))


def test_rejects_long_windows():
    with pytest.raises(ValueError, match="n_fft=2048"):
        pitch.pitch_shift(np.zeros((1, 4096), np.float32), np.zeros(1, np.float32), 700,
                          n_fft=2048)
