"""Training a probe head on cached features, and CLMR's chunk-averaged track predictions.

The head is trained as in CLMR's `LinearEvaluation` (anchors 1.8): PyTorch Adam 1e-3 with
coupled L2 1e-6, ReduceLROnPlateau x0.1 (patience 5, relative threshold 1e-4) and early stopping
(patience 10) on the validation loss, at most 200 epochs, batch 48, shuffled training features.
CLMR tests the *last* weights after early stopping, not the best ones (pitfall 16); so do we.
Keras-only (keras + numpy), so heads can be trained on either backend.

Opt-in `standardize` (not CLMR's protocol) z-scores the features with the training split's mean
and standard deviation before the head is trained, and then folds that affine map into the
head's first Dense layer, so the saved head takes raw features: export, tagging and every other
reader of head.weights.h5 apply the standardisation without knowing about it.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from mssl_tf.eval.optimizer import TorchAdam
from mssl_tf.eval.schedule import EarlyStoppingTorch, ReduceLROnPlateauTorch
from mssl_tf.models import build_probe_head

logger = logging.getLogger(__name__)


def probe_loss(multi_label: bool) -> keras.losses.Loss:
    """BCE on logits for multi-label tagging, softmax cross-entropy for single-label sets."""
    if multi_label:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    return keras.losses.CategoricalCrossentropy(from_logits=True)


def standardization(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, scale, constant dimensions) of training features, in float64.

    Dimensions without spread (std 0, or below 1e-6 of their mean's magnitude: float32 rounding
    noise) keep scale 1, as scikit-learn's StandardScaler does, so they become 0, not noise.
    """
    x = np.asarray(features, np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    constant = (std == 0) | (std <= 1e-6 * np.abs(mean))
    return mean, np.where(constant, 1.0, std), int(constant.sum())


def fold_standardization(head: keras.Model, mean: np.ndarray, scale: np.ndarray) -> None:
    """Rewrites the head's first Dense layer so that head(x) == old_head((x - mean) / scale).

    Dense(W, b) on (x - m) / s is x @ (W / s[:, None]) + (b - (m / s) @ W). The two terms
    are about |m| / s times the logits, so float32 inference loses ~1e-7 * |m| / s of a logit to
    cancellation (1e-4 at |m| / s = 1e3): negligible for the ranking metrics, and the price of a
    head file that any reader applies without knowing about the standardisation.
    """
    dense = next(layer for layer in head.layers if isinstance(layer, keras.layers.Dense))
    kernel, bias = (np.asarray(w, np.float64) for w in dense.get_weights())
    folded_kernel = kernel / scale[:, None]
    folded_bias = bias - (mean / scale) @ kernel
    dense.set_weights([folded_kernel.astype(np.float32), folded_bias.astype(np.float32)])


def fit_head(train: tuple[np.ndarray, np.ndarray], valid: tuple[np.ndarray, np.ndarray], *,
             kind: str = "linear", multi_label: bool = True, hidden: int | None = None,
             learning_rate: float = 1e-3, weight_decay: float = 1e-6, batch_size: int = 48,
             max_epochs: int = 200, plateau_factor: float = 0.1, plateau_patience: int = 5,
             plateau_threshold: float = 1e-4, early_stop_patience: int = 10, seed: int = 0,
             standardize: bool = False, verbose: int | str = 0) -> tuple[keras.Model, dict]:
    """Trains a linear or MLP probe head on (features, labels) pairs.

    Args:
      train: (features (N, D), labels (N, L)) of the training tracks.
      valid: the same for the validation tracks (drives the schedule and early stopping).
      kind: "linear" or "mlp".
      multi_label: sigmoid + BCE (True) or softmax + cross-entropy (False).
      hidden: MLP hidden width (default: the feature width, as CLMR).
      learning_rate: Adam learning rate.
      weight_decay: PyTorch-style coupled L2 added to the gradients.
      batch_size: training batch size.
      max_epochs: epoch limit.
      plateau_factor / plateau_patience / plateau_threshold: ReduceLROnPlateau settings.
      early_stop_patience: epochs without validation improvement before stopping.
      seed: seed of the head's initialisation and the shuffling.
      standardize: train on train-split z-scored features and fold the z-score into the
        returned head (which then takes raw features); not CLMR's protocol.
      verbose: Keras progress output.

    Returns:
      (head, info) with info = {"epochs": trained epochs, "history": {...}, "lr_reductions":
      [(epoch, lr)], "stopped_early": bool, "best_val_loss": float}, and with standardize
      "constant_dims": the number of feature dimensions without spread in the training split.
    """
    x_train, y_train = (np.asarray(a, np.float32) for a in train)
    x_valid, y_valid = (np.asarray(a, np.float32) for a in valid)
    if x_train.shape[1] != x_valid.shape[1]:
        raise ValueError(f"train features are {x_train.shape[1]}-d, valid features "
                         f"{x_valid.shape[1]}-d; both must come from the same encoder")
    if y_train.shape[1] != y_valid.shape[1]:
        raise ValueError(f"the train split has {y_train.shape[1]} labels per track, the valid "
                         f"split {y_valid.shape[1]}; both splits must use the same label set")
    if standardize:
        mean, scale, constant_dims = standardization(x_train)
        x_train = ((x_train - mean) / scale).astype(np.float32)
        x_valid = ((x_valid - mean) / scale).astype(np.float32)
    keras.utils.set_random_seed(seed)
    head = build_probe_head(kind, input_dim=x_train.shape[1], num_labels=y_train.shape[1],
                            hidden=hidden)
    head.compile(optimizer=TorchAdam(learning_rate, l2=weight_decay),
                 loss=probe_loss(multi_label))
    plateau = ReduceLROnPlateauTorch(factor=plateau_factor, patience=plateau_patience,
                                     threshold=plateau_threshold)
    stop = EarlyStoppingTorch(patience=early_stop_patience)
    history = head.fit(x_train, y_train, batch_size=batch_size, epochs=max_epochs,
                       validation_data=(x_valid, y_valid), shuffle=True,
                       callbacks=[plateau, stop], verbose=verbose)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    info = {"epochs": len(hist["loss"]), "history": hist,
            "lr_reductions": [(int(e), float(lr)) for e, lr in plateau.reductions],
            "stopped_early": stop.stopped_epoch is not None,
            "best_val_loss": float(min(hist["val_loss"]))}
    if standardize:
        fold_standardization(head, mean, scale)
        info["constant_dims"] = constant_dims
    logger.info("Probe head %s: %d epochs, best valid loss %.5f, lr cuts at %s", kind,
                info["epochs"], info["best_val_loss"], [e + 1 for e, _ in plateau.reductions])
    return head, info


def probabilities(logits: np.ndarray, multi_label: bool) -> np.ndarray:
    """Sigmoid (multi-label) or softmax (single-label) of logits, in float64 numpy."""
    logits = np.asarray(logits, np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def average_by_track(chunk_probs: np.ndarray, owner: np.ndarray, num_tracks: int) -> np.ndarray:
    """Mean of the chunk probabilities of every track (CLMR's track prediction).

    Args:
      chunk_probs: (C, L) probabilities of all chunks.
      owner: (C,) index of the track each chunk belongs to.
      num_tracks: number of tracks T; every track must own at least one chunk.

    Returns:
      (T, L) mean probabilities.
    """
    owner = np.asarray(owner, np.int64)
    sums = np.zeros((num_tracks, chunk_probs.shape[1]), np.float64)
    np.add.at(sums, owner, chunk_probs)
    counts = np.bincount(owner, minlength=num_tracks)
    if np.any(counts == 0):
        raise ValueError(f"{int(np.sum(counts == 0))} track(s) own no chunk; skip them first")
    return sums / counts[:, None]


def predict_tracks(head: keras.Model, chunk_features: np.ndarray, owner: np.ndarray,
                   num_tracks: int, *, multi_label: bool, batch_size: int = 1024) -> np.ndarray:
    """Track-level probabilities: head on every chunk, sigmoid/softmax, mean over chunks.

    The mean is over *probabilities*, not logits (averaging logits, as VICMus did, gives other
    numbers; anchors pitfall 3).
    """
    logits = head.predict(np.asarray(chunk_features, np.float32), batch_size=batch_size,
                          verbose=0)
    return average_by_track(probabilities(logits, multi_label), owner, num_tracks)
