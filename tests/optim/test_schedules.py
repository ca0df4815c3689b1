"""WarmupCosine against a numpy transcription of facebookresearch/vicreg's adjust_learning_rate."""

import keras
import numpy as np
import pytest
from keras import ops

from mssl_tf.optim import LARS, WarmupCosine, scaled_learning_rate
from tests.references import reference_lr


def _lr(schedule, step):
    return float(ops.convert_to_numpy(schedule(step)))


def test_scaled_learning_rate():
    assert scaled_learning_rate(0.2, 768) == pytest.approx(0.6)  # thesis VICReg: 0.2 x 768/256
    assert scaled_learning_rate(0.3, 512, batch_reference=256) == pytest.approx(0.6)
    assert scaled_learning_rate(1.0, 64, batch_reference=128) == 0.5
    with pytest.raises(ValueError, match="global_batch"):
        scaled_learning_rate(0.2, 0)


def test_landmark_values():
    # base 0.2, global batch 512 -> peak 0.4; 10 steps/epoch, 20 epochs, 2 warmup epochs.
    s = WarmupCosine(0.2, 512, steps_per_epoch=10, total_epochs=20, warmup_epochs=2)
    peak, end = 0.4, 0.4e-3
    assert s.peak_lr == pytest.approx(peak)
    assert _lr(s, 0) == 0.0                                      # warmup starts at 0
    assert _lr(s, 10) == pytest.approx(peak / 2, rel=1e-6)       # mid-warmup
    assert _lr(s, 20) == pytest.approx(peak, rel=1e-6)           # end of warmup = peak
    assert _lr(s, 110) == pytest.approx((peak + end) / 2, rel=1e-6)  # middle of the cosine
    assert _lr(s, 200) == pytest.approx(end, rel=1e-4)           # last step = 0.001 x peak
    for past in (201, 250, 10_000):
        assert _lr(s, past) == pytest.approx(end, rel=1e-4)      # held, not rising again
    assert _lr(s, 21) < peak and _lr(s, 150) < _lr(s, 100)       # decaying


@pytest.mark.parametrize("config", [
    dict(base_lr=0.2, global_batch=768, steps_per_epoch=7, total_epochs=30, warmup_epochs=10),
    dict(base_lr=0.3, global_batch=256, steps_per_epoch=13, total_epochs=5, warmup_epochs=1,
         end_factor=0.01),
    dict(base_lr=1.0, global_batch=64, steps_per_epoch=3, total_epochs=4, warmup_epochs=0),
])
def test_matches_reference_at_every_step(config):
    s = WarmupCosine(**config)
    total = config["total_epochs"] * config["steps_per_epoch"]
    steps = np.arange(total + 25)
    # Keras' CosineDecay (which WarmupCosine is) takes one scalar step at a time.
    got = np.array([ops.convert_to_numpy(s(int(t))) for t in steps])
    want = np.array([reference_lr(int(t), config["base_lr"], config["global_batch"],
                                  config["steps_per_epoch"], config["total_epochs"],
                                  config.get("warmup_epochs", 10), config.get("end_factor", 0.001))
                     for t in steps])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * s.peak_lr)


def test_no_warmup_starts_at_peak():
    s = WarmupCosine(0.5, 256, steps_per_epoch=4, total_epochs=3, warmup_epochs=0)
    assert _lr(s, 0) == pytest.approx(0.5)


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="warmup_epochs=10 must be smaller than total_epochs=10"):
        WarmupCosine(0.2, 256, steps_per_epoch=5, total_epochs=10, warmup_epochs=10)
    with pytest.raises(ValueError, match="steps_per_epoch must be > 0"):
        WarmupCosine(0.2, 256, steps_per_epoch=0, total_epochs=10)
    with pytest.raises(ValueError, match="warmup_epochs must be >= 0"):
        WarmupCosine(0.2, 256, steps_per_epoch=5, total_epochs=10, warmup_epochs=-1)


def test_config_round_trip():
    s = WarmupCosine(0.2, 768, steps_per_epoch=11, total_epochs=40, warmup_epochs=3,
                     end_factor=0.002, batch_reference=128)
    clone = WarmupCosine.from_config(s.get_config())
    assert clone.get_config() == s.get_config()
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert isinstance(revived, WarmupCosine)
    for step in (0, 17, 33, 200, 440, 500):
        assert _lr(revived, step) == _lr(s, step)


def test_drives_adam():
    # lr(0) = 0, so Adam's first step leaves the weight unchanged; the second moves it by lr(1)
    # (bias-corrected m/sqrt(v) = 1 for a constant gradient of 1).
    s = WarmupCosine(0.256, 256, steps_per_epoch=10, total_epochs=10, warmup_epochs=1)
    optimizer = keras.optimizers.Adam(learning_rate=s)
    w = keras.Variable(np.zeros((2,), "float32"))
    grad = np.ones((2,), "float32")
    optimizer.apply([grad], [w])
    np.testing.assert_array_equal(ops.convert_to_numpy(w), 0.0)
    optimizer.apply([grad], [w])
    # rtol: Keras computes 1 - beta_2^t (= 0.002) in float32, good to ~3e-5.
    np.testing.assert_allclose(ops.convert_to_numpy(w), -reference_lr(1, 0.256, 256, 10, 10, 1),
                               rtol=1e-4)
    assert float(ops.convert_to_numpy(optimizer.learning_rate)) == pytest.approx(
        reference_lr(2, 0.256, 256, 10, 10, 1), rel=1e-6)


def test_drives_lars_on_rank_one_variable():
    # A bias is not adapted by LARS: w <- w - lr(t) * mu with mu = sum of momentum-decayed grads.
    s = WarmupCosine(0.2, 512, steps_per_epoch=2, total_epochs=5, warmup_epochs=1)
    optimizer = LARS(learning_rate=s, momentum=0.9)
    w = keras.Variable(np.zeros((3,), "float32"))
    mu, expected = 0.0, 0.0
    for step in range(4):
        optimizer.apply([np.ones((3,), "float32")], [w])
        mu = 0.9 * mu + 1.0
        expected -= reference_lr(step, 0.2, 512, 2, 5, 1) * mu
    np.testing.assert_allclose(ops.convert_to_numpy(w), expected, rtol=1e-6)
