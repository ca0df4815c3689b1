"""The run directory: run.json, encoder snapshots, and the resumable training backup.

Layout of a pre-training run (`--model_dir RUN`):
  RUN/run.json                      encoder architecture, objective, data, progress
  RUN/config.gin                    the parsed gin config the run started with (resume check)
  RUN/operative_config.gin          gin's operative config (what was actually used)
  RUN/snapshots/encoder_latest.weights.h5, encoder_epoch_00300.weights.h5, ...
  RUN/backup/state.json + step-NNNNNNNNN.{weights.h5,optimizer.npz}   (resume mid-epoch)
  RUN/logs/ (TensorBoard), RUN/history.csv
Every file is written under a temporary name and renamed when complete, so a crash never
leaves a half-written file where a reader (or a resume) looks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mssl_tf.models.sample_cnn import build_sample_cnn

RUN_JSON = "run.json"
SNAPSHOT_DIR = "snapshots"
BACKUP_DIR = "backup"
LATEST = "encoder_latest.weights.h5"


def snapshot_name(epoch: int) -> str:
    """File name of the encoder snapshot taken at the end of `epoch` (1-based)."""
    return f"encoder_epoch_{epoch:05d}.weights.h5"


def _atomic_write_bytes(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_json(path: str, obj: Any) -> None:
    """Writes JSON atomically (local or gs://)."""
    _atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"))


def read_json(path: str) -> dict:
    """Reads a JSON file (local or gs://)."""
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


def save_weights_atomic(model: keras.Model, path: str) -> None:
    """`model.save_weights(path)` through a local temporary file, then an atomic rename/copy."""
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = os.path.join(tmp_dir, "w.weights.h5")
        model.save_weights(tmp)
        with open(tmp, "rb") as f:
            _atomic_write_bytes(path, f.read())


def load_weights(model: keras.Model, path: str) -> None:
    """Loads `.weights.h5` from a local or gs:// path."""
    if "://" not in path:
        model.load_weights(path)
        return
    with tempfile.TemporaryDirectory() as tmp_dir:
        local = os.path.join(tmp_dir, "w.weights.h5")
        tf.io.gfile.copy(path, local, overwrite=True)
        model.load_weights(local)


def read_run(model_dir: str) -> dict:
    """Reads RUN/run.json; FileNotFoundError names the folder when it is not a run."""
    path = os.path.join(model_dir, RUN_JSON)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{model_dir!r} is not a pre-training run (no {RUN_JSON}); pass the --model_dir "
            "of an `mssl-pretrain` run.")
    return read_json(path)


def build_encoder_from_run(model_dir: str) -> keras.Model:
    """The run's encoder architecture with fresh (random) weights."""
    spec = read_run(model_dir)["encoder"]
    return build_sample_cnn(rep_dim=spec["rep_dim"], crop_len=spec["crop_len"],
                            widths=tuple(spec["widths"]))


def list_snapshots(model_dir: str) -> dict[int, str]:
    """Milestone snapshots of a run, {epoch: path}."""
    found = {}
    pattern = os.path.join(model_dir, SNAPSHOT_DIR, "encoder_epoch_*.weights.h5")
    for path in tf.io.gfile.glob(pattern):
        stem = os.path.basename(path)[len("encoder_epoch_"):-len(".weights.h5")]
        if stem.isdigit():
            found[int(stem)] = path
    return dict(sorted(found.items()))


def resolve_checkpoint(model_dir: str, checkpoint: str | int = "latest") -> tuple[str, int | None]:
    """Path and epoch of an encoder snapshot: "latest", an epoch number, or a file path."""
    run = read_run(model_dir)
    snaps_dir = os.path.join(model_dir, SNAPSHOT_DIR)
    if isinstance(checkpoint, str) and checkpoint not in ("latest",) and not checkpoint.isdigit():
        if not tf.io.gfile.exists(checkpoint):
            raise FileNotFoundError(f"Checkpoint file {checkpoint!r} does not exist.")
        return checkpoint, None
    if checkpoint == "latest":
        path = os.path.join(snaps_dir, LATEST)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"No encoder snapshot in {snaps_dir!r}: the run has not finished an epoch yet. "
                "Train longer, or probe with --random_init for the random-encoder floor.")
        return path, run.get("latest_epoch")
    epoch = int(checkpoint)
    snaps = list_snapshots(model_dir)
    if epoch not in snaps:
        have = ", ".join(str(e) for e in snaps) or "none"
        raise FileNotFoundError(f"No snapshot of epoch {epoch} in {snaps_dir!r} (have: {have}; "
                                "or use --checkpoint latest).")
    return snaps[epoch], epoch


