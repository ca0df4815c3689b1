"""Several processes as one training job, on the loopback interface.

The slow tests start two OS processes as two workers on 127.0.0.1 (ports chosen at run time,
every process under a timeout): TensorFlow's MultiWorkerMirroredStrategy from TF_CONFIG, and JAX
two-process (jax.distributed + DataParallel). Three optimizer steps of VICReg (LARS) and NT-Xent
(SGD), with statistics and negatives over the global batch, must end with the weights of a
single process trained on the same global batches (tolerance of test_equivalence.py). The worker
code is tests/distribute/multiworker_steps.py.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mssl_tf.distribute import cluster
from tests.distribute import processes

WORKER = Path(__file__).with_name("multiworker_steps.py")
TIMEOUT_S = 420
OBJECTIVES = ("vicreg", "ntxent")


def _tf_config(worker_type="worker", index=0, workers=2, chief=0):
    clus = {"worker": [f"127.0.0.1:{1000 + i}" for i in range(workers)]}
    if chief:
        clus["chief"] = ["127.0.0.1:999"]
    return json.dumps({"cluster": clus, "task": {"type": worker_type, "index": index}})


def test_tf_config_parsed_and_chief_rule():
    assert cluster.read_tf_config({}) is None
    config = cluster.read_tf_config({"TF_CONFIG": _tf_config(index=1, workers=3)})
    assert cluster.num_tf_workers(config) == 3
    assert not cluster.is_tf_chief_task(config)
    assert cluster.is_tf_chief_task(cluster.read_tf_config({"TF_CONFIG": _tf_config()}))
    # With a chief task, worker 0 is not the chief; the chief is.
    with_chief = {"TF_CONFIG": _tf_config(index=0, chief=1)}
    assert cluster.num_tf_workers(cluster.read_tf_config(with_chief)) == 3
    assert not cluster.is_tf_chief_task(cluster.read_tf_config(with_chief))
    assert cluster.is_tf_chief_task(
        cluster.read_tf_config({"TF_CONFIG": _tf_config("chief", 0, chief=1)}))
    assert cluster.is_tf_chief_task(None)  # one process is its own chief


@pytest.mark.parametrize("raw, words", [
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no \"cluster\""),
    ('{"cluster": {"worker": ["a:1"]}}', "no \"task\""),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "index 1"),
])
def test_bad_tf_config_names_the_variable_and_fix(raw, words):
    with pytest.raises(ValueError, match="TF_CONFIG") as err:
        cluster.read_tf_config({"TF_CONFIG": raw})
    assert words in str(err.value)


def test_is_chief_follows_tf_config_without_a_strategy(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", _tf_config(index=1))
    assert not cluster.is_chief(None)
    monkeypatch.setenv("TF_CONFIG", _tf_config(index=0))
    assert cluster.is_chief(None)
    monkeypatch.delenv("TF_CONFIG")
    assert cluster.is_chief(None)


def test_single_worker_tf_config_keeps_the_local_strategy(monkeypatch):
    import tensorflow as tf

    from mssl_tf.distribute import get_strategy
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}))
    strategy = get_strategy()
    assert not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    monkeypatch.setenv("TF_CONFIG", "{broken")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        get_strategy()


def test_jax_distributed_args_from_flags_then_environment():
    env = {"MSSL_COORDINATOR": "10.0.0.2:1234", "MSSL_NUM_PROCESSES": "4",
           "MSSL_PROCESS_ID": "3"}
    assert cluster.jax_distributed_args(environ=env) == {
        "coordinator_address": "10.0.0.2:1234", "num_processes": 4, "process_id": 3}
    assert cluster.jax_distributed_args("h:1", 2, 0, environ=env) == {
        "coordinator_address": "h:1", "num_processes": 2, "process_id": 0}
    # "auto" and nothing: JAX detects everything (Cloud TPU pod slices, SLURM).
    assert cluster.jax_distributed_args(environ={"MSSL_COORDINATOR": "auto"}) == {
        "coordinator_address": None, "num_processes": None, "process_id": None}
    assert cluster.jax_distributed_requested({"MSSL_COORDINATOR": "auto"})
    assert not cluster.jax_distributed_requested({})
    with pytest.raises(ValueError, match="no port"):
        cluster.jax_distributed_args(environ={"MSSL_COORDINATOR": "10.0.0.2"})
    with pytest.raises(ValueError, match="MSSL_PROCESS_ID"):
        cluster.jax_distributed_args(environ={**env, "MSSL_PROCESS_ID": "4"})
    with pytest.raises(ValueError, match="MSSL_NUM_PROCESSES='two' is not an integer"):
        cluster.jax_distributed_args(environ={"MSSL_NUM_PROCESSES": "two"})


def test_free_ports_are_distinct_and_bindable():
    import socket
    ports = cluster.free_ports(3)
    assert len(set(ports)) == 3
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
    config = json.loads(cluster.local_tf_config(ports, 2))
    assert config["cluster"]["worker"][2] == f"127.0.0.1:{ports[2]}"
    assert config["task"] == {"type": "worker", "index": 2}


# --- two OS processes --------------------------------------------------------------------------

def _run(envs: list[dict], out_dir: Path, mode: str) -> list[dict]:
    """Starts one worker process per environment, waits for all (bounded), returns their info."""
    return processes.finish([subprocess.Popen([sys.executable, str(WORKER), str(out_dir), mode],
                                              env=env, stdout=subprocess.PIPE,
                                              stderr=subprocess.PIPE, text=True)
                             for env in envs], TIMEOUT_S)


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _check_equal_to_single_process(out_dir: Path, workers: list[dict]) -> None:
    assert [w["index"] for w in workers] == [0, 1]
    assert [w["is_chief"] for w in workers] == [True, False]
    assert all(w["replicas"] == 2 and w["count"] == 2 for w in workers)
    for objective in OBJECTIVES:
        start = _weights(out_dir / f"init_{objective}.npz")
        single = _weights(out_dir / f"single_{objective}.npz")
        moved = max(np.abs(a - b).max() for a, b in zip(single, start))
        assert moved > 1e-3, objective  # three steps did something measurable
        for index in (0, 1):
            multi = _weights(out_dir / f"multi_{objective}_{index}.npz")
            assert len(multi) == len(single)
            for a, b in zip(single, multi):
                np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4, err_msg=objective)


@pytest.mark.slow
def test_two_tf_workers_equal_one_process(tmp_path):
    """MultiWorkerMirroredStrategy over 2 processes x 1 CPU, input per worker from its
    InputContext, gradients all-reduced over gRPC (ring), statistics gathered across workers."""
    _run([processes.worker_env("tensorflow")], tmp_path, "single")
    workers = _run(processes.cluster_envs("tensorflow"), tmp_path, "multi")
    _check_equal_to_single_process(tmp_path, workers)


@pytest.mark.slow
def test_two_jax_processes_equal_one_process(tmp_path):
    """jax.distributed over 2 processes x 1 CPU device (gloo), DataParallel over both, each
    process feeding its own half of every global batch."""
    pytest.importorskip("jax")
    _run([processes.worker_env("jax")], tmp_path, "single")
    workers = _run(processes.cluster_envs("jax"), tmp_path, "multi")
    _check_equal_to_single_process(tmp_path, workers)
