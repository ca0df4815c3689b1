"""kill -9 at the worst moments of a run; the rerun of the same command ends consistent.

Each case kills the process at one point (inside a step after a mid-epoch backup, between the
history row and the backup, in the middle of writing a snapshot, in the middle of the last
backup), reruns the same command, and checks the run against an uninterrupted one's
invariants: the backup it resumed from, the same final step, one history row per epoch with its
step, loadable snapshots, a TensorBoard stream whose steps strictly increase and whose epoch
values equal history.csv's.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mssl_tf import rundir
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.train import checkpoints
from mssl_tf.train.tensorboard import read_scalars

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import keras
    from mssl_tf import fileio, gin_utils, rundir
    from mssl_tf.train import checkpoints, experiment, history
    model_dir, data_dir, point = sys.argv[1], sys.argv[2], sys.argv[3]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    class KillInStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            # 7 steps done: the last backup is step 6's, in the middle of epoch 2.
            if point == "step" and self.model.optimizer.iterations.numpy() == 7:
                die()

    append = history.History.append
    def append_then_die(self, row):
        append(self, row)
        if point == "after_history" and row["epoch"] == 2:
            die()
    history.History.append = append_then_die

    save_weights = rundir.save_weights
    def snapshot_dies(model, path):
        if point == "snapshot" and "snapshots" in path:
            with fileio.atomic_output(path) as local:
                model.save_weights(local)
                die()
        save_weights(model, path)
    rundir.save_weights = snapshot_dies

    backup_save = checkpoints.TrainingBackup.save
    def backup_dies(self, model, step, epoch, extra=None):
        if point == "last_backup" and step == 8:
            rundir.save_weights(model, fileio.join(self.dir, f"step-{step:09d}.weights.h5"))
            die()
        backup_save(self, model, step, epoch, extra)
    checkpoints.TrainingBackup.save = backup_dies

    gin_utils.parse(["experiments/smoke.gin"], [f"pretrain.data_dir = '{data_dir}'",
                    "TrainLoop.progress = False", "TrainLoop.log_every_steps = 1"],
                    model_dir=model_dir)
    r = experiment.pretrain(model_dir, loop=experiment.TrainLoop(callbacks=(KillInStep(),)))
    print("FINAL_STEP", r["step"])
""")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    write_synthetic_dataset(out, num_tracks={"train": 32}, seconds=0.5)
    return out


def _run(run, data_dir, point):
    return subprocess.run([sys.executable, "-c", SCRIPT, run, data_dir, point],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["step", "after_history", "snapshot", "last_backup"])
def test_kill_then_rerun_is_consistent(tmp_path, data_dir, point):
    run = str(tmp_path / "run")
    killed = _run(run, data_dir, point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    again = _run(run, data_dir, "none")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "FINAL_STEP 8" in again.stdout
    # Where the rerun picked up: the last finished backup (a mid-epoch one for three cases).
    resumed = {"step": 6, "after_history": 6, "snapshot": 4, "last_backup": 6}[point]
    log = open(os.path.join(run, "train.log")).read()
    assert f"at step {resumed} (epoch 2, step {resumed - 4} of it)" in log, log[-2000:]

    assert checkpoints.TrainingBackup(run).state()["step"] == 8
    rows = list(csv.DictReader(open(os.path.join(run, "history.csv"))))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "4"), ("2", "8")]
    info = rundir.read_run(run)
    assert info["latest_epoch"] == 2 and info["milestones_saved"] == [1, 2]
    for checkpoint in ("latest", 1, 2):
        encoder, _ = rundir.load_encoder(run, checkpoint)
        assert all(np.isfinite(w).all() for w in encoder.get_weights())
    assert not [f for f in os.listdir(os.path.join(run, "snapshots")) if ".tmp" in f]
    scalars = read_scalars(os.path.join(run, "logs", "train"))
    for tag, points in scalars.items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), (tag, steps)
    assert [s for s, _ in scalars["loss"]] == list(range(1, 9))
    epoch_loss = dict(scalars["epoch/loss"])
    for r in rows:
        np.testing.assert_allclose(epoch_loss[int(r["step"])], float(r["loss"]), rtol=1e-6)
    assert json.load(open(os.path.join(run, "run.json")))["format"] == rundir.RUN_FORMAT
