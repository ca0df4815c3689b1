"""Training callbacks: resumable backups with a NaN guard, encoder snapshots, operative config."""

from __future__ import annotations

import math
import os

import gin
import keras
import tensorflow as tf

from mssl_tf import fileio, rundir
from mssl_tf.train import checkpoints


def _sync(model: keras.Model) -> None:
    # On JAX, Keras keeps the training state outside the variables during fit(); pull it in
    # before reading or saving variables from a callback.
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


def current_step(model: keras.Model) -> int:
    """Optimizer steps taken so far (survives resumes: the iteration count is checkpointed)."""
    _sync(model)
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


class BackupAndNaNGuard(keras.callbacks.Callback):
    """Backs the model and optimizer up every `every_steps` steps and stops on a non-finite loss.

    A NaN/Inf loss stops training *before* anything is saved, so the last backup and snapshot
    stay the last good ones; `nan_step` records where it happened.
    """

    def __init__(self, backup: checkpoints.TrainingBackup, every_steps: int, steps_per_epoch: int):
        super().__init__()
        self.backup = backup
        self.every_steps = max(1, int(every_steps))
        self.steps_per_epoch = steps_per_epoch
        self.nan_step: int | None = None
        self.last_saved: int | None = None

    def _finite(self, logs) -> bool:
        loss = (logs or {}).get("loss")
        return loss is None or math.isfinite(float(loss))

    def on_train_batch_end(self, batch, logs=None):
        if not self._finite(logs):
            self.nan_step = current_step(self.model)
            self.model.stop_training = True
            return
        step = current_step(self.model)
        if step % self.every_steps == 0:
            self._save(step)

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_step is None and self._finite(logs):
            self._save(current_step(self.model))

    def _save(self, step: int) -> None:
        if step != self.last_saved:
            self.backup.save(self.model, step, epoch=step // self.steps_per_epoch)
            self.last_saved = step


class EncoderSnapshots(keras.callbacks.Callback):
    """Saves the encoder every epoch (latest) and at milestone epochs; updates run.json."""

    def __init__(self, model_dir: str, milestones: tuple[int, ...] = ()):
        super().__init__()
        self.model_dir = model_dir
        self.milestones = set(int(m) for m in milestones)
        self.snap_dir = os.path.join(model_dir, rundir.SNAPSHOT_DIR)

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return
        _sync(self.model)
        done = epoch + 1  # Keras epochs are 0-based; snapshots are named by epochs completed
        encoder = self.model.encoder
        tf.io.gfile.makedirs(self.snap_dir)
        rundir.save_weights(encoder, os.path.join(self.snap_dir, rundir.LATEST))
        if done in self.milestones:
            rundir.save_weights(
                encoder, os.path.join(self.snap_dir, rundir.snapshot_name(done)))
        run_path = os.path.join(self.model_dir, rundir.RUN_JSON)
        run = fileio.read_json(run_path)
        run["latest_epoch"] = done
        run["milestones_saved"] = sorted(set(run.get("milestones_saved", [])) |
                                         ({done} & self.milestones))
        fileio.write_json(run_path, run)


class OperativeConfigWriter(keras.callbacks.Callback):
    """Writes gin's operative config (what the run really used) after the first epoch."""

    def __init__(self, model_dir: str):
        super().__init__()
        self.path = os.path.join(model_dir, "operative_config.gin")
        self.written = False

    def on_epoch_end(self, epoch, logs=None):
        if not self.written:
            fileio.write_text(self.path, gin.operative_config_str())
            self.written = True
