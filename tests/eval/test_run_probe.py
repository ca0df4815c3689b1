"""Probe entry points end to end: learnable synthetic tags, results.json, cache, bad input."""

import json
import os

import keras
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mssl_tf.eval import embed
from mssl_tf.eval.probe import probe_encoder, run_probe
from mssl_tf.models import build_sample_cnn
from tests.eval.helpers import TINY_ENCODER, BandEnergies, make_run, noise, write_shards

QUICK = {"max_epochs": 3, "batch_size": 16}


@pytest.mark.slow
def test_linear_probe_on_an_encoder_that_hears_the_tags_scores_above_90(synthetic_shards,
                                                                         tmp_path):
    crop = 6561
    inputs = keras.Input((crop,))
    hears = keras.Model(inputs, BandEnergies()(inputs))
    # 48 training tracks give 3 steps per epoch at batch 16, so the head gets a larger step
    # than CLMR's 1e-3 (which has ~390 steps per epoch on MTAT); the rest is the protocol.
    fit = {"batch_size": 16, "max_epochs": 25, "learning_rate": 1e-2}
    res = probe_encoder(hears, synthetic_shards, work_dir=str(tmp_path / "hears"),
                        weights_key="bands", fit_kwargs=fit)
    print("ROC-AUC / PR-AUC of the hearing encoder:", res["metrics"])
    assert res["metrics"]["roc_auc"] > 90 and res["metrics"]["pr_auc"] > 80
    assert res["split_counts"] == {"train": 48, "valid": 16, "test": 24, "test_chunks": 72,
                                   "test_skipped": 0, "train_skipped": 0,
                                   "valid_skipped": 0}  # 22,050 samples -> 4 chunks - 1
    # Control: an encoder that hears nothing gives chance-level ranking.
    deaf = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, :4] * 0.0)(inputs))
    res = probe_encoder(deaf, synthetic_shards, work_dir=str(tmp_path / "deaf"),
                        weights_key="deaf", fit_kwargs={**fit, "max_epochs": 2})
    assert res["metrics"]["roc_auc"] == pytest.approx(50.0)


@pytest.mark.slow
def test_results_json_predictions_and_cache(synthetic_shards, tmp_path):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, synthetic_shards, epochs=(1, 2))
    res = run_probe(run_dir, synthetic_shards, checkpoint=2, **QUICK)
    probe_dir = os.path.join(run_dir, "probes", "synthetic-epoch00002")
    assert sorted(os.listdir(probe_dir)) == ["features_test.npz", "features_train.npz",
                                             "features_valid.npz", "linear"]
    with open(os.path.join(probe_dir, "linear", "results.json")) as f:
        saved = json.load(f)
    for key in ("roc_auc", "pr_auc", "clip_roc_auc", "clip_pr_auc"):
        assert saved["metrics"][key] == pytest.approx(res["metrics"][key])
    assert saved["checkpoint"]["epoch"] == 2 and saved["head"] == "linear"
    assert saved["dataset"] == "synthetic" and saved["pretrain"]["objective"] == "vicreg"
    assert saved["pretrain"]["rep_dim"] == TINY_ENCODER["rep_dim"]
    assert saved["split_counts"]["test"] == 24 and len(saved["config_hash"]) == 16
    assert saved["features_cached"] == {"train": False, "valid": False, "test": False}
    assert saved["training"]["epochs"] == 3
    # The stored track predictions re-score to the reported numbers with scikit-learn.
    pred = np.load(os.path.join(probe_dir, "linear", "test_predictions.npz"))
    assert saved["metrics"]["roc_auc"] == pytest.approx(
        100 * roc_auc_score(pred["labels"], pred["scores"], average="macro"))
    assert saved["metrics"]["pr_auc"] == pytest.approx(
        100 * average_precision_score(pred["labels"], pred["scores"], average="macro"))
    # An MLP probe of the same checkpoint re-uses the cached features.
    mlp = run_probe(run_dir, synthetic_shards, checkpoint=2, head="mlp", **QUICK)
    assert mlp["features_cached"] == {"train": True, "valid": True, "test": True}
    assert os.path.exists(os.path.join(probe_dir, "mlp", "head.weights.h5"))
    # "latest" resolves through run.json's latest_epoch to the same cache folder.
    assert run_probe(run_dir, synthetic_shards, **QUICK)["checkpoint"]["tag"] == "epoch00002"


