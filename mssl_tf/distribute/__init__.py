"""Strategies, clusters and cross-replica collectives.

`strategy`, `cluster` and `runtime` need only Keras (TensorFlow or JAX is imported when used),
so a JAX process without TensorFlow can import them; `collectives` is the TensorFlow side and
loads on first use.
"""

import importlib

from mssl_tf.distribute.cluster import initialize_jax_distributed, is_chief
from mssl_tf.distribute.runtime import DeviceInfo, Runtime, choose_precision
from mssl_tf.distribute.strategy import check_global_batch, get_strategy, num_replicas

_COLLECTIVES = frozenset({"TFCollectives", "cross_replica_concat", "scale_loss"})


def __getattr__(name: str):
    if name in _COLLECTIVES:
        return getattr(importlib.import_module("mssl_tf.distribute.collectives"), name)
    if name == "collectives":
        return importlib.import_module("mssl_tf.distribute.collectives")
    raise AttributeError(f"module 'mssl_tf.distribute' has no attribute {name!r}")
