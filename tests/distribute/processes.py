"""Worker processes of one job on 127.0.0.1 for the multi-process tests: their environments and
a bounded wait that leaves no process behind."""

import json
import os
import subprocess
import time
from pathlib import Path

from mssl_tf.distribute import cluster

ROOT = Path(__file__).resolve().parents[2]


def worker_env(backend: str, **extra: str) -> dict:
    """This process' environment without any cluster setting, for a worker on `backend`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CONFIG", cluster.ENV_COORDINATOR, cluster.ENV_NUM_PROCESSES,
                        cluster.ENV_PROCESS_ID, "XLA_FLAGS")}
    env.update(KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]), **extra)
    return env


def cluster_envs(backend: str) -> list[dict]:
    """Environments of two processes of one job on free loopback ports: TF_CONFIG workers on
    TensorFlow, a jax.distributed coordinator on JAX."""
    if backend == "tensorflow":
        ports = cluster.free_ports(2)
        return [worker_env(backend, TF_CONFIG=cluster.local_tf_config(ports, i))
                for i in range(2)]
    (port,) = cluster.free_ports(1)
    return [worker_env(backend, **{cluster.ENV_COORDINATOR: f"127.0.0.1:{port}",
                                   cluster.ENV_NUM_PROCESSES: "2",
                                   cluster.ENV_PROCESS_ID: str(i)}) for i in range(2)]


def kill_all(procs: list[subprocess.Popen]) -> None:
    """Kills every process still running: one left waiting for a dead peer must not outlive
    the test."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def finish(procs: list[subprocess.Popen], timeout_s: float) -> list[dict]:
    """Waits for every process (all within `timeout_s`); each must exit 0. Returns the JSON of
    each one's last stdout line."""
    results = []
    deadline = time.monotonic() + timeout_s
    try:
        for i, proc in enumerate(procs):
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, f"process {i}:\n{err[-4000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        kill_all(procs)
    return results