@pytest.mark.slow
def test_random_init_floor_has_its_own_cache(synthetic_shards, tmp_path):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, synthetic_shards, save=False)  # no snapshot needed for the floor
    res = run_probe(run_dir, synthetic_shards, random_init=True, **QUICK)
    assert res["random_init"] and res["checkpoint"]["tag"] == "random_init"
    assert os.path.isdir(os.path.join(run_dir, "probes", "synthetic-random_init", "linear"))


def test_bn_estimation_gives_a_random_init_encoder_normalised_features(synthetic_shards):
    """Initial BN statistics (mean 0, variance 1) let activations shrink to nothing; estimated
    ones give every feature dimension spread (the mechanism of the honest floor)."""
    from mssl_tf.eval.probe import estimate_bn_statistics
    keras.utils.set_random_seed(3)
    encoder = build_sample_cnn(32, 2187, widths=(16,) * 6, synchronized_bn=False)
    from mssl_tf.data import pipeline
    x = next(iter(pipeline.single_crop_dataset(synthetic_shards, "valid", 16, crop_len=2187,
                                               seed=5)))["audio"].numpy()
    before = np.asarray(encoder(x, training=False))
    assert np.sum(before.std(axis=0) < 1e-3) > 8  # measured: 22 of 32 dimensions flat
    used = estimate_bn_statistics(encoder, synthetic_shards, num_crops=100, batch_size=32)
    assert used == 100  # 48 train tracks: three passes with fresh crops
    after = np.asarray(encoder(x, training=False))
    assert np.abs(before).mean() < 0.05 * np.abs(after).mean()
    assert np.all(after.std(axis=0) > 0.05)  # measured: every one above 0.2
    # The final BN's moving mean is the mean of its batch means: ReLU features average ~0.4.
    assert 0.2 < np.abs(after).mean() < 1.0
    assert encoder.get_layer("final_bn").momentum == 0.9  # restored


@pytest.mark.slow
def test_random_init_floor_with_bn_estimation_and_standardize_beats_chance(synthetic_shards,
                                                                          tmp_path):
    run_dir = str(tmp_path / "run")
    spec = {"rep_dim": 32, "crop_len": 2187, "widths": [16] * 6}
    make_run(run_dir, synthetic_shards, spec=spec, save=False)
    res = run_probe(run_dir, synthetic_shards, random_init=True, standardize=True, bn_crops=96,
                    max_epochs=30, batch_size=16)
    print("honest random-init floor on the synthetic tags:", res["metrics"])
    assert res["metrics"]["roc_auc"] > 62  # chance is 50; measured 70.4
    assert res["random_init"] is True and res["standardize"] is True
    assert res["bn_stats"] == "estimated on 96 crops"
    assert res["settings"]["standardize"] is True and res["training"]["constant_dims"] == 0
    with open(os.path.join(run_dir, "probes", "synthetic-random_init", "linear",
                           "results.json")) as f:
        saved = json.load(f)
    assert saved["bn_stats"] == "estimated on 96 crops" and saved["standardize"] is True
    # The CLMR-protocol floor of the same run records itself as such.
    old = run_probe(run_dir, synthetic_shards, random_init=True, bn_crops=0, max_epochs=2,
                    batch_size=16)
    assert old["bn_stats"] == "initial (moving mean 0, variance 1)"
    assert old["standardize"] is False and "standardize" not in old["settings"]
    assert old["features_cached"]["train"] is False  # another BN state, other features


@pytest.mark.slow
def test_probe_training_leaves_encoder_bn_statistics_unchanged(synthetic_shards, tmp_path):
    encoder = build_sample_cnn(8, 2187, widths=(4,) * 6, synchronized_bn=False)
    x = np.random.default_rng(0).standard_normal((8, 2187)).astype("float32")
    encoder(x * 3 + 1, training=True)  # non-trivial moving statistics
    before = embed.bn_moving_statistics(encoder)
    weights = [w.copy() for w in encoder.get_weights()]
    probe_encoder(encoder, synthetic_shards, work_dir=str(tmp_path / "w"), head="mlp",
                  fit_kwargs=QUICK)
    after = embed.bn_moving_statistics(encoder)
    assert before.keys() == after.keys() and len(before) == 16
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    for w0, w1 in zip(weights, encoder.get_weights()):
        np.testing.assert_array_equal(w0, w1)


