"""Picks the distribution for the current machine, cluster and Keras backend.

TensorFlow backend: TPUStrategy when a TPU is named (or "local" on a TPU VM; a pod slice is one
TPUStrategy over all its hosts), MultiWorkerMirroredStrategy when `TF_CONFIG` names a cluster of
more than one worker, MirroredStrategy over the GPUs (or over explicitly listed devices), else the
default strategy. JAX backend: `keras.distribution.DataParallel` over all devices of all processes
(after `jax.distributed.initialize` when `MSSL_COORDINATOR` asks for several processes; see
`mssl_tf.distribute.cluster`).
"""

from __future__ import annotations

import logging

import keras

from mssl_tf.distribute import cluster

logger = logging.getLogger(__name__)

# Cross-worker all-reduce implementations of MultiWorkerMirroredStrategy (gin/flag values).
COMMUNICATIONS = ("auto", "ring", "nccl")


def _fit_keras_reductions(strategy) -> None:
    """Makes `strategy.reduce` accept the two calls Keras 3's `fit` makes under this strategy.

    With MultiWorkerMirroredStrategy (TF 2.20/2.21, Keras 3.x; tensorflow/tensorflow#72388)
    `model.fit` fails twice: it reduces the first input batch (a dict of the two views) with
    `strategy.reduce("MEAN", batch)`, which MirroredStrategy maps over the structure and this
    strategy does not ("Attempt to convert a value ({'view_a': PerReplica...}) to a Tensor");
    and it reduces every scalar log with `strategy.reduce("MEAN", v, axis=0)` ("Invalid reduction
    dimension 0 for input with 0 dimensions"). Reducing leaf by leaf, and a scalar without an
    axis, is what those calls mean; the logs are identical on every replica anyway.
    """
    import tensorflow as tf  # noqa: PLC0415

    original = strategy.reduce

    def reduce(reduce_op, value, axis=None):
        if tf.nest.is_nested(value):
            return tf.nest.map_structure(lambda v: reduce(reduce_op, v, axis), value)
        if axis is not None:
            leaf = strategy.experimental_local_results(value)[0]
            if getattr(leaf, "shape", None) is not None and leaf.shape.rank == 0:
                axis = None
        return original(reduce_op, value, axis=axis)

    strategy.reduce = reduce


def _multi_worker_strategy(config: dict, communication: str):
    import tensorflow as tf  # noqa: PLC0415

    if communication not in COMMUNICATIONS:
        raise ValueError(f"communication {communication!r} is not one of {COMMUNICATIONS} "
                         "(gin: get_strategy.communication)")
    implementation = getattr(tf.distribute.experimental.CommunicationImplementation,
                             communication.upper())
    options = tf.distribute.experimental.CommunicationOptions(implementation=implementation)
    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    except (RuntimeError, ValueError) as e:
        raise RuntimeError(
            f"Could not start the multi-worker cluster of TF_CONFIG {config['cluster']} as task "
            f"{config['task']}: {e}. Create the strategy before any other TensorFlow op, give "
            "every worker the same cluster and its own task index, and make the ports "
            "reachable between the hosts.") from e
    _fit_keras_reductions(strategy)
    logger.info("MultiWorkerMirroredStrategy: task %s of %d workers, %d replicas (%s all-reduce)",
                config["task"], cluster.num_tf_workers(config), strategy.num_replicas_in_sync,
                communication)
    return strategy


