"""Several hosts: the clusters of TensorFlow (`TF_CONFIG`) and of JAX (`jax.distributed`).

TensorFlow multi-worker training follows TensorFlow's own convention: every worker process is
started with the same code and an environment variable `TF_CONFIG` naming the whole cluster and
this process' task, e.g. for worker 1 of 2::

    TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
                "task": {"type": "worker", "index": 1}}'

Kubernetes (TFJob), Vertex AI custom jobs and similar launchers set it themselves. A cluster of
more than one worker makes `mssl_tf.distribute.get_strategy` return a
`MultiWorkerMirroredStrategy`.

JAX multi-process training calls `jax.distributed.initialize` once per process, before any JAX
computation. `initialize_jax_distributed` takes the coordinator address, process count and
process id from its arguments or from the environment variables `MSSL_COORDINATOR`
(``host:port`` of process 0), `MSSL_NUM_PROCESSES` and `MSSL_PROCESS_ID`; with none of them set
it leaves the detection to JAX (Cloud TPU pod slices, SLURM, Open MPI), and then spreads
`keras.distribution.DataParallel` over the devices of all processes. `MSSL_COORDINATOR=auto`
asks for multi-process JAX with everything detected by JAX (a Cloud TPU pod slice). Keras' own
`KERAS_DISTRIBUTION_JOB_ADDRESSES`, `KERAS_DISTRIBUTION_NUM_PROCESSES` and
`KERAS_DISTRIBUTION_PROCESS_ID` are read when ours are unset.

This module imports neither TensorFlow nor JAX at import time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket

logger = logging.getLogger(__name__)

TF_CONFIG = "TF_CONFIG"
ENV_COORDINATOR = "MSSL_COORDINATOR"
ENV_NUM_PROCESSES = "MSSL_NUM_PROCESSES"
ENV_PROCESS_ID = "MSSL_PROCESS_ID"
# Task types of a TF_CONFIG cluster that run the training step (an "evaluator" or a "ps" does
# not take part in the all-reduce).
_WORKER_TYPES = ("chief", "worker")


def read_tf_config(environ: dict | None = None) -> dict | None:
    """The parsed `TF_CONFIG` of this process, or None when it is unset or empty.

    Raises:
      ValueError: `TF_CONFIG` is not a JSON object with a "cluster" mapping and a "task" naming
        one of its tasks.
    """
    raw = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    if not raw:
        return None
    example = ('{"cluster": {"worker": ["host0:port", "host1:port"]}, '
               '"task": {"type": "worker", "index": 0}}')
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}); set it to e.g. {example}") from e
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG has no \"cluster\" mapping; set it to e.g. {example}")
    if not isinstance(task, dict) or "type" not in task:
        raise ValueError(f"TF_CONFIG has no \"task\" with a \"type\"; set it to e.g. {example}")
    tasks = cluster.get(task["type"])
    index = task.get("index", 0)
    if not isinstance(tasks, list) or not isinstance(index, int) or not 0 <= index < len(tasks):
        raise ValueError(
            f"TF_CONFIG's task {task['type']!r} index {index} is not in its cluster "
            f"{ {k: len(v) for k, v in cluster.items() if isinstance(v, list)} }; give every "
            "process the same cluster and its own task type and index.")
    return config


def num_tf_workers(config: dict | None) -> int:
    """Processes running the training step in a `TF_CONFIG` cluster (chief + workers); 0: none."""
    if not config:
        return 0
    return sum(len(config["cluster"].get(kind, [])) for kind in _WORKER_TYPES)


def is_tf_chief_task(config: dict | None) -> bool:
    """Whether `TF_CONFIG` makes this process the chief: task "chief", or worker 0 without one.

    (The rule of TensorFlow's multi-worker guides: the chief saves checkpoints and summaries.)
    No `TF_CONFIG` means a single process, which is its own chief.
    """
    if not config:
        return True
    task = config["task"]
    if task["type"] == "chief":
        return True
    return (task["type"] == "worker" and task.get("index", 0) == 0
            and not config["cluster"].get("chief"))


def is_chief(strategy=None) -> bool:
    """Whether this process writes the run directory (and logs, and figures).

    TensorFlow: the chief task of `TF_CONFIG` (task "chief", or worker 0 when there is no chief;
    always True for one process). JAX: process 0 (`jax.process_index() == 0`).

    Args:
      strategy: what `get_strategy` returned (a tf.distribute.Strategy, a
        keras.distribution.Distribution or None).
    """
    import keras  # noqa: PLC0415

    if keras.backend.backend() == "jax":
        import jax  # noqa: PLC0415
        return jax.process_index() == 0
    extended = getattr(strategy, "extended", None)
    if extended is not None and hasattr(extended, "should_checkpoint"):
        # MultiWorkerMirroredStrategy decides this from its cluster resolver (TF_CONFIG or a
        # launcher's resolver); the other strategies return True.
        return bool(extended.should_checkpoint)
    return is_tf_chief_task(read_tf_config())


@contextlib.contextmanager
def process_local():
    """A context in which Keras creates variables on this process alone (chief-only writes).

    On multi-process JAX, Keras places every new variable with the global distribution, and
    that placement checks that all processes hold the same value: a collective. Keras'
    `save_weights` creates such a variable (a throwaway optimizer, to learn which attributes to
    skip), so the chief saving a backup alone would wait forever for the other processes, which
    are in the next step. Inside this context no distribution is set, so the variables it
    creates are local. Elsewhere (TensorFlow, one JAX process) it does nothing.
    """
    import keras  # noqa: PLC0415

    if keras.backend.backend() != "jax" or keras.distribution.distribution() is None:
        yield
        return
    distribution = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct TCP ports free on `host` now (for clusters on one machine: tests, bench).

    The sockets are held open until all ports are chosen, so the ports differ; another program
    may still take one before the cluster binds it, which on a test machine is rare.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, 0))
            ports.append(s.getsockname()[1])
        return ports


def local_tf_config(ports: list[int], index: int, host: str = "127.0.0.1") -> str:
    """The `TF_CONFIG` of worker `index` of a cluster of `len(ports)` workers on one host."""
    return json.dumps({"cluster": {"worker": [f"{host}:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def _env_int(name: str, environ) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; unset it or give a number") from None


def jax_distributed_args(coordinator_address: str | None = None,
                         num_processes: int | None = None, process_id: int | None = None,
                         environ: dict | None = None) -> dict:
    """Arguments for `jax.distributed.initialize`: the given ones, else the environment's.

    Returns a dict with the keys `coordinator_address`, `num_processes`, `process_id`; a value
    left None is auto-detected by JAX (Cloud TPU, SLURM, Open MPI).

    Raises:
      ValueError: a value is malformed or the process id is out of range.
    """
    environ = os.environ if environ is None else environ
    address = coordinator_address or environ.get(ENV_COORDINATOR, "").strip() or None
    if address == "auto":
        address = None
    count = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES, environ)
    pid = process_id if process_id is not None else _env_int(ENV_PROCESS_ID, environ)
    if address is not None and ":" not in address:
        raise ValueError(f"coordinator address {address!r} has no port; give host:port of "
                         f"process 0 (flag or {ENV_COORDINATOR}), e.g. 10.0.0.2:1234")
    if count is not None and count < 1:
        raise ValueError(f"number of processes {count} must be >= 1 ({ENV_NUM_PROCESSES})")
    if pid is not None and (pid < 0 or (count is not None and pid >= count)):
        raise ValueError(f"process id {pid} is not in [0, {count}) ({ENV_PROCESS_ID})")
    return {"coordinator_address": address, "num_processes": count, "process_id": pid}


def jax_distributed_requested(environ: dict | None = None) -> bool:
    """Whether the environment asks for multi-process JAX (`MSSL_COORDINATOR` is set, or Keras'
    `KERAS_DISTRIBUTION_JOB_ADDRESSES`)."""
    environ = os.environ if environ is None else environ
    return any(environ.get(k, "").strip()
               for k in (ENV_COORDINATOR, "KERAS_DISTRIBUTION_JOB_ADDRESSES"))


def initialize_jax_distributed(coordinator_address: str | None = None,
                               num_processes: int | None = None, process_id: int | None = None):
    """Joins this process to a multi-process JAX job and distributes Keras over all its devices.

    Call once per process before any JAX computation. The values come from the arguments, else
    from `MSSL_COORDINATOR`, `MSSL_NUM_PROCESSES`, `MSSL_PROCESS_ID`, else JAX detects them
    (Cloud TPU pod slices, SLURM, Open MPI). On CPU the cross-process collectives go through
    gloo. Calling it again in an initialized process only resets the distribution.

    Returns:
      The `keras.distribution.DataParallel` over every process' devices that was set as the
      global distribution: each process feeds its own `global_batch / num_processes` examples
      (see `jax_input_context`; Keras' auto-sharding is off) and the loss sees the global batch.
    """
    import jax  # noqa: PLC0415
    import keras  # noqa: PLC0415

    if keras.backend.backend() != "jax":
        raise ValueError("initialize_jax_distributed needs KERAS_BACKEND=jax; on TensorFlow "
                         "set TF_CONFIG on every worker instead.")
    args = jax_distributed_args(coordinator_address, num_processes, process_id)
    if not jax.distributed.is_initialized():
        # Cross-process collectives on CPU need gloo (the default from JAX 0.5 on; older
        # versions fail with "not implemented"); GPUs and TPUs do not use this setting.
        with contextlib.suppress(AttributeError, ValueError):
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        try:
            # Keras' initialize = jax.distributed.initialize + one random seed for all
            # processes (when none was set), so that every process creates the same weights.
            keras.distribution.initialize(args["coordinator_address"], args["num_processes"],
                                          args["process_id"])
        except Exception as e:  # noqa: BLE001  JAX raises RuntimeError/ValueError/XlaRuntimeError
            raise RuntimeError(
                f"jax.distributed.initialize({args}) failed: {e}. Give every process the same "
                f"coordinator address (host:port of process 0, {ENV_COORDINATOR}) and process "
                f"count ({ENV_NUM_PROCESSES}) and its own id ({ENV_PROCESS_ID}); process 0 must "
                "be able to listen on that port.") from e
    devices = keras.distribution.list_devices()
    # Each process reads its own shard files (`jax_input_context`), so Keras must not shard
    # the per-process dataset again (its auto-sharding also refuses numpy input).
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    logger.info("JAX process %d of %d: DataParallel over %d devices (%d local)",
                jax.process_index(), jax.process_count(), len(devices), jax.local_device_count())
    return distribution


def jax_input_context(global_batch: int | None = None):
    """The `tf.distribute.InputContext` of this JAX process: one input pipeline per process.

    With it a dataset function written for `distribute_datasets_from_function` (read files
    `input_pipeline_id::num_input_pipelines`, batch `get_per_replica_batch_size`) feeds a JAX
    process its own share. `num_replicas_in_sync` is the process count, so the "per-replica"
    batch is the per-process batch `global_batch / num_processes`, which Keras' DataParallel
    then splits over the process' local devices.

    Args:
      global_batch: if given, checked to divide evenly by the process count.
    """
    import jax  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    count, index = jax.process_count(), jax.process_index()
    if global_batch is not None and global_batch % count:
        raise ValueError(f"global batch {global_batch} is not divisible by the {count} JAX "
                         "processes; choose a multiple (gin: pretrain.global_batch).")
    return tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=index,
                                      num_replicas_in_sync=count)
