"""Training callbacks: the run recorder (guard, history, TensorBoard, backups, snapshots), progress.

`RunRecorder` owns everything a run leaves behind, in an order that a kill at any point cannot
make inconsistent: at the end of an epoch it writes the history row, then the TensorBoard
scalars, then the backup, then the encoder snapshot and run.json. A resume restores the backup
and drops history rows and TensorBoard events of later steps, so the rerun writes them again.
Before anything is saved the guard checks the loss and the terms (finite, not diverged) and, for
a backup, the weights (finite): a bad state is never saved, and the last good backup is kept.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass

import gin
import keras
import numpy as np

from mssl_tf import fileio, rundir
from mssl_tf.distribute import cluster
from mssl_tf.train import checkpoints
from mssl_tf.train.history import History
from mssl_tf.train.tensorboard import ScalarWriter

logger = logging.getLogger(__name__)


def _sync(model: keras.Model) -> None:
    # On JAX, Keras keeps the training state outside the variables during fit(); pull it in
    # before reading or saving variables from a callback.
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


def current_step(model: keras.Model) -> int:
    """Optimizer steps taken so far (survives resumes: the iteration count is checkpointed)."""
    _sync(model)
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def learning_rate(model: keras.Model) -> float:
    """The optimizer's current learning rate (a schedule is evaluated at the current step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _numbers(logs: dict | None) -> dict[str, float]:
    out = {}
    for key, value in (logs or {}).items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


@dataclass
class Stop:
    """Why training stopped early."""

    step: int
    reason: str          # "non-finite" or "diverged"
    values: dict


