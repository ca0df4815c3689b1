"""Probe metrics in numpy + scikit-learn: tag-wise and clip-wise ROC-AUC / PR-AUC, accuracy.

The numbers match CLMR's `evaluate()` (anchors 1.7): scikit-learn `roc_auc_score` and
`average_precision_score` with `average="macro"` over tags, times 100. PR-AUC is average
precision (step interpolation), not the trapezoidal area under the PR curve (anchors pitfall 18).
The thesis (section 3.5) also reports clip-wise scores: the same metrics per track over its tags,
averaged over tracks.

This module is backend-free (no Keras, no TensorFlow) so any evaluation host can import it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

logger = logging.getLogger(__name__)


def _as_2d(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must both be (num_tracks, num_tags); got "
                         f"{y_true.shape} and {y_score.shape}")
    if not np.all((y_true == 0) | (y_true == 1)):
        raise ValueError("y_true must be binary (0/1 multi-hot or one-hot labels)")
    if not np.all(np.isfinite(y_score)):
        raise ValueError("y_score holds NaN or inf; the probe diverged or a feature is broken")
    return y_true, y_score


def scorable_tags(y_true: np.ndarray) -> np.ndarray:
    """Boolean mask of tags with at least one positive and one negative track.

    ROC-AUC is undefined for the others and sklearn raises on them (anchors pitfall 18).
    """
    pos = np.asarray(y_true).sum(axis=0)
    return (pos > 0) & (pos < np.asarray(y_true).shape[0])


def tag_metrics(y_true: np.ndarray, y_score: np.ndarray,
                tag_names: Sequence[str] | None = None, *, warn: bool = True) -> dict:
    """Tag-wise (macro) and clip-wise ROC-AUC and PR-AUC, times 100.

    Tags without a positive (or without a negative) among the tracks are left out of the
    tag-wise scores and named in a warning; tracks without a positive (or without a negative)
    tag are left out of the clip-wise scores, and counted.

    Args:
      y_true: (num_tracks, num_tags) binary labels.
      y_score: (num_tracks, num_tags) scores, e.g. chunk-averaged probabilities.
      tag_names: names used in the warning; defaults to "tag<i>".
      warn: emit a `UserWarning` (and a log line) naming the dropped tags.

    Returns:
      A dict with "roc_auc", "pr_auc" (tag-wise macro), "clip_roc_auc", "clip_pr_auc"
      (clip-wise, averaged over tracks), "dropped_tags" (names), "num_tags_scored",
      "num_clips_scored". A score is NaN when nothing could be scored.

    Raises:
      ValueError: on shape mismatch, non-binary labels or non-finite scores.
    """
    y_true, y_score = _as_2d(y_true, y_score)
    num_tags = y_true.shape[1]
    names = list(tag_names) if tag_names is not None else [f"tag{i}" for i in range(num_tags)]
    if len(names) != num_tags:
        raise ValueError(f"{len(names)} tag names for {num_tags} label columns")
    keep = scorable_tags(y_true)
    dropped = [n for n, k in zip(names, keep) if not k]
    if dropped and warn:
        msg = (f"{len(dropped)} of {num_tags} tags have no positive (or no negative) track in "
               f"the evaluated set and are left out of the tag-wise scores: {', '.join(dropped)}")
        logger.warning(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
    result = {"roc_auc": float("nan"), "pr_auc": float("nan")}
    if keep.any():
        result["roc_auc"] = 100.0 * skm.roc_auc_score(y_true[:, keep], y_score[:, keep],
                                                      average="macro")
        result["pr_auc"] = 100.0 * skm.average_precision_score(y_true[:, keep], y_score[:, keep],
                                                               average="macro")
    # Clip-wise: the same metrics on the transposed matrix, over the tracks that have both a
    # positive and a negative tag (MTAT keeps clips without any top-50 tag; they cannot count).
    rows = scorable_tags(y_true.T)
    result["clip_roc_auc"] = result["clip_pr_auc"] = float("nan")
    if rows.any():
        result["clip_roc_auc"] = 100.0 * skm.roc_auc_score(y_true[rows].T, y_score[rows].T,
                                                           average="macro")
        result["clip_pr_auc"] = 100.0 * skm.average_precision_score(
            y_true[rows].T, y_score[rows].T, average="macro")
    result.update(dropped_tags=dropped, num_tags_scored=int(keep.sum()),
                  num_clips_scored=int(rows.sum()))
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v)
            for k, v in result.items()}


def accuracy(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Single-label accuracy x100: argmax of the scores against argmax of one-hot labels.

    Args:
      y_true: (num_tracks, num_classes) one-hot labels.
      y_score: (num_tracks, num_classes) scores, e.g. chunk-averaged softmax probabilities.
    """
    y_true, y_score = _as_2d(y_true, y_score)
    if not np.all(y_true.sum(axis=1) == 1):
        raise ValueError("accuracy needs exactly one positive class per track (one-hot labels)")
    return float(100.0 * skm.accuracy_score(y_true.argmax(axis=1), y_score.argmax(axis=1)))


def probe_metrics(y_true: np.ndarray, y_score: np.ndarray, *, multi_label: bool,
                  tag_names: Sequence[str] | None = None) -> dict:
    """All metrics of a probe: tag metrics, plus accuracy for single-label datasets."""
    result = tag_metrics(y_true, y_score, tag_names)
    if not multi_label:
        result["accuracy"] = accuracy(y_true, y_score)
    return result
