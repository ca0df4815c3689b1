"""CLMR's probe schedule on scripted loss sequences (PyTorch / Lightning semantics)."""

import keras
import numpy as np
import pytest

from mssl_tf.eval.optimizer import TorchAdam
from mssl_tf.eval.schedule import (
    EarlyStoppingTorch,
    EarlyStopRule,
    PlateauRule,
    ReduceLROnPlateauTorch,
)


def _torch_plateau(values, lr=1e-3, factor=0.1, patience=5, threshold=1e-4):
    """Line-by-line transcription of torch ReduceLROnPlateau.step (mode min, rel, cooldown 0)."""
    best, bad, out = float("inf"), 0, []
    for v in values:
        if v < best * (1 - threshold):
            best, bad = v, 0
        else:
            bad += 1
        if bad > patience:
            new = max(lr * factor, 0.0)
            if lr - new > 1e-8:
                lr = new
            bad = 0
        out.append(lr)
    return out


def test_plateau_reduces_after_patience_plus_one_bad_epochs():
    rule = PlateauRule()
    seq = [1.0, 0.9] + [0.9] * 6 + [0.5] + [0.5] * 6
    lrs, lr = [], 1e-3
    for v in seq:
        lr = rule.step(v, lr)
        lrs.append(lr)
    # Epochs 3-7 are the 5 tolerated bad epochs; the 6th bad one (epoch 8) reduces.
    assert lrs[:7] == [1e-3] * 7
    assert lrs[7] == pytest.approx(1e-4)
    assert lrs[8:14] == pytest.approx([1e-4] * 6)
    assert lrs[14] == pytest.approx(1e-5)
    assert lrs == pytest.approx(_torch_plateau(seq))


def test_plateau_threshold_is_relative_not_absolute():
    # From best 100, a drop of 0.005 (5e-5 relative) is not an improvement, 0.02 (2e-4) is;
    # an absolute min_delta of 1e-4 (Keras) would count both.
    rule = PlateauRule(patience=0)
    lr = rule.step(100.0, 1.0)
    assert rule.step(99.995, lr) == pytest.approx(0.1)
    rule = PlateauRule(patience=0)
    lr = rule.step(100.0, 1.0)
    assert rule.step(99.98, lr) == 1.0
    rng = np.random.default_rng(0)
    seq = list(1 + np.cumsum(rng.normal(-1e-4, 2e-4, 80)))
    lrs, lr, rule = [], 1e-3, PlateauRule()
    for v in seq:
        lr = rule.step(v, lr)
        lrs.append(lr)
    assert lrs == pytest.approx(_torch_plateau(seq))
    assert min(lrs) < 1e-3  # the scripted sequence does plateau


def test_early_stop_after_ten_epochs_without_improvement():
    rule = EarlyStopRule(patience=10)
    seq = [1.0, 0.8, 0.7] + [0.7, 0.75, 0.71, 0.9, 0.7, 0.72, 0.8, 0.7, 0.7] + [0.7]
    stops = [rule.step(v) for v in seq]
    assert stops.index(True) == 12  # epoch 3 is the best, epochs 4..13 don't improve
    rule = EarlyStopRule(patience=10)
    seq = [1.0] + [1.0] * 9 + [0.99] + [1.0] * 9
    assert not any(rule.step(v) for v in seq)  # an improvement at epoch 11 resets the count
    assert EarlyStopRule().step(float("nan"))


def _fit_on_scripted_losses(val_losses, max_epochs=200):
    """Runs real fit() epochs while a callback overwrites val_loss with a scripted sequence."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=TorchAdam(1e-3), loss="mse")

    class Script(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = val_losses[epoch]

    plateau, stop = ReduceLROnPlateauTorch(), EarlyStoppingTorch()
    x = np.zeros((4, 3), np.float32)
    history = model.fit(x, x[:, :1], epochs=max_epochs, verbose=0,
                        callbacks=[Script(), plateau, stop])
    return history, plateau, stop, model


def test_callbacks_drive_fit_on_a_scripted_sequence():
    seq = [1.0, 0.5, 0.4] + [0.4] * 30
    history, plateau, stop, model = _fit_on_scripted_losses(seq)
    # Best at epoch 3 (index 2); indices 3..12 are ten bad epochs -> stop after index 12.
    assert stop.stopped_epoch == 12 and len(history.history["loss"]) == 13
    # The 6th bad epoch (index 8) cut the learning rate once.
    assert plateau.reductions == [(8, pytest.approx(1e-4))]
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-4)
    assert history.history["lr"][7] == pytest.approx(1e-3)
    assert history.history["lr"][8] == pytest.approx(1e-4)


def test_missing_validation_loss_is_explained():
    cb = ReduceLROnPlateauTorch()
    with pytest.raises(KeyError, match="validation data"):
        cb.on_epoch_end(0, {"loss": 1.0})