class RunRecorder(keras.callbacks.Callback):
    """Guard, history.csv, TensorBoard, backups and snapshots of one run (see module docstring).

    Args:
      model_dir: the run directory.
      backup: the run's TrainingBackup.
      steps_per_epoch: optimizer steps per epoch.
      start_step: the step the run (re)starts from.
      backup_every_steps: steps between mid-epoch backups.
      milestones: epochs whose encoder snapshot is kept.
      log_every_steps: steps between TensorBoard scalars (and plain progress lines).
      divergence_factor: a loss above this many times the best loss so far counts as diverged
        (None: only NaN/Inf stop the run).
      global_batch: pairs per step (for pairs/s).
      write: False in processes that must not write the run directory (non-chief workers).
      heartbeat: called every step (the run lock's heartbeat).
    """

    def __init__(self, model_dir: str, backup: checkpoints.TrainingBackup, steps_per_epoch: int,
                 start_step: int, *, backup_every_steps: int = 500, milestones=(),
                 log_every_steps: int = 50, divergence_factor: float | None = 1e4,
                 global_batch: int = 1, write: bool = True, heartbeat=None):
        super().__init__()
        self.model_dir = model_dir
        self.backup = backup
        self.spe = int(steps_per_epoch)
        self.step = int(start_step)
        self.every = max(1, int(backup_every_steps))
        self.milestones = {int(m) for m in milestones}
        self.log_every = max(1, int(log_every_steps))
        self.divergence_factor = divergence_factor
        self.global_batch = int(global_batch)
        self.write = write
        self.heartbeat = heartbeat or (lambda: None)
        self.stopped: Stop | None = None
        self.last_saved: int | None = start_step if start_step else None
        # Every process reads the history and takes the guard's decisions from the same values:
        # one worker stopping alone would leave the others waiting in a collective.
        self.history = History(model_dir)
        if self.history.truncate(self.step, write=write) and write:
            logger.info("history.csv: dropped rows after step %d (not in the restored state)",
                        self.step)
        self.best_loss = self.history.best_loss()
        self.tensorboard = (ScalarWriter(model_dir, resume_step=self.step if start_step else None)
                            if write else None)
        self._epoch_start_step = self.step
        self._epoch_start_time = time.monotonic()
        self._window = (self.step, time.monotonic())
        self.pairs_per_sec = float("nan")

    # The guard ---------------------------------------------------------------------------

    def _check(self, values: dict[str, float]) -> Stop | None:
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            return Stop(self.step, "non-finite", bad)
        loss = values.get("loss")
        if loss is None:
            return None
        if (self.divergence_factor is not None and self.best_loss is not None
                and abs(loss) > self.divergence_factor * max(abs(self.best_loss), 1e-12)):
            return Stop(self.step, "diverged", {"loss": loss, "best_loss": self.best_loss})
        self.best_loss = loss if self.best_loss is None else min(self.best_loss, loss)
        return None

    def _stop(self, stop: Stop) -> None:
        self.stopped = stop
        self.model.stop_training = True
        logger.error("Step %d: %s (%s); stopping without saving this state", stop.step,
                     stop.reason, ", ".join(f"{k}={v:.4g}" for k, v in stop.values.items()))

    def _weights_finite(self) -> bool:
        _sync(self.model)
        # No float64 copy: thesis VICReg has ~141 M parameters (a 1.1 GB copy at every backup).
        return all(np.isfinite(w).all() for w in self.model.get_weights())

    def save(self, step: int) -> bool:
        """Backs up the model and optimizer at `step` if its weights are finite.

        Returns:
          True when a backup of `step` exists afterwards.
        """
        if self.stopped is not None:
            return False
        if step == self.last_saved:
            return True
        if not self._weights_finite():
            self._stop(Stop(step, "non-finite", {"weights": float("nan")}))
            return False
        if self.write:
            with cluster.process_local():  # the chief alone: no collective may start here
                self.backup.save(self.model, step, epoch=step // self.spe)
        self.last_saved = step
        return True

    # Keras hooks -------------------------------------------------------------------------

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = self.step
        self._epoch_start_time = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch_start_step + int(batch) + 1
        self.heartbeat()
        values = _numbers(logs)
        stop = self._check(values)
        if stop is not None:
            self._stop(stop)
            return
        if self.step % self.log_every == 0:
            start_step, start_time = self._window
            elapsed = time.monotonic() - start_time
            if elapsed > 0 and self.step > start_step:
                self.pairs_per_sec = (self.step - start_step) * self.global_batch / elapsed
            self._window = (self.step, time.monotonic())
            if self.tensorboard is not None:
                self.tensorboard.write(self.step, {**values, "lr": learning_rate(self.model),
                                                   "pairs_per_sec": self.pairs_per_sec})
        # An epoch's last step is backed up in on_epoch_end, after its history row: a backup
        # must never claim an epoch whose row is not written yet.
        if self.step % self.every == 0 and self.step % self.spe:
            self.save(self.step)

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped is not None or self.step % self.spe:
            return  # a stopped run or a partial epoch (max_steps) records no epoch
        values = _numbers(logs)
        stop = self._check(values)
        if stop is not None:
            self._stop(stop)
            return
        elapsed = time.monotonic() - self._epoch_start_time
        steps = self.step - self._epoch_start_step
        epoch_pairs = steps * self.global_batch / elapsed if elapsed > 0 and steps else math.nan
        done = self.step // self.spe
        row = {"epoch": done, "step": self.step, **values, "lr": learning_rate(self.model),
               "pairs_per_sec": epoch_pairs}
        if self.write:
            self.history.append(row)
            self.tensorboard.write(self.step, {k: v for k, v in row.items()
                                               if k not in ("epoch", "step")}, prefix="epoch/")
            self.tensorboard.flush()
        if self.save(self.step) and self.write:
            self.snapshot(done)

    def snapshot(self, done: int) -> None:
        """Saves the encoder as `latest` (and as a milestone) and records it in run.json."""
        _sync(self.model)
        encoder = self.model.encoder
        snap_dir = rundir.path(self.model_dir, rundir.SNAPSHOT_DIR)
        fileio.makedirs(snap_dir)
        with cluster.process_local():  # the chief alone: no collective may start here
            rundir.save_weights(encoder, fileio.join(snap_dir, rundir.LATEST))
            if done in self.milestones:
                rundir.save_weights(encoder, fileio.join(snap_dir, rundir.snapshot_name(done)))
        run = rundir.read_run(self.model_dir)
        rundir.update_run(self.model_dir, latest_epoch=done, milestones_saved=sorted(
            set(run.get("milestones_saved", [])) | ({done} & self.milestones)))

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer."""
        if self.tensorboard is not None:
            self.tensorboard.close()


class OperativeConfigWriter(keras.callbacks.Callback):
    """Writes gin's operative config (what the run really used) after the first epoch."""

    def __init__(self, model_dir: str, write: bool = True):
        super().__init__()
        self.path = rundir.path(model_dir, rundir.OPERATIVE_GIN)
        self.written = not write

    def on_epoch_end(self, epoch, logs=None):
        if not self.written:
            fileio.write_text(self.path, gin.operative_config_str())
            self.written = True


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


class Progress(keras.callbacks.Callback):
    """One display for the whole run: step s/S, epoch e/E, pairs/s, loss, ETA.

    On a terminal the line is redrawn in place (at most twice a second); otherwise (a pipe, a
    scheduler's log, Colab) one plain INFO line every `every_steps` steps.

    Args:
      total_steps: the step the run ends at.
      steps_per_epoch: optimizer steps per epoch.
      start_step: the step the run (re)starts from.
      global_batch: pairs per step.
      every_steps: steps between plain lines.
      stream: where a terminal display goes (default sys.stdout).
      enabled: False prints nothing (verbosity below INFO).
    """

    def __init__(self, total_steps: int, steps_per_epoch: int, start_step: int,
                 global_batch: int, every_steps: int = 50, stream=None, enabled: bool = True):
        super().__init__()
        self.total = int(total_steps)
        self.spe = int(steps_per_epoch)
        self.step = int(start_step)
        self.start_step = int(start_step)
        self.global_batch = int(global_batch)
        self.every = max(1, int(every_steps))
        self.stream = stream or sys.stdout
        self.enabled = enabled
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._t0 = None
        self._epoch_start = start_step
        self._last_draw = 0.0

    def line(self, loss: float | None) -> str:
        """The progress text at the current step."""
        elapsed = time.monotonic() - self._t0 if self._t0 else 0.0
        done = self.step - self.start_step
        rate = done * self.global_batch / elapsed if elapsed > 0 and done else math.nan
        eta = (self.total - self.step) * elapsed / done if done else math.nan
        epochs = -(-self.total // self.spe)
        epoch = min(max(self.step - 1, 0) // self.spe + 1, epochs)  # the epoch being run
        text = (f"step {self.step}/{self.total} | epoch {epoch}/{epochs} | "
                f"{rate:.1f} pairs/s")
        if loss is not None:
            text += f" | loss {loss:.4g}"
        return text + f" | ETA {_duration(eta)}"

    def on_train_begin(self, logs=None):
        if self._t0 is None:
            self._t0 = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = self._epoch_start + int(batch) + 1
        if not self.enabled:
            return
        loss = _numbers(logs).get("loss")
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw >= 0.5 or self.step == self.total:
                self.stream.write("\r" + self.line(loss).ljust(100))
                self.stream.flush()
                self._last_draw = now
        elif self.step % self.every == 0 or self.step == self.total:
            logger.info("%s", self.line(loss))

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled or self.step % self.spe:
            return
        if self.tty:
            self.stream.write("\n")
        values = _numbers(logs)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in values.items())
        logger.info("Epoch %d/%d done (step %d): %s", self.step // self.spe,
                    -(-self.total // self.spe), self.step, shown)