def _tf_strategy(tpu: str | None, devices: list[str] | None, communication: str):
    import tensorflow as tf  # noqa: PLC0415

    config = cluster.read_tf_config()
    if tpu:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=None if tpu == "local" else tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            topology = tf.tpu.experimental.initialize_tpu_system(resolver)
        except Exception as e:  # noqa: BLE001  resolver errors range from ValueError to URLError
            raise ValueError(
                f"Could not connect to the TPU {tpu!r}: {e}. Give the TPU's name as shown by "
                "`gcloud compute tpus list` (or 'local' on a TPU VM), and install tensorflow-tpu "
                "(pip install 'mssl_tf[tpu]') on the TPU VM; omit --tpu to run on GPU/CPU.") from e
        strategy = tf.distribute.TPUStrategy(resolver)
        logger.info("TPU %s: %d replicas, mesh shape %s, %d tasks", tpu,
                     strategy.num_replicas_in_sync, list(topology.mesh_shape), topology.num_tasks)
        return strategy
    if cluster.num_tf_workers(config) > 1:
        if devices:
            raise ValueError("TF_CONFIG names a multi-worker cluster: each worker uses all its "
                             "GPUs (or its CPU); drop the explicit device list.")
        return _multi_worker_strategy(config, communication)
    # A second MirroredStrategy in one process would reuse the first one's collective keys and
    # abort every collective; start each new one clear of the previous (as TF's tests do).
    tf.distribute.MirroredStrategy._collective_key_base += 100000  # noqa: SLF001
    if devices:
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            logger.info("No TPU or GPU: training on the default (CPU) strategy")
            return tf.distribute.get_strategy()
        strategy = tf.distribute.MirroredStrategy([g.name for g in gpus])
    logger.info("MirroredStrategy over %s: %d replicas",
                 strategy.extended.worker_devices, strategy.num_replicas_in_sync)
    return strategy


def get_strategy(tpu: str | None = None, devices: list[str] | None = None,
                 communication: str = "auto"):
    """Returns the distribution to train under.

    Call it before any other TensorFlow op or JAX computation of the process: a multi-worker
    strategy and `jax.distributed` must configure the runtime first.

    Args:
      tpu: Cloud TPU name (a single TPU or a pod slice), "local" on a TPU VM, or None.
      devices: explicit device list for MirroredStrategy (e.g. ["/cpu:0", "/cpu:1"] in tests).
      communication: cross-worker all-reduce of MultiWorkerMirroredStrategy: "auto" (NCCL on
        GPUs, ring on CPUs), "ring" (gRPC) or "nccl".

    Returns:
      On TensorFlow a `tf.distribute.Strategy` (create the model inside its `scope()`); on JAX
      the `keras.distribution.DataParallel` that was set as the global distribution (or None with
      a single device in a single process).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tf_strategy(tpu, devices, communication)
    if backend == "jax":
        if tpu and tpu != "local":
            raise ValueError("On the JAX backend the TPU is found automatically; drop --tpu NAME "
                             "(or set KERAS_BACKEND=tensorflow to use a named Cloud TPU).")
        if cluster.jax_distributed_requested():
            return cluster.initialize_jax_distributed()
        all_devices = keras.distribution.list_devices()
        if len(all_devices) == 1:
            return None
        # (After jax.distributed.initialize, e.g. by JAX's own detection on a TPU pod slice, the
        # list holds every process' devices.)
        distribution = keras.distribution.DataParallel(devices=all_devices,
                                                       auto_shard_dataset=False)
        keras.distribution.set_distribution(distribution)
        logger.info("JAX DataParallel over %d devices", len(all_devices))
        return distribution
    raise ValueError(f"Unsupported Keras backend {backend!r}; use KERAS_BACKEND=tensorflow or jax")


def num_replicas(strategy) -> int:
    """Replica count of a strategy/distribution returned by `get_strategy`."""
    if strategy is None:
        return 1
    if hasattr(strategy, "num_replicas_in_sync"):
        return strategy.num_replicas_in_sync
    return len(strategy.device_mesh.devices.reshape(-1))


def check_global_batch(global_batch: int, replicas: int) -> int:
    """Per-replica batch; ValueError unless the global batch divides evenly."""
    if global_batch % replicas:
        lower = global_batch - global_batch % replicas
        raise ValueError(
            f"global batch {global_batch} is not divisible by the {replicas} replicas; use "
            f"{lower or replicas} or {lower + replicas} (gin: pretrain.global_batch).")
    return global_batch // replicas
