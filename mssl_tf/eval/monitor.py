"""ProbeMonitor: a quick linear probe during pre-training, so collapse shows while it happens.

The thesis (section 5.1) found CLMR's downstream scores falling while its loss kept improving;
that is only visible if the representation is probed during training. Every N epochs this
callback embeds a small labelled split with the model's encoder (BN in inference mode), fits a
logistic-regression probe on one half and scores the other half with the same tag metrics as
the full probe, logging `probe_roc_auc` / `probe_pr_auc` to the epoch logs (so CSV/TensorBoard
callbacks placed after it record them) and, with `log_dir`, to TensorBoard itself.

The quick probe is scikit-learn's LogisticRegression on standardised features: it needs no
Keras state, so it cannot disturb the training model, its optimizer or a distribution strategy.
Numbers are comparable between epochs of one run, not with the full CLMR probe.
"""

from __future__ import annotations

import logging
import warnings

import gin
import keras
import numpy as np
import tensorflow as tf
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from mssl_tf import fileio
from mssl_tf.data import pipeline
from mssl_tf.eval import metrics

logger = logging.getLogger(__name__)


def quick_probe_scores(fit_x: np.ndarray, fit_y: np.ndarray, eval_x: np.ndarray,
                       eval_y: np.ndarray, *, multi_label: bool = True, c: float = 1.0,
                       max_iter: int = 200) -> dict:
    """Fits a logistic-regression probe on (fit_x, fit_y) and scores it on (eval_x, eval_y).

    Returns:
      `metrics.tag_metrics` of the eval half (NaN scores when no tag can be scored), plus
      "accuracy" for single-label data.
    """
    scaler = StandardScaler().fit(fit_x)
    fx, ex = scaler.transform(fit_x), scaler.transform(eval_x)
    with warnings.catch_warnings():
        # Tags constant in a tiny fit half and short solver runs are expected here.
        warnings.simplefilter("ignore", (UserWarning, ConvergenceWarning, RuntimeWarning))
        if multi_label:
            clf = OneVsRestClassifier(LogisticRegression(C=c, max_iter=max_iter)).fit(fx, fit_y)
            score = clf.predict_proba(ex)
        else:
            clf = LogisticRegression(C=c, max_iter=max_iter).fit(fx, fit_y.argmax(1))
            score = np.zeros_like(eval_y, dtype=np.float64)
            score[:, clf.classes_] = clf.predict_proba(ex)
        result = metrics.tag_metrics(eval_y, score, warn=False)
    if not multi_label:
        result["accuracy"] = metrics.accuracy(eval_y, score)
    return result