@pytest.mark.slow
def test_short_test_tracks_are_skipped_counted_and_reported(tmp_path):
    rng = np.random.default_rng(0)

    def items(prefix, n, length):
        return [(f"{prefix}{i}", noise(rng, length), [float(i % 2), float(i % 3 == 0)])
                for i in range(n)]

    tracks = {"train": items("tr", 8, 2500) + items("short_tr", 1, 2000),
              "valid": items("va", 4, 2500),
              "test": items("te", 4, 2187 * 3) + [("too_short", noise(rng, 2187), [1.0, 0.0])]}
    data = write_shards(str(tmp_path / "d"), tracks, num_labels=2)
    run_dir = str(tmp_path / "run")
    make_run(run_dir, data)
    res = run_probe(run_dir, data, **QUICK)
    assert res["skipped_test_tracks"] == ["too_short"]
    assert res["split_counts"]["test"] == 4 and res["split_counts"]["test_skipped"] == 1
    assert res["split_counts"]["test_chunks"] == 8
    assert res["split_counts"]["train"] == 8 and res["split_counts"]["train_skipped"] == 1


def test_a_run_without_snapshots_is_explained(synthetic_shards, tmp_path):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, synthetic_shards, save=False)
    with pytest.raises(FileNotFoundError, match="snapshot.*--random_init"):
        run_probe(run_dir, synthetic_shards, **QUICK)
    with pytest.raises(FileNotFoundError, match="not a pre-training run"):
        run_probe(str(tmp_path / "nothing"), synthetic_shards, **QUICK)


def test_a_snapshot_of_another_rep_dim_is_refused(synthetic_shards, tmp_path):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, synthetic_shards, spec={**TINY_ENCODER, "rep_dim": 16})
    with open(os.path.join(run_dir, "run.json")) as f:
        run = json.load(f)
    run["encoder"]["rep_dim"] = 8  # the config now disagrees with the saved weights
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump(run, f)
    with pytest.raises(ValueError, match="rep_dim 8"):
        run_probe(run_dir, synthetic_shards, **QUICK)


def test_unlabelled_shards_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    data = write_shards(str(tmp_path / "d"), {"train": [("a", noise(rng, 3000), [])]},
                        num_labels=0, dataset="fma_unlabelled")
    run_dir = str(tmp_path / "run")
    make_run(run_dir, data)
    with pytest.raises(ValueError, match="carry no labels.*mssl-prepare folder --labels"):
        run_probe(run_dir, data, **QUICK)


def test_label_count_differing_between_splits_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    tracks = {"train": [(f"t{i}", noise(rng, 2500), [1.0, 0.0, 1.0]) for i in range(4)],
              "valid": [(f"v{i}", noise(rng, 2500), [1.0, 0.0]) for i in range(4)],
              "test": [(f"s{i}", noise(rng, 5000), [1.0, 0.0, 1.0]) for i in range(2)]}
    data = write_shards(str(tmp_path / "d"), tracks, num_labels=3)
    run_dir = str(tmp_path / "run")
    make_run(run_dir, data)
    with pytest.raises(ValueError, match="'valid' split .* has 2 labels .* 3"):
        run_probe(run_dir, data, **QUICK)


def test_single_label_dataset_reports_accuracy(tmp_path):
    rng = np.random.default_rng(3)
    onehot = np.eye(3, dtype=np.float32)

    def items(prefix, n, length):
        return [(f"{prefix}{i}", noise(rng, length), onehot[i % 3]) for i in range(n)]

    tracks = {"train": items("tr", 9, 2500), "valid": items("va", 3, 2500),
              "test": items("te", 6, 2187 * 3)}
    data = write_shards(str(tmp_path / "d"), tracks, num_labels=3, multi_label=False,
                        tag_names=["blues", "jazz", "rock"], dataset="gtzan")
    run_dir = str(tmp_path / "run")
    make_run(run_dir, data)
    res = run_probe(run_dir, data, **QUICK)
    assert not res["multi_label"] and res["tag_names"] == ["blues", "jazz", "rock"]
    pred = np.load(os.path.join(run_dir, "probes", "gtzan-epoch00001", "linear",
                                "test_predictions.npz"))
    np.testing.assert_allclose(pred["scores"].sum(axis=1), 1.0, rtol=1e-6)  # mean of softmaxes
    want = 100 * np.mean(pred["scores"].argmax(1) == pred["labels"].argmax(1))
    assert res["metrics"]["accuracy"] == pytest.approx(want)
