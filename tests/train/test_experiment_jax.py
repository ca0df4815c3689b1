"""pretrain() on the JAX backend: the same run directory, resume and guard as on TensorFlow."""

import csv
import os
import textwrap

import numpy as np
import pytest

from mssl_tf import rundir
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.train import checkpoints
from mssl_tf.train.tensorboard import read_scalars
from tests.jax_runner import last_json, run_jax

SCRIPT = textwrap.dedent("""
    import json, sys
    import keras
    from mssl_tf import gin_utils
    from mssl_tf.train import experiment
    run, data, max_steps = sys.argv[1], sys.argv[2], sys.argv[3]
    gin_utils.parse(["experiments/smoke.gin"], [f"pretrain.data_dir = '{data}'",
                    "TrainLoop.progress = False", f"TrainLoop.max_steps = {max_steps}",
                    "TrainLoop.log_every_steps = 1"], model_dir=run, allow_config_change=True)
    r = experiment.pretrain(run)
    print(json.dumps({"step": r["step"], "backend": keras.backend.backend(),
                      "devices": len(keras.distribution.list_devices())}))
""")


@pytest.mark.slow
def test_jax_run_writes_the_same_run_directory_and_resumes(tmp_path):
    pytest.importorskip("jax")
    data = str(tmp_path / "data")
    write_synthetic_dataset(data, num_tracks={"train": 32}, seconds=0.5)
    run = str(tmp_path / "run")
    first = last_json(run_jax(SCRIPT, run, data, 6, devices=2))
    assert first == {"step": 6, "backend": "jax", "devices": 2}
    assert checkpoints.TrainingBackup(run).state()["step"] == 6
    second = last_json(run_jax(SCRIPT, run, data, "None", devices=2))
    assert second["step"] == 8
    rows = list(csv.DictReader(open(os.path.join(run, "history.csv"))))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "4"), ("2", "8")]
    info = rundir.read_run(run)
    assert info["backend"] == "jax" and info["replicas"] == 2 and info["latest_epoch"] == 2
    scalars = read_scalars(os.path.join(run, "logs", "train"))
    assert [s for s, _ in scalars["loss"]] == list(range(1, 9))
    encoder, _ = rundir.load_encoder(run)
    assert all(np.isfinite(w).all() for w in encoder.get_weights())
