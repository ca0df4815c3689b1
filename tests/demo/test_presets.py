"""The small-data presets (demo_*.gin, small_*.gin) can move the encoder in a short run.

VICReg's LARS (eta 0.001) caps one step's change of a weight tensor at lr x eta of its norm
before momentum; at the old demo preset's lr of 0.0625 that is 6.25e-5, so a few hundred steps
barely move the convolutions. These tests build each preset's own optimizer and schedule from
gin and measure the step it takes on a convolution kernel at the schedule's peak.
"""

import gin
import keras
import numpy as np
import pytest

from mssl_tf import gin_utils

SMALL_PRESETS = ["experiments/demo_vicreg.gin", "experiments/demo_clmr.gin",
                 "experiments/small_vicreg.gin", "experiments/small_clmr.gin"]


def _optimizer_at_peak(preset: str, bindings=(), steps_per_epoch: int = 12):
    """(optimizer, peak learning rate) of a preset, its iteration count at the warmup's end."""
    gin_utils.parse([preset], ["pretrain.data_dir = '/unused'", *bindings])
    q = gin.query_parameter
    batch, epochs = q("pretrain.global_batch"), q("pretrain.epochs")
    lr = q("pretrain.learning_rate")
    warmup_steps = 0
    if isinstance(lr, gin.config.ConfigurableReference):
        schedule = lr.scoped_configurable_fn(global_batch=batch, steps_per_epoch=steps_per_epoch,
                                             total_epochs=epochs)
        warmup_steps = int(schedule.warmup_steps)
        peak = float(schedule(warmup_steps))
    else:
        schedule = peak = float(lr)
    optimizer = q("pretrain.optimizer").scoped_configurable_fn(learning_rate=schedule)
    return optimizer, peak, warmup_steps


def _relative_step(optimizer, warmup_steps: int, seed: int = 0) -> float:
    """||w1 - w0|| / ||w0|| of one step on a He-initialised Conv1D kernel (k3, 32 -> 64)."""
    rng = np.random.default_rng(seed)
    w0 = rng.normal(0.0, np.sqrt(2.0 / (3 * 32)), (3, 32, 64)).astype(np.float32)
    w = keras.Variable(w0)
    optimizer.build([w])
    optimizer.iterations.assign(warmup_steps)
    # A small gradient, as deep in a network: LARS rescales it to eta * ||w|| anyway.
    g = (1e-3 * rng.standard_normal(w0.shape)).astype(np.float32)
    optimizer.apply_gradients([(keras.ops.convert_to_tensor(g), w)])
    return float(np.linalg.norm(keras.ops.convert_to_numpy(w) - w0) / np.linalg.norm(w0))


def test_vicreg_thesis_lars_step_is_capped_by_the_trust_ratio():
    """The mechanism: with eta 0.001 the first step is lr x eta of the kernel's norm, whatever
    the gradient; the old demo preset (LARS, base lr 1.0 at batch 16: lr 0.0625) is shown."""
    old = ["pretrain.optimizer = @LARS", "pretrain.learning_rate = @WarmupCosine",
           "WarmupCosine.base_lr = 1.0", "WarmupCosine.batch_reference = 256", "LARS.eta = 0.001",
           "LARS.momentum = 0.9", "LARS.weight_decay = 1e-6"]
    optimizer, peak, warmup = _optimizer_at_peak("experiments/demo_vicreg.gin", old)
    np.testing.assert_allclose(peak, 0.0625, rtol=1e-6)
    np.testing.assert_allclose(_relative_step(optimizer, warmup), 0.0625 * 0.001, rtol=1e-3)


@pytest.mark.parametrize("preset", SMALL_PRESETS)
def test_small_preset_steps_move_a_convolution(preset):
    """Each small preset's step at its peak rate moves a kernel by >= 0.1 % of its norm (16x
    the old demo preset's cap), so a few hundred steps can change the encoder."""
    optimizer, _, warmup = _optimizer_at_peak(preset)
    assert _relative_step(optimizer, warmup) >= 1e-3


@pytest.mark.parametrize("preset", SMALL_PRESETS)
def test_small_presets_keep_the_objective_and_say_what_they_change(preset):
    gin_utils.parse([preset], ["pretrain.data_dir = '/unused'"])
    q = gin.query_parameter
    if "vicreg" in preset:  # VICReg's 25/25/1, as the thesis
        assert (q("vicreg_loss.sim_weight"), q("vicreg_loss.var_weight"),
                q("vicreg_loss.cov_weight")) == (25.0, 25.0, 1.0)
        assert q("pretrain.loss_fn").selector == "vicreg_loss"
    else:
        assert q("pretrain.loss_fn").selector == "nt_xent_loss"
    # Every crop of a track is a new view: more steps per epoch on a small dataset.
    assert q("TwoViewInput.crops_per_track") >= 2
    with open(gin_utils.resolve_gin_file(preset)) as f:
        header = f.read().split("\n\n")[0]
    assert "thesis" in header.lower()  # the file says how it departs from the thesis' runs
