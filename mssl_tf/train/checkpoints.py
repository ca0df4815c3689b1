"""The resumable training backup: model and optimizer state every N steps (RUN/backup/).

`state.json` is replaced atomically after the files it names are complete, so it always points
at a whole checkpoint; the previous checkpoint's files are deleted only after that.
"""

from __future__ import annotations

import io

import keras
import numpy as np

from mssl_tf import fileio, rundir


class TrainingBackup:
    """Model and optimizer state of one step, for resuming mid-epoch after a crash."""

    def __init__(self, model_dir: str):
        self.dir = rundir.path(model_dir, rundir.BACKUP_DIR)
        self.state_path = fileio.join(self.dir, "state.json")

    def state(self) -> dict | None:
        """The last complete backup's state ({"step", "epoch", "stem", ...}) or None."""
        return fileio.read_json(self.state_path) if fileio.exists(self.state_path) else None

    def save(self, model: keras.Model, step: int, epoch: int, extra: dict | None = None) -> None:
        """Writes weights + optimizer variables of `step`, then points state.json at them."""
        stem = f"step-{step:09d}"
        rundir.save_weights(model, fileio.join(self.dir, stem + ".weights.h5"))
        opt_vars = {f"v{i:05d}": np.asarray(keras.ops.convert_to_numpy(v))
                    for i, v in enumerate(model.optimizer.variables)}
        buf = io.BytesIO()
        np.savez(buf, **opt_vars)
        fileio.write_bytes(fileio.join(self.dir, stem + ".optimizer.npz"), buf.getvalue())
        previous = self.state()
        fileio.write_json(self.state_path,
                          {"step": step, "epoch": epoch, "stem": stem, **(extra or {})})
        if previous and previous.get("stem") != stem:
            for suffix in (".weights.h5", ".optimizer.npz"):
                fileio.remove(fileio.join(self.dir, previous["stem"] + suffix))

    def restore(self, model: keras.Model) -> dict | None:
        """Loads the last backup into a built model and its (built) optimizer."""
        state = self.state()
        if state is None:
            return None
        rundir.load_weights(model, fileio.join(self.dir, state["stem"] + ".weights.h5"))
        raw = fileio.read_bytes(fileio.join(self.dir, state["stem"] + ".optimizer.npz"))
        saved = dict(np.load(io.BytesIO(raw)))
        variables = model.optimizer.variables
        if len(saved) != len(variables):
            raise ValueError(f"Backup in {self.dir!r} holds {len(saved)} optimizer variables, the "
                             f"model's optimizer has {len(variables)}: the config changed. Start a "
                             "new --model_dir.")
        for i, v in enumerate(variables):
            v.assign(saved[f"v{i:05d}"])
        return state