class ProbeMonitor(keras.callbacks.Callback):
    """Runs a quick linear probe every `every_n_epochs` epochs of pre-training."""

    def __init__(self, data_dir: str, every_n_epochs: int = 10, split: str = "valid",
                 max_tracks: int = 512, crop_len: int | None = None, batch_size: int = 32,
                 at_first_epoch: bool = True, log_dir: str | None = None,
                 prefix: str = "probe_", encoder_attr: str = "encoder", seed: int = 0):
        """Creates the monitor.

        Args:
          data_dir: labelled shards (e.g. MTAT or GTZAN from `mssl-prepare`).
          every_n_epochs: probe after epochs N, 2N, ... (1-based).
          split: which split to draw the probe tracks from (both halves come from it).
          max_tracks: tracks used (one fixed random crop each); half fit, half scored.
          crop_len: crop length; default the encoder's input length.
          batch_size: crops per encoder call.
          at_first_epoch: also probe after the first epoch (a baseline; it also makes the keys
            appear in the first row of a CSV log).
          log_dir: write `probe/roc_auc`, `probe/pr_auc` scalars to TensorBoard here.
          prefix: prefix of the keys added to the epoch logs.
          encoder_attr: attribute of the trained model holding the encoder (SSLModel.encoder);
            the model itself is used when it has no such attribute.
          seed: seed of the crop positions.
        """
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"ProbeMonitor.every_n_epochs must be >= 1, got {every_n_epochs}")
        self.data_dir, self.every_n_epochs, self.split = data_dir, every_n_epochs, split
        self.max_tracks, self.crop_len, self.batch_size = max_tracks, crop_len, batch_size
        self.at_first_epoch, self.log_dir, self.prefix = at_first_epoch, log_dir, prefix
        self.encoder_attr, self.seed = encoder_attr, seed
        manifest = fileio.read_manifest(data_dir)
        if not int(manifest.get("num_labels") or 0):
            raise ValueError(f"ProbeMonitor needs labelled shards; {data_dir!r} (dataset "
                             f"{manifest.get('dataset')!r}) has no labels.")
        self.multi_label = bool(manifest.get("multi_label", True))
        self._crops: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._writer = None
        self.results: list[tuple[int, dict]] = []

    def _encoder(self) -> keras.Model:
        encoder = getattr(self.model, self.encoder_attr, None)
        return self.model if encoder is None else encoder

    def _load(self, crop_len: int) -> None:
        crops, labels = [], []
        ds = pipeline.single_crop_dataset(self.data_dir, self.split, self.batch_size,
                                          crop_len=crop_len, seed=self.seed)
        for batch in ds.take(-(-self.max_tracks // self.batch_size)):
            crops.append(batch["audio"].numpy())
            labels.append(batch["labels"].numpy())
        if not crops:
            raise ValueError(f"ProbeMonitor: no {self.split!r} track in {self.data_dir!r} is "
                             f"{crop_len} samples long.")
        self._crops = np.concatenate(crops)[:self.max_tracks]
        self._labels = np.concatenate(labels)[:self.max_tracks]
        if len(self._crops) < 4:
            raise ValueError(f"ProbeMonitor needs at least 4 {self.split!r} tracks in "
                             f"{self.data_dir!r}, found {len(self._crops)}.")

    def embed(self) -> np.ndarray:
        """Features of the fixed probe crops from the current encoder (inference mode)."""
        encoder = self._encoder()
        if self._crops is None:
            self._load(self.crop_len or int(encoder.input_shape[-1]))
        if keras.backend.backend() == "jax" and hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()  # variables are stale in callbacks until synced on JAX
        feats = [keras.ops.convert_to_numpy(encoder(self._crops[i:i + self.batch_size],
                                                    training=False))
                 for i in range(0, len(self._crops), self.batch_size)]
        return np.concatenate(feats).astype(np.float64)

    def probe(self) -> dict:
        """Embeds, fits on the even-indexed tracks, scores the odd-indexed ones."""
        feats = self.embed()
        if not np.all(np.isfinite(feats)):
            return {"roc_auc": float("nan"), "pr_auc": float("nan")}
        y = self._labels
        return quick_probe_scores(feats[0::2], y[0::2], feats[1::2], y[1::2],
                                  multi_label=self.multi_label)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Probes on the schedule and adds the scores to `logs`."""
        if not ((epoch + 1) % self.every_n_epochs == 0 or (self.at_first_epoch and epoch == 0)):
            return
        scores = self.probe()
        self.results.append((epoch, scores))
        if logs is not None:
            for key in ("roc_auc", "pr_auc"):
                logs[self.prefix + key] = scores[key]
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for key in ("roc_auc", "pr_auc"):
                    tf.summary.scalar(f"probe/{key}", scores[key], step=epoch + 1)
            self._writer.flush()
        logger.info("Epoch %d: quick probe ROC-AUC %.2f, PR-AUC %.2f", epoch + 1,
                    scores["roc_auc"], scores["pr_auc"])


# Usable from gin (e.g. `TrainLoop.callbacks = [@ProbeMonitor()]`); registered as an external
# configurable so the class itself stays plain Keras.
gin.external_configurable(ProbeMonitor, "ProbeMonitor", module="mssl_tf.eval")