def load_encoder(model_dir: str, checkpoint: str | int = "latest") -> tuple[keras.Model, dict]:
    """Rebuilds a run's encoder and loads a snapshot.

    Args:
      model_dir: the run directory.
      checkpoint: "latest", an epoch number (int or digits), or a path to a .weights.h5 file.

    Returns:
      (encoder, info) with info = {"epoch": int | None, "path": str, "run": run.json dict}.

    Raises:
      FileNotFoundError: no run.json or no such snapshot.
      ValueError: the snapshot does not fit the run's encoder (e.g. another rep_dim).
    """
    path, epoch = resolve_checkpoint(model_dir, checkpoint)
    encoder = build_encoder_from_run(model_dir)
    try:
        load_weights(encoder, path)
    except ValueError as e:
        rep_dim = read_run(model_dir)["encoder"]["rep_dim"]
        raise ValueError(f"Snapshot {path!r} does not fit the run's encoder (rep_dim {rep_dim}, "
                         f"from {os.path.join(model_dir, RUN_JSON)}): {e}") from e
    return encoder, {"epoch": epoch, "path": path, "run": read_run(model_dir)}


class TrainingBackup:
    """Model and optimizer state every N steps, for resuming mid-epoch after a crash.

    `state.json` is replaced atomically after the files it names are complete, so it always
    points at a whole checkpoint; older checkpoints are then deleted.
    """

    def __init__(self, model_dir: str):
        self.dir = os.path.join(model_dir, BACKUP_DIR)
        self.state_path = os.path.join(self.dir, "state.json")

    def state(self) -> dict | None:
        """The last complete backup's state ({"step", "epoch", ...}) or None."""
        return read_json(self.state_path) if tf.io.gfile.exists(self.state_path) else None

    def save(self, model: keras.Model, step: int, epoch: int, extra: dict | None = None) -> None:
        """Writes weights + optimizer variables of `step`, then points state.json at them."""
        tf.io.gfile.makedirs(self.dir)
        stem = f"step-{step:09d}"
        save_weights_atomic(model, os.path.join(self.dir, stem + ".weights.h5"))
        opt_vars = {f"v{i:05d}": np.asarray(keras.ops.convert_to_numpy(v))
                    for i, v in enumerate(model.optimizer.variables)}
        with tempfile.TemporaryDirectory() as tmp_dir:
            local = os.path.join(tmp_dir, "opt.npz")
            np.savez(local, **opt_vars)
            with open(local, "rb") as f:
                _atomic_write_bytes(os.path.join(self.dir, stem + ".optimizer.npz"), f.read())
        previous = self.state()
        write_json(self.state_path, {"step": step, "epoch": epoch, "stem": stem, **(extra or {})})
        if previous and previous.get("stem") != stem:
            for suffix in (".weights.h5", ".optimizer.npz"):
                old = os.path.join(self.dir, previous["stem"] + suffix)
                if tf.io.gfile.exists(old):
                    tf.io.gfile.remove(old)

    def restore(self, model: keras.Model) -> dict | None:
        """Loads the last backup into a built model and its (built) optimizer."""
        state = self.state()
        if state is None:
            return None
        load_weights(model, os.path.join(self.dir, state["stem"] + ".weights.h5"))
        with tf.io.gfile.GFile(os.path.join(self.dir, state["stem"] + ".optimizer.npz"), "rb") as f:
            with tempfile.TemporaryDirectory() as tmp_dir:
                local = os.path.join(tmp_dir, "opt.npz")
                with open(local, "wb") as out:
                    out.write(f.read())
                saved = dict(np.load(local))
        variables = model.optimizer.variables
        if len(saved) != len(variables):
            raise ValueError(f"Backup in {self.dir!r} holds {len(saved)} optimizer variables, the "
                             f"model's optimizer has {len(variables)}: the config changed. Start a "
                             "new --model_dir.")
        for i, v in enumerate(variables):
            v.assign(saved[f"v{i:05d}"])
        return state

    def clear(self) -> None:
        """Deletes the backup (after a run completes it is no longer needed)."""
        if tf.io.gfile.exists(self.dir):
            tf.io.gfile.rmtree(self.dir)


def copy_file(src: str, dst: str) -> None:
    """Copies a file between local/gs:// paths, atomically at the destination."""
    if "://" not in src and "://" not in dst:
        tmp = f"{dst}.tmp-{os.getpid()}"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    else:
        tf.io.gfile.copy(src, dst, overwrite=True)
