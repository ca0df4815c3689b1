"""SSLModel: outputs, logged terms, collapse monitors, bf16, independent view augmentation."""

import keras
import numpy as np
import pytest

from mssl_tf import losses
from mssl_tf.augment import AudioAugment
from mssl_tf.models import SSLModel, build_projector, build_sample_cnn, effective_rank, mean_std
from mssl_tf.models.heads import parse_spec

CROP = 729


def _model(objective="vicreg", augmenter=None):
    enc = build_sample_cnn(16, crop_len=CROP, widths=(8, 8, 8, 8, 8))
    proj = build_projector("vicreg" if objective == "vicreg" else "clmr", "32-16", 16)
    return SSLModel(enc, proj, losses.get_loss(objective), augmenter=augmenter)


def _views(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-0.5, 0.5, (n, CROP)).astype("float32") for k in ("view_a", "view_b")}


def test_effective_rank_and_std_measure_collapse():
    rng = np.random.default_rng(0)
    iso = rng.standard_normal((512, 8)).astype("float32")
    line = np.outer(rng.standard_normal(512), rng.standard_normal(8)).astype("float32")
    assert 7.5 < float(effective_rank(iso)) <= 8.0
    assert float(effective_rank(line)) < 1.05
    assert abs(float(mean_std(iso)) - 1 / np.sqrt(8)) < 0.02
    assert float(mean_std(np.ones((16, 8), "float32"))) < 1e-6


@pytest.mark.parametrize("batch,dim", [(12, 40), (40, 12), (16, 16)])
def test_effective_rank_equals_the_singular_value_definition_for_any_batch_and_width(batch, dim):
    # Fewer examples than dimensions takes the B x B Gram matrix: same value as the D x D one.
    rng = np.random.default_rng(batch)
    h = (rng.standard_normal((batch, dim)) * np.linspace(0.1, 3.0, dim)).astype("float32")
    s = np.linalg.svd(h - h.mean(axis=0), compute_uv=False)
    p = s / (s.sum() + 1e-7)
    expected = np.exp(-np.sum(p * np.log(p + 1e-7)))
    np.testing.assert_allclose(float(effective_rank(h)), expected, rtol=2e-3)


@pytest.mark.parametrize("objective,terms", [
    ("vicreg", {"invariance", "variance", "covariance", "invariance_weighted",
                "variance_weighted", "covariance_weighted"}),
    ("ntxent", {"positive_cosine", "negative_cosine"})])
def test_fit_logs_total_terms_and_monitors(objective, terms):
    model = _model(objective)
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    hist = model.fit(_views(), batch_size=4, epochs=1, verbose=0)
    logged = set(hist.history)
    assert {"loss", "rep_std", "rep_rank"} | terms == logged
    # The logged total is the objective itself (the weighted sum of the logged VICReg terms).
    if objective == "vicreg":
        out = model(_views(4), training=False)
        total, t = losses.vicreg_loss(out["z_a"], out["z_b"])
        np.testing.assert_allclose(float(total), 25 * float(t["invariance"]) +
                                   25 * float(t["variance"]) + float(t["covariance"]), rtol=1e-5)
        weighted = sum(float(t[f"{k}_weighted"]) for k in ("invariance", "variance", "covariance"))
        np.testing.assert_allclose(weighted, float(total), rtol=1e-5)


