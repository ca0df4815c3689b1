"""The guard: a diverging run stops with a usable message and keeps the last good state."""

import csv
import io
import os
import shlex
from contextlib import redirect_stderr

import numpy as np
import pytest

from mssl_tf import gin_utils, rundir
from mssl_tf.cli import pretrain as cli
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.train import checkpoints, experiment
from mssl_tf.train.tensorboard import read_scalars


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    write_synthetic_dataset(out, num_tracks={"train": 32}, seconds=0.5)
    return out


def _argv(run, data_dir, *params):
    argv = ["--model_dir", run, "--gin_file", "experiments/smoke.gin",
            "--gin_param", f"pretrain.data_dir = '{data_dir}'",
            "--gin_param", "TrainLoop.progress = False"]
    for p in params:
        argv += ["--gin_param", p]
    return argv


def _cli(argv):
    err = io.StringIO()
    with redirect_stderr(err):
        status = cli.main(argv)
    return status, err.getvalue()


def _rows(run):
    return list(csv.DictReader(open(os.path.join(run, "history.csv"))))


@pytest.mark.slow
def test_divergence_with_collapse_monitors_keeps_the_good_backup(tmp_path, data_dir):
    run = str(tmp_path / "run")
    assert _cli(_argv(run, data_dir, "TrainLoop.max_steps = 4"))[0] == 0
    good = checkpoints.TrainingBackup(run).state()
    assert good["step"] == 4
    weights_before = open(os.path.join(run, "backup", good["stem"] + ".weights.h5"), "rb").read()

    # A learning rate of 1e6 with the collapse monitors on: the loss runs to ~1e25 while still
    # finite, and the rank's eigendecomposition sees activations whose squares overflow.
    bad = _argv(run, data_dir, "TrainLoop.max_steps = None", "pretrain.epochs = 6",
                "WarmupCosine.base_lr = 1e6") + ["--allow_config_change"]
    for _ in range(2):  # a retry must not add rows either
        status, err = _cli(bad)
        assert status == 3, err
    assert "Traceback" not in err and "InvalidArgumentError" not in err
    assert "WarmupCosine.base_lr = 1e+06 now" in err
    assert "float32" not in err  # already the precision: not suggested
    resume = err.split("Resume from the last good backup with:\n")[1].strip()
    assert shlex.split(resume)[:3] == ["mssl-pretrain", "--model_dir", run]
    assert resume.endswith("--gin_param 'WarmupCosine.base_lr = 100000'")
    assert "--allow_config_change" in resume

    state = checkpoints.TrainingBackup(run).state()
    assert state["step"] == 4
    assert open(os.path.join(run, "backup", state["stem"] + ".weights.h5"), "rb").read() \
        == weights_before
    assert [r["step"] for r in _rows(run)] == ["4"]

    # Resuming with a sane learning rate goes on from step 4 and ends where planned.
    status, err = _cli(_argv(run, data_dir, "TrainLoop.max_steps = None", "pretrain.epochs = 3",
                             "WarmupCosine.base_lr = 0.2") + ["--allow_config_change"])
    assert status == 0, err
    rows = _rows(run)
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "4"), ("2", "8"), ("3", "12")]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    encoder, _ = rundir.load_encoder(run)
    assert all(np.isfinite(w).all() for w in encoder.get_weights())
    # TensorBoard: each tag's steps strictly increase across the failed and the good resumes.
    for tag, points in read_scalars(os.path.join(run, "logs", "train")).items():
        steps = [s for s, _ in points]
        assert steps == sorted(set(steps)), tag


def test_non_finite_weights_are_never_backed_up(tmp_path, data_dir):
    from mssl_tf.train.callbacks import RunRecorder

    gin_utils.parse(["experiments/smoke.gin"], [f"pretrain.data_dir = '{data_dir}'"])
    runtime = experiment.Runtime(precision="float32").start()
    parts = experiment.configurables
    model = experiment.build_model(
        runtime, parts.build_sample_cnn, parts.vicreg_projector, parts.vicreg_loss, parts.SGD,
        0.1, None, crop_len=2187, sample_rate=22050, collapse_monitors=False)
    run = str(tmp_path / "run")
    os.makedirs(run)
    backup = checkpoints.TrainingBackup(run)
    recorder = RunRecorder(run, backup, steps_per_epoch=4, start_step=0, write=True)
    recorder.set_model(model)
    assert recorder.save(1) and backup.state()["step"] == 1
    weights = model.get_weights()
    weights[0][...] = np.nan
    model.set_weights(weights)
    assert not recorder.save(2)
    assert backup.state()["step"] == 1 and recorder.stopped.reason == "non-finite"
    recorder.close()
