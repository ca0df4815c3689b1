"""Per-example ops: polarity, noise, gain, delay (exact semantics of torchaudio-augmentations)."""

import numpy as np

from mssl_tf.augment import ops as aug_ops

SR = 22050


def test_polarity_is_exact_negation():
    x = np.random.default_rng(0).standard_normal((3, 100)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(aug_ops.polarity_inversion(x)), -x)


def test_clip_std_is_unbiased_like_torch():
    x = np.random.default_rng(1).standard_normal((4, 37)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(aug_ops.clip_std(x))[:, 0], x.std(axis=1, ddof=1),
                               rtol=1e-5)


def test_noise_std_is_relative_to_clip_std():
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((2, 59049)) * np.array([[0.05], [0.4]])).astype(np.float32)
    unit = rng.standard_normal(x.shape).astype(np.float32)
    ratios = np.array([1e-4, 1e-2], np.float32)
    y = np.asarray(aug_ops.add_noise(x, ratios, unit))
    measured = (y - x).std(axis=1, ddof=1) / x.std(axis=1, ddof=1)
    np.testing.assert_allclose(measured, ratios, rtol=0.02)


def test_counter_normal_is_standard_normal_white_and_keyed():
    from scipy import stats
    z = np.asarray(aug_ops.counter_normal(np.array([7, 8, 7], np.int32), 59049))
    np.testing.assert_allclose(z[0], z[2], atol=1e-6)  # same key, same noise
    assert abs(np.corrcoef(z[0], z[1])[0, 1]) < 0.02  # different keys, independent noise
    assert abs(z[:2].mean()) < 0.01 and abs(z[:2].std() - 1) < 0.01
    assert stats.kstest(z[:2].ravel(), "norm").pvalue > 0.01
    # White: lag-1 autocorrelation ~ 0 and the spectrum's halves carry equal power.
    assert abs(np.corrcoef(z[1, :-1], z[1, 1:])[0, 1]) < 0.02
    power = np.abs(np.fft.rfft(z[1])) ** 2
    half = len(power) // 2
    assert abs(power[1:half].mean() / power[half:].mean() - 1) < 0.05


def test_gain_scales_in_db_and_clamps():
    x = np.array([[0.1, -0.2, 0.3], [0.9, -0.9, 0.5]], np.float32)
    y = np.asarray(aug_ops.gain(x, np.array([-6.0, 6.0], np.float32)))
    np.testing.assert_allclose(y[0], x[0] * 10 ** (-6 / 20), rtol=1e-6)
    np.testing.assert_allclose(y[1], np.clip(x[1] * 10 ** (6 / 20), -1, 1), rtol=1e-6)
    assert y[1, 0] == 1.0 and y[1, 1] == -1.0


def test_delay_offset_truncates_like_clmr():
    ms = np.array([200, 250, 300, 350, 400, 450, 500], np.int32)
    expected = [int(m * SR / 1000) for m in ms]  # 4410, 5512 (not 5513), ...
    np.testing.assert_array_equal(np.asarray(aug_ops.delay_offset(ms, SR)), expected)
    assert expected[1] == 5512


def test_delay_matches_reference_formula():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 12000)).astype(np.float32)
    offsets = np.array([4410, 9922], np.int32)
    y = np.asarray(aug_ops.delay(x, offsets))
    for row, xi, off in zip(y, x, offsets):
        delayed = np.concatenate([np.zeros(off), xi[:-off]]) * 0.5
        np.testing.assert_allclose(row, (xi + delayed) / 2, atol=1e-6)


def test_delay_autocorrelation_peaks_at_the_delay():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 30000)).astype(np.float32)
    offsets = np.asarray(aug_ops.delay_offset(np.array([200, 300, 450]), SR))
    y = np.asarray(aug_ops.delay(x, offsets))
    for row, off in zip(y, offsets):
        spectrum = np.fft.rfft(row, 65536)
        autocorr = np.fft.irfft(np.abs(spectrum) ** 2)[:20000]
        assert np.argmax(autocorr[100:]) + 100 == off
