"""Probe metrics against scikit-learn on fixtures, and their edge cases."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from mssl_tf.eval import metrics


@pytest.fixture
def fixture():
    rng = np.random.default_rng(0)
    y_true = (rng.random((40, 6)) < 0.3).astype(np.float32)
    y_true[0, :] = 1  # every tag has a positive ...
    y_true[1, :] = 0  # ... and a negative
    y_score = np.clip(0.4 * y_true + rng.random((40, 6)) * 0.8, 0, 1)
    return y_true, y_score


def test_tag_metrics_match_sklearn_macro(fixture):
    y_true, y_score = fixture
    got = metrics.tag_metrics(y_true, y_score)
    assert got["roc_auc"] == pytest.approx(100 * roc_auc_score(y_true, y_score, average="macro"))
    assert got["pr_auc"] == pytest.approx(
        100 * average_precision_score(y_true, y_score, average="macro"))
    # Clip-wise: per row, over the rows with both a positive and a negative tag.
    rows = [i for i in range(len(y_true)) if 0 < y_true[i].sum() < y_true.shape[1]]
    roc = np.mean([roc_auc_score(y_true[i], y_score[i]) for i in rows])
    pr = np.mean([average_precision_score(y_true[i], y_score[i]) for i in rows])
    assert got["clip_roc_auc"] == pytest.approx(100 * roc)
    assert got["clip_pr_auc"] == pytest.approx(100 * pr)
    assert got["num_clips_scored"] == len(rows) < 40
    assert got["num_tags_scored"] == 6 and got["dropped_tags"] == []


def test_pr_auc_is_average_precision_not_trapezoid():
    y_true = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 1]], np.float32)
    y_score = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.1], [0.2, 0.6], [0.7, 0.4]])
    got = metrics.tag_metrics(y_true, y_score)
    # Tag 0: ranking 0.9(+) 0.8(-) 0.7(+) 0.3(+) 0.2(-) -> AP = (1 + 2/3 + 3/4) / 3.
    # Tag 1: ranking 0.7(+) 0.6(+) 0.4(+) 0.2(-) 0.1(-) -> AP = 1.
    assert got["pr_auc"] == pytest.approx(100 * ((1 + 2 / 3 + 3 / 4) / 3 + 1) / 2)


def test_tags_without_positives_are_dropped_and_named(fixture):
    y_true, y_score = fixture
    y_true = y_true.copy()
    y_true[:, 2] = 0
    y_true[:, 4] = 0
    names = ["guitar", "classical", "slow", "techno", "strings", "drums"]
    with pytest.warns(UserWarning, match=r"slow, strings"):
        got = metrics.tag_metrics(y_true, y_score, names)
    keep = [0, 1, 3, 5]
    assert got["dropped_tags"] == ["slow", "strings"]
    assert got["roc_auc"] == pytest.approx(
        100 * roc_auc_score(y_true[:, keep], y_score[:, keep], average="macro"))
    assert got["pr_auc"] == pytest.approx(
        100 * average_precision_score(y_true[:, keep], y_score[:, keep], average="macro"))


def test_no_warning_when_all_tags_scorable(fixture):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.tag_metrics(*fixture)


def test_accuracy_and_single_label_metrics():
    y_true = np.eye(3, dtype=np.float32)[[0, 1, 2, 2, 1, 0]]
    y_score = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .5, .4], [.1, .1, .8], [.3, .6, .1],
                        [.2, .5, .3]])
    got = metrics.probe_metrics(y_true, y_score, multi_label=False)
    assert got["accuracy"] == pytest.approx(
        100 * accuracy_score(y_true.argmax(1), y_score.argmax(1))) == pytest.approx(100 * 4 / 6)
    assert got["roc_auc"] == pytest.approx(100 * roc_auc_score(y_true, y_score, average="macro"))


@pytest.mark.parametrize("bad,match", [
    (lambda t, s: (t[:, :3], s), "num_tracks, num_tags"),
    (lambda t, s: (t * 0.5, s), "binary"),
    (lambda t, s: (t, np.where(t > 0, np.nan, s)), "NaN"),
])
def test_bad_input_is_refused_clearly(fixture, bad, match):
    with pytest.raises(ValueError, match=match):
        metrics.tag_metrics(*bad(*fixture))


def test_accuracy_needs_one_hot():
    with pytest.raises(ValueError, match="one-hot"):
        metrics.accuracy(np.array([[1, 1], [0, 1]]), np.array([[.5, .5], [.2, .8]]))
