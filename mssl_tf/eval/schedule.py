"""CLMR's probe schedule as Keras callbacks: PyTorch ReduceLROnPlateau and Lightning EarlyStopping.

CLMR steps `ReduceLROnPlateau(mode="min", factor=0.1, patience=5, threshold=1e-4,
threshold_mode="rel")` and `EarlyStopping(patience=10)` on the validation loss once per epoch
(anchors 1.8, pitfall 16). Keras' `ReduceLROnPlateau` compares with an *absolute* `min_delta`
and counts patience differently, so both rules are written out here as small state machines
(testable on a scripted loss sequence) wrapped in callbacks. Keras-only.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np

logger = logging.getLogger(__name__)


class PlateauRule:
    """`torch.optim.lr_scheduler.ReduceLROnPlateau` in mode "min" as a pure state machine.

    An epoch improves when `value < best * (1 - threshold)` ("rel") or
    `value < best - threshold` ("abs"). After more than `patience` epochs in a row without
    improvement the learning rate is multiplied by `factor` (not below `min_lr`; changes
    smaller than `eps` are ignored), then `cooldown` epochs are not counted.
    """

    def __init__(self, factor: float = 0.1, patience: int = 5, threshold: float = 1e-4,
                 threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0.0,
                 eps: float = 1e-8):
        """Creates the rule with PyTorch's argument meanings (and CLMR's defaults)."""
        if not 0 < factor < 1:
            raise ValueError(f"plateau factor must be in (0, 1), got {factor}")
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        self.factor, self.patience, self.threshold = factor, patience, threshold
        self.threshold_mode, self.cooldown, self.min_lr, self.eps = (
            threshold_mode, cooldown, min_lr, eps)
        self.best = math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def is_better(self, value: float) -> bool:
        """Whether `value` improves on the best so far (NaN never does)."""
        if self.threshold_mode == "rel":
            return value < self.best * (1.0 - self.threshold)
        return value < self.best - self.threshold

    def step(self, value: float, lr: float) -> float:
        """Feeds one epoch's monitored value; returns the learning rate to use next."""
        if self.is_better(value):
            self.best = value
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            if lr - new_lr > self.eps:
                return new_lr
        return lr


class EarlyStopRule:
    """Lightning's `EarlyStopping(mode="min", min_delta=0, check_finite=True)` state machine.

    An epoch improves when `value - min_delta < best`; training stops when `patience` epochs in
    a row did not improve, or at once when the value is NaN or infinite.
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0):
        """Creates the rule (CLMR: patience 10)."""
        if patience < 1:
            raise ValueError(f"early-stopping patience must be >= 1, got {patience}")
        self.patience, self.min_delta = patience, min_delta
        self.best = math.inf
        self.wait = 0

    def step(self, value: float) -> bool:
        """Feeds one epoch's monitored value; returns True when training must stop."""
        if not math.isfinite(value):
            return True
        if value - self.min_delta < self.best:
            self.best = value
            self.wait = 0
            return False
        self.wait += 1
        return self.wait >= self.patience


def _current_lr(optimizer) -> float:
    return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))


class ReduceLROnPlateauTorch(keras.callbacks.Callback):
    """Keras callback applying `PlateauRule` to a logged metric at the end of every epoch."""

    def __init__(self, monitor: str = "val_loss", **rule_kwargs):
        """Creates the callback.

        Args:
          monitor: key of the epoch logs to watch (the validation loss).
          **rule_kwargs: `PlateauRule` arguments (factor, patience, threshold, ...).
        """
        super().__init__()
        self.monitor = monitor
        self.rule = PlateauRule(**rule_kwargs)
        self.reductions: list[tuple[int, float]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Steps the rule and lowers the optimizer's learning rate when it says so."""
        logs = logs if logs is not None else {}
        if self.monitor not in logs:
            raise KeyError(f"ReduceLROnPlateauTorch monitors {self.monitor!r} but the epoch logs "
                           f"only hold {sorted(logs)}; pass validation data to fit()")
        lr = _current_lr(self.model.optimizer)
        new_lr = self.rule.step(float(logs[self.monitor]), lr)
        if new_lr != lr:
            self.model.optimizer.learning_rate = new_lr
            self.reductions.append((epoch, new_lr))
            logger.info("Epoch %d: %s plateaued, learning rate %.3g -> %.3g", epoch + 1,
                        self.monitor, lr, new_lr)
        logs["lr"] = new_lr


class EarlyStoppingTorch(keras.callbacks.Callback):
    """Keras callback applying `EarlyStopRule`; keeps the last weights (CLMR tests those)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0):
        """Creates the callback.

        Args:
          monitor: key of the epoch logs to watch.
          patience: epochs without improvement before stopping.
          min_delta: improvement margin (Lightning's default 0).
        """
        super().__init__()
        self.monitor = monitor
        self.rule = EarlyStopRule(patience, min_delta)
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Stops training when the rule says so."""
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"EarlyStoppingTorch monitors {self.monitor!r} but the epoch logs only "
                           f"hold {sorted(logs)}; pass validation data to fit()")
        if self.rule.step(float(logs[self.monitor])):
            self.model.stop_training = True
            self.stopped_epoch = epoch
            logger.info("Epoch %d: early stop (%s best %.5g)", epoch + 1, self.monitor,
                        self.rule.best)
