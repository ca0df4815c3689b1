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


DEMO_PRESETS = ["experiments/demo_vicreg.gin", "experiments/demo_clmr.gin"]


def _band_energy(x: np.ndarray, lo: float, hi: float, sample_rate: int) -> np.ndarray:
    """Energy of each row of `x` between lo and hi Hz (rfft)."""
    spectrum = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1.0 / sample_rate)
    return spectrum[:, (freqs >= lo) & (freqs < hi)].sum(-1)


def _views_losing_a_band(gin_files: list[str], n: int = 48) -> tuple[float, float]:
    """Fractions of augmented views whose bass band (< 150 Hz) or top band (> 3 kHz) lost over
    90 % of its share of the clip's energy, for the augmentation the gin files configure."""
    from mssl_tf import constants  # noqa: PLC0415
    gin_utils.parse(gin_files, ["pretrain.data_dir = '/unused'"])
    sr = constants.SAMPLE_RATE
    t = np.arange(gin.query_parameter("pretrain.crop_len")) / sr  # the preset's own crop
    # A bass line at 55-70 Hz under a bright 5-6 kHz partial (a hi-hat's band), per clip.
    rng = np.random.default_rng(0)
    f_bass, f_top = rng.uniform(55, 70, (n, 1)), rng.uniform(5000, 6000, (n, 1))
    x = (0.5 * np.sin(2 * np.pi * f_bass * t) + 0.1 * np.sin(2 * np.pi * f_top * t))
    layer = gin.query_parameter("pretrain.augmenter").scoped_configurable_fn(
        sample_rate=sr, seed=0)
    y = keras.ops.convert_to_numpy(layer(x.astype(np.float32), training=True))
    total_x, total_y = _band_energy(x, 0, sr, sr), _band_energy(y, 0, sr, sr) + 1e-20
    lost = []
    for lo, hi in ((0.0, 150.0), (3000.0, sr / 2)):
        before = _band_energy(x, lo, hi, sr) / total_x
        after = _band_energy(y, lo, hi, sr) / total_y
        lost.append(float(np.mean(after < 0.1 * before)))
    return lost[0], lost[1]


@pytest.mark.parametrize("preset", DEMO_PRESETS)
def test_demo_augmentation_keeps_bass_and_top_bands(preset):
    """The demo presets' views keep a bass line and a hi-hat band (augment/clmr_light.gin),
    while CLMR's full chain high-passes away the bass or low-passes away the top in a large
    share of views (filter p 0.8, 50/50): measured by FFT on augmented tones."""
    light = _views_losing_a_band([preset])
    assert light == (0.0, 0.0)
    full = _views_losing_a_band([preset, "augment/clmr.gin"])
    assert full[0] > 0.2 and full[1] > 0.2, full
