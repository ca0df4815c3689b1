"""Probe head training and CLMR's chunk-averaged track predictions."""

import keras
import numpy as np
import pytest

from mssl_tf.eval import train_head
from mssl_tf.eval.optimizer import TorchAdam


def test_track_prediction_is_the_mean_of_chunk_probabilities_not_of_logits():
    # One track with chunk logits 4 and -2 for one tag: mean probability
    # (sigmoid(4) + sigmoid(-2)) / 2 = 0.5495, while sigmoid(mean logit 1) = 0.7311.
    head = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    head.layers[0].set_weights([np.ones((1, 1), np.float32)])
    feats = np.array([[4.0], [-2.0], [0.0]], np.float32)
    owner = np.array([0, 0, 1])
    got = train_head.predict_tracks(head, feats, owner, 2, multi_label=True)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    assert got[0, 0] == pytest.approx((sig(4) + sig(-2)) / 2)
    assert got[0, 0] != pytest.approx(sig(1.0))
    assert got[1, 0] == pytest.approx(0.5)


def test_single_label_tracks_average_softmax():
    logits = np.array([[3.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    owner = np.array([0, 0, 1])
    probs = train_head.probabilities(logits, multi_label=False)
    np.testing.assert_allclose(probs.sum(1), 1.0)
    got = train_head.average_by_track(probs, owner, 2)
    e = np.exp([[3.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(got[0], (e / e.sum(1, keepdims=True)).mean(0))
    np.testing.assert_allclose(got[1], [0.5, 0.5])
    with pytest.raises(ValueError, match="own no chunk"):
        train_head.average_by_track(probs, owner, 3)


def _separable(n, d=6, labels=3, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.5).astype(np.float32)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, :labels] += 2.0 * (2 * y - 1)
    return x, y


@pytest.mark.slow
def test_fit_head_learns_with_clmr_settings_and_reports_its_schedule():
    train, valid = _separable(96), _separable(32, seed=1)
    head, info = train_head.fit_head(train, valid, kind="linear", batch_size=16, max_epochs=30,
                                     learning_rate=1e-2)
    assert isinstance(head.optimizer, TorchAdam)
    assert head.optimizer.l2 == pytest.approx(1e-6)
    assert isinstance(head.loss, keras.losses.BinaryCrossentropy)
    assert info["epochs"] == len(info["history"]["val_loss"]) <= 30
    assert info["history"]["val_loss"][-1] < 0.5 * info["history"]["val_loss"][0]
    probs = train_head.probabilities(head.predict(valid[0], verbose=0), True)
    assert ((probs > 0.5) == (valid[1] > 0.5)).mean() > 0.9


def test_mlp_head_and_single_label_loss():
    x, y = _separable(40, labels=3)
    y = np.eye(3, dtype=np.float32)[y.argmax(1)]
    head, info = train_head.fit_head((x, y), (x, y), kind="mlp", multi_label=False,
                                     batch_size=8, max_epochs=2)
    assert [layer.name for layer in head.layers][1:] == ["hidden", "logits"]
    assert head.get_layer("hidden").units == 6  # CLMR: hidden width = representation width
    assert isinstance(head.loss, keras.losses.CategoricalCrossentropy)
    assert info["epochs"] == 2


def test_fit_head_refuses_mismatched_splits():
    x, y = _separable(16)
    with pytest.raises(ValueError, match="same label set"):
        train_head.fit_head((x, y), (x, y[:, :2]), max_epochs=1)


# ---------------------------------------------------------------------------------------------
# opt-in standardisation, folded into the head
# ---------------------------------------------------------------------------------------------
def _ill_scaled(seed, n):
    """Separable 2-tag data whose informative dimensions are tiny and offset (as random-init
    SampleCNN features are), plus two constant dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, (n, 2)).astype(np.float32)
    signal = np.concatenate([y * 2 - 1, rng.standard_normal((n, 2))], axis=1)
    x = 3e-4 * (signal + 0.3 * rng.standard_normal((n, 4))) + 0.5
    x = np.concatenate([x, np.full((n, 2), 0.25)], axis=1).astype(np.float32)
    return x, y


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_folded_standardization_equals_the_head_on_z_scores(kind):
    x, _ = _ill_scaled(0, 64)
    mean, scale, constant = train_head.standardization(x)
    assert constant == 2 and np.all(scale[-2:] == 1.0)
    keras.utils.set_random_seed(1)
    head = train_head.build_probe_head(kind, input_dim=6, num_labels=2, hidden=5)
    want = head.predict((x - mean) / scale, verbose=0)
    train_head.fold_standardization(head, mean, scale)
    # float32 cancellation: x @ (W / s) and (m / s) @ W are ~|m| / s = 1.7e3 times the logits.
    np.testing.assert_allclose(head.predict(x, verbose=0), want, rtol=1e-3, atol=1e-3)
    assert np.abs(want).max() > 0.1


def test_standardize_lets_the_clmr_head_fit_ill_scaled_features():
    """The random-init floor's failure in miniature: Adam cannot reach weights of ~1e4."""
    from sklearn.metrics import roc_auc_score
    train, valid, test = _ill_scaled(1, 256), _ill_scaled(2, 64), _ill_scaled(3, 256)
    fit = {"max_epochs": 20, "batch_size": 32, "learning_rate": 1e-2}
    plain, _ = train_head.fit_head(train, valid, **fit)
    scaled, info = train_head.fit_head(train, valid, standardize=True, **fit)
    assert info["constant_dims"] == 2

    def auc(head):  # raw test features in: the folded head standardises them itself
        return roc_auc_score(test[1], head.predict(test[0], verbose=0), average="macro")

    assert auc(scaled) > 0.95
    assert auc(plain) < 0.75


def test_standardized_head_reloads_as_export_loads_it(tmp_path):
    """The saved head.weights.h5 alone carries the standardisation: export's loader agrees."""
    import json

    from mssl_tf import rundir
    from mssl_tf.export.saved_model import load_probe
    train, valid = _ill_scaled(4, 128), _ill_scaled(5, 32)
    head, _ = train_head.fit_head(train, valid, standardize=True, max_epochs=3, batch_size=32)
    rundir.save_weights(head, str(tmp_path / "head.weights.h5"))
    (tmp_path / "results.json").write_text(json.dumps(
        {"head": "linear", "tag_names": ["a", "b"], "standardize": True, "settings": {}}))
    loaded, results = load_probe(str(tmp_path), rep_dim=6)
    assert results["standardize"] is True
    np.testing.assert_array_equal(loaded.predict(valid[0], verbose=0),
                                  head.predict(valid[0], verbose=0))
