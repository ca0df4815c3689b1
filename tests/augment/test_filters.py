"""julius windowed-sinc high/low-pass per example: kernels, padding, and attenuation by FFT."""

import numpy as np
import pytest

from mssl_tf.augment import filters

SR = 22050


def julius_kernel(cutoff_hz: float, sample_rate: int = SR, zeros: int = 8) -> np.ndarray:
    """julius.lowpass LowPassFilters kernel, transcribed in float64."""
    cutoff = cutoff_hz / sample_rate
    half = int(zeros / cutoff / 2)
    window = np.hanning(2 * half + 1)  # torch.hann_window(periodic=False)
    t = np.arange(-half, half + 1)
    kernel = 2 * cutoff * window * np.sinc(2 * cutoff * t)  # np.sinc(u) = sin(pi u) / (pi u)
    return kernel / kernel.sum()


def julius_filter(x: np.ndarray, cutoff_hz: float, highpass: bool) -> np.ndarray:
    """Replicate padding + correlation with the kernel (+ x - low for the high-pass)."""
    kernel = julius_kernel(cutoff_hz)
    half = len(kernel) // 2
    padded = np.pad(x, half, mode="edge")
    low = np.correlate(padded, kernel, mode="valid")
    return x - low if highpass else low


def test_half_sizes_match_reference_at_22050():
    # anchors: 200 Hz high-pass -> 883 taps, 2200 Hz low-pass -> 81 taps.
    assert 2 * filters.half_size(200.0, SR) + 1 == 883
    assert 2 * filters.half_size(2200.0, SR) + 1 == 81


def test_kernels_match_julius():
    cutoffs = np.array([200.0, 777.7, 2200.0, 3999.0], np.float32)
    max_half = filters.half_size(200.0, SR)
    kernels = np.asarray(filters.lowpass_kernels(cutoffs, SR, max_half))
    for row, cutoff in zip(kernels, cutoffs):
        ref = julius_kernel(float(cutoff))
        half = len(ref) // 2
        np.testing.assert_allclose(row[max_half - half:max_half + half + 1], ref, atol=2e-6)
        assert np.all(row[:max_half - half] == 0) and np.all(row[max_half + half + 1:] == 0)


def test_filter_equals_julius_with_replicate_padding():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3000)) * 0.3 + 0.5  # an offset makes the edge padding matter
    cutoffs = np.array([200.0, 1200.0, 2200.0, 4000.0], np.float32)
    highpass = np.array([True, True, False, False])
    y = np.asarray(filters.high_low_pass(x.astype(np.float32), cutoffs, highpass, SR,
                                         filters.half_size(200.0, SR)))
    for row, xi, c, hp in zip(y, x, cutoffs, highpass):
        np.testing.assert_allclose(row, julius_filter(xi, float(c), hp), atol=1e-4)


def _gain_db(cutoff: float, highpass: bool, freq: float) -> float:
    """Measured gain of a tone through the filter: FFT amplitude at the tone, centre of the clip."""
    n = 16384
    t = np.arange(n) / SR
    freq = round(freq * 4096 / SR) * SR / 4096  # an exact bin of the 4096-point analysis
    x = np.sin(2 * np.pi * freq * t).astype(np.float32)[None]
    y = np.asarray(filters.high_low_pass(x, np.array([cutoff], np.float32), np.array([highpass]),
                                         SR, filters.half_size(200.0, SR)))[0]
    mid = slice(n // 2 - 2048, n // 2 + 2048)
    window = np.hanning(4096)
    amplitude = lambda s: np.max(np.abs(np.fft.rfft(s[mid] * window)))  # noqa: E731
    return 20 * np.log10(amplitude(y) / amplitude(x[0]))


@pytest.mark.parametrize("cutoff", [2200.0, 3100.0, 4000.0])
def test_lowpass_attenuation_by_fft(cutoff):
    assert _gain_db(cutoff, False, 2 * cutoff) < -20.0  # one octave into the stop band
    assert abs(_gain_db(cutoff, False, cutoff / 2)) < 1.0  # one octave into the pass band


@pytest.mark.parametrize("cutoff", [200.0, 700.0, 1200.0])
def test_highpass_attenuation_by_fft(cutoff):
    assert _gain_db(cutoff, True, cutoff / 2) < -20.0
    assert abs(_gain_db(cutoff, True, 2 * cutoff)) < 1.0
