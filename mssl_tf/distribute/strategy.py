"""Picks the distribution for the current machine and Keras backend.

TensorFlow backend: TPUStrategy when a TPU is named (or "local" on a TPU VM), MirroredStrategy
over the GPUs (or over explicitly listed devices), else the default strategy. JAX backend:
`keras.distribution.DataParallel` over all devices.
"""

from __future__ import annotations

import logging

import keras


def _tf_strategy(tpu: str | None, devices: list[str] | None):
    import tensorflow as tf  # noqa: PLC0415

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
        logging.info("TPU %s: %d replicas, mesh shape %s, %d tasks", tpu,
                     strategy.num_replicas_in_sync, list(topology.mesh_shape), topology.num_tasks)
        return strategy
    # A second MirroredStrategy in one process would reuse the first one's collective keys and
    # abort every collective; start each new one clear of the previous (as TF's tests do).
    tf.distribute.MirroredStrategy._collective_key_base += 100000  # noqa: SLF001
    if devices:
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        gpus = tf.config.list_logical_devices("GPU")
        if not gpus:
            logging.info("No TPU or GPU: training on the default (CPU) strategy")
            return tf.distribute.get_strategy()
        strategy = tf.distribute.MirroredStrategy([g.name for g in gpus])
    logging.info("MirroredStrategy over %s: %d replicas",
                 strategy.extended.worker_devices, strategy.num_replicas_in_sync)
    return strategy


def get_strategy(tpu: str | None = None, devices: list[str] | None = None):
    """Returns the distribution to train under.

    Args:
      tpu: Cloud TPU name, "local" on a TPU VM, or None.
      devices: explicit device list for MirroredStrategy (e.g. ["/cpu:0", "/cpu:1"] in tests).

    Returns:
      On TensorFlow a `tf.distribute.Strategy` (create the model inside its `scope()`); on JAX
      the `keras.distribution.DataParallel` that was set as the global distribution (or None with
      a single device).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tf_strategy(tpu, devices)
    if backend == "jax":
        if tpu and tpu != "local":
            raise ValueError("On the JAX backend the TPU is found automatically; drop --tpu NAME "
                             "(or set KERAS_BACKEND=tensorflow to use a named Cloud TPU).")
        all_devices = keras.distribution.list_devices()
        if len(all_devices) == 1:
            return None
        distribution = keras.distribution.DataParallel(devices=all_devices)
        keras.distribution.set_distribution(distribution)
        logging.info("JAX DataParallel over %d devices", len(all_devices))
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