def test_effective_rank_of_diverged_features_is_nan_or_finite_never_an_error():
    """A diverging run must reach the NaN guard, not die inside the eigendecomposition."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal((8, 16)).astype("float32")
    nan_h = h.copy()
    nan_h[3, 5] = np.nan
    inf_h = h.copy()
    inf_h[0, 0] = np.inf
    assert np.isnan(float(effective_rank(nan_h))) and np.isnan(float(effective_rank(inf_h)))
    # Finite but huge (a loss of 3e28): the Gram matrix would overflow without the rescaling.
    np.testing.assert_allclose(float(effective_rank(h * 1e30)), float(effective_rank(h)),
                               rtol=1e-3)
    assert float(effective_rank(np.zeros((8, 16), "float32"))) == pytest.approx(1.0, abs=1e-3)


def test_bfloat16_policy_keeps_outputs_and_loss_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = _model()
        out = model(_views(4), training=False)
        assert keras.backend.standardize_dtype(out["h_a"].dtype) == "float32"
        assert keras.backend.standardize_dtype(out["z_a"].dtype) == "float32"
        loss = model.compute_loss(y_pred=out)
        assert keras.backend.standardize_dtype(loss.dtype) == "float32"
        assert np.isfinite(float(loss))
        assert model.encoder.layers[2].compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_views_are_augmented_independently():
    aug = AudioAugment(sample_rate=22050, seed=3, polarity_p=0.5, gain_p=1.0, filter_p=0.0,
                       delay_p=0.0, pitch_p=0.0, reverb_p=0.0, noise_p=0.0)
    model = _model(augmenter=aug)
    same = _views(8)
    same["view_b"] = same["view_a"].copy()
    out = model(same, training=True)
    assert not np.allclose(np.asarray(out["h_a"]), np.asarray(out["h_b"]))
    out = model(same, training=False)  # no augmentation at inference: identical views agree
    np.testing.assert_allclose(np.asarray(out["h_a"]), np.asarray(out["h_b"]), atol=1e-6)


def test_projector_specs():
    assert parse_spec("8192-8192-8192") == [8192] * 3
    with pytest.raises(ValueError, match="widths joined by '-'"):
        parse_spec("512x128")
    vic = build_projector("vicreg", "64-64-32", 16)
    dense = [layer for layer in vic.layers if layer.__class__.__name__ == "Dense"]
    assert [d.units for d in dense] == [64, 64, 32]
    assert [d.use_bias for d in dense] == [True, True, False]
    assert sum(layer.__class__.__name__ == "BatchNormalization" for layer in vic.layers) == 2
    clmr = build_projector("clmr", "512-128", 512)
    dense = [layer for layer in clmr.layers if layer.__class__.__name__ == "Dense"]
    assert [d.units for d in dense] == [512, 128] and not any(d.use_bias for d in dense)
    assert not any(layer.__class__.__name__ == "BatchNormalization" for layer in clmr.layers)


def _thesis_tpu_model(collectives, optimizer):
    """SampleCNN + VICReg projector as the TPU v3-8 emulation builds them, groups of 4 rows."""
    enc = build_sample_cnn(8, crop_len=243, widths=(8, 8, 8, 8), init="torch", ghost_batch_size=4)
    proj = build_projector("vicreg", "16-8", 8, init="torch", ghost_batch_size=4)
    model = SSLModel(enc, proj, losses.vicreg_loss, collectives=collectives, stats_group_size=4,
                     collapse_monitors=False)
    model.compile(optimizer=optimizer, jit_compile=False)
    model.build_from_views(243)
    return model


def test_stats_group_size_takes_the_objective_within_groups():
    from tests.references import reference_grouped, reference_vicreg
    model = _thesis_tpu_model(None, "sgd")
    rng = np.random.default_rng(3)
    z_a, z_b = (rng.standard_normal((8, 5)).astype("float32") for _ in range(2))
    total, terms = model._objective(z_a, z_b)
    ref_total, ref_terms = reference_grouped(reference_vicreg, z_a, z_b, 4)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(total)), ref_total, rtol=1e-5)
    np.testing.assert_allclose(float(keras.ops.convert_to_numpy(terms["covariance"])),
                               ref_terms["covariance"], rtol=1e-5)


@pytest.mark.slow
def test_thesis_tpu_emulation_step_is_the_same_on_one_device_and_two_replicas(mirrored_strategy):
    """Grouped statistics + ghost BN: one training step does not depend on the replica count."""
    import tensorflow as tf

    from mssl_tf.distribute import TFCollectives
    keras.utils.set_random_seed(0)
    single = _thesis_tpu_model(TFCollectives(), keras.optimizers.SGD(0.05))
    start = single.get_weights()
    with mirrored_strategy.scope():
        mirrored = _thesis_tpu_model(TFCollectives(), keras.optimizers.SGD(0.05))
    mirrored.set_weights(start)
    rng = np.random.default_rng(1)
    views = {k: rng.uniform(-1, 1, (8, 243)).astype("float32") for k in ("view_a", "view_b")}
    for model in (single, mirrored):
        model.fit(tf.data.Dataset.from_tensors(views), epochs=1, verbose=0)
    moved = max(np.abs(a - b).max() for a, b in zip(single.get_weights(), start))
    assert moved > 1e-4
    for a, b in zip(single.get_weights(), mirrored.get_weights()):  # incl. moving statistics
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
