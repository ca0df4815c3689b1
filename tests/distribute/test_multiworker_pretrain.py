"""`mssl-pretrain` end to end as two processes of one job on the loopback interface.

Two OS processes run experiments/smoke.gin through `experiment.pretrain` on one shared run
directory, as two TensorFlow workers (TF_CONFIG -> MultiWorkerMirroredStrategy) or two JAX
processes (jax.distributed + DataParallel), each reading its own shard file of the synthetic
data (2 shard files). The tests check what the cluster leaves behind: both processes end at the
step of a single-process run, the chief alone wrote the run directory (every write of each
process is recorded by tests/distribute/multiworker_pretrain.py), and after kill -9 of one
worker the same command on both resumes from the chief's last backup and ends at the same step.
Ports are chosen at run time; every process runs under a timeout.
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mssl_tf import rundir
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.train import checkpoints
from tests.distribute import processes

WORKER = Path(__file__).with_name("multiworker_pretrain.py")
TIMEOUT_S = 300
# After kill -9 of one worker, how long the other may take to notice (fail) before it is
# killed too: a worker blocked in a collective with a dead peer may also wait forever.
SURVIVOR_WAIT_S = 30
# smoke.gin: 32 tracks, global batch 8 -> 4 steps per epoch, 2 epochs; a backup every 2 steps.
FINAL_STEP = 8
KILL_AT = 7  # before step 7: the chief's last backup is step 6, mid-epoch 2


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    write_synthetic_dataset(out, num_tracks={"train": 32}, seconds=0.5, shards_per_split=2)
    return out


def _start(backend: str, run: str, data_dir: str, kill: dict[int, int] | None = None):
    kill = kill or {}
    return [subprocess.Popen([sys.executable, str(WORKER), run, data_dir, str(kill.get(i, 0))],
                             env=env, cwd=str(processes.ROOT), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
            for i, env in enumerate(processes.cluster_envs(backend))]


def _history(run: str) -> list[tuple[str, str]]:
    with open(os.path.join(run, rundir.HISTORY_CSV)) as f:
        return [(r["epoch"], r["step"]) for r in csv.DictReader(f)]


def _start_lines(run: str) -> list[str]:
    with open(os.path.join(run, rundir.TRAIN_LOG)) as f:
        return [line for line in f if "Pre-training " in line]


def _check_finished_run(run: str, results: list[dict], starts: int) -> None:
    assert [r["is_chief"] for r in results] == [True, False]
    assert [r["final_step"] for r in results] == [FINAL_STEP, FINAL_STEP]
    assert results[1]["writes"] == [], results[1]["writes"]  # the chief alone writes RUN/
    assert len(_start_lines(run)) == starts
    assert not os.path.exists(os.path.join(run, rundir.LOCK_JSON))
    assert _history(run) == [("1", "4"), ("2", "8")]  # each epoch's row once, with its step
    info = rundir.read_run(run)
    assert info["replicas"] == 2 and info["latest_epoch"] == 2
    assert checkpoints.TrainingBackup(run).state()["step"] == FINAL_STEP
    encoder, _ = rundir.load_encoder(run, "latest")
    assert encoder.output_shape[-1] == 32


def _run_twice_with_a_kill(backend: str, run: str, data_dir: str, victim: int) -> list[dict]:
    """Kills `victim` before step KILL_AT, then the survivor (bounded); reruns both."""
    procs = _start(backend, run, data_dir, kill={victim: KILL_AT})
    try:
        procs[victim].wait(timeout=TIMEOUT_S)
        assert procs[victim].returncode == -9, procs[victim].stderr.read()[-4000:]
        survivor = procs[1 - victim]
        try:
            survivor.wait(timeout=SURVIVOR_WAIT_S)
        except subprocess.TimeoutExpired:
            pass  # blocked in a collective: killed below, as a cluster manager would
    finally:
        processes.kill_all(procs)
    assert checkpoints.TrainingBackup(run).state()["step"] == KILL_AT - 1
    return processes.finish(_start(backend, run, data_dir), TIMEOUT_S)


# (Kept to two runs of a few minutes in all on 2 cores: the TF case kills the chief, the harder
# side; the JAX case a worker. Both check that only the chief writes RUN/.)
@pytest.mark.slow
def test_two_tf_workers_resume_after_the_chief_is_killed(tmp_path, data_dir):
    run = str(tmp_path / "run")
    results = _run_twice_with_a_kill("tensorflow", run, data_dir, victim=0)
    assert results[0]["writes"]  # the recorder sees the chief's writes
    _check_finished_run(run, results, starts=2)
    with open(os.path.join(run, rundir.TRAIN_LOG)) as f:
        assert f"at step {KILL_AT - 1} " in f.read()  # resumed from the chief's last backup


@pytest.mark.slow
def test_two_jax_processes_pretrain_resume_after_kill(tmp_path, data_dir):
    pytest.importorskip("jax")
    run = str(tmp_path / "run")
    results = _run_twice_with_a_kill("jax", run, data_dir, victim=1)
    _check_finished_run(run, results, starts=2)
