"""Cross-replica collectives of the training step: differentiable gather and 1/R loss scaling.

The objectives need statistics (VICReg) or negatives (NT-Xent) over the *global* batch, and a
custom loss under tf.distribute must be divided by the replica count because Keras sums the
replicas' gradients (`apply_gradients` all-reduces with SUM). Both live here, and only here.

On the JAX backend `keras.distribution.DataParallel` computes the loss on the global (sharded)
batch, so both operations are the identity there (`mssl_tf.models.ssl_model.LocalCollectives`).
"""

from __future__ import annotations

import tensorflow as tf


def _replica_context():
    # None in a cross-replica context; the default replica context (1 replica) outside strategies.
    return tf.distribute.get_replica_context()


def num_replicas() -> int:
    """Replicas taking part in the current step (1 outside a strategy)."""
    ctx = _replica_context()
    if ctx is None:
        return tf.distribute.get_strategy().num_replicas_in_sync
    return ctx.num_replicas_in_sync


def cross_replica_concat(x: tf.Tensor) -> tf.Tensor:
    """Concatenates every replica's `x` along axis 0, in replica order; differentiable.

    `ReplicaContext.all_gather` has a gradient that sums the upstream gradients of all replicas
    and returns the local slice, which together with `scale_loss` gives exactly the single-device
    gradient of a loss computed on the global batch (checked in tests/distribute).
    """
    ctx = _replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    return ctx.all_gather(x, axis=0)


def scale_loss(loss: tf.Tensor) -> tf.Tensor:
    """Divides a loss computed identically on every replica by the replica count."""
    n = num_replicas()
    return loss if n == 1 else loss / tf.cast(n, loss.dtype)


class TFCollectives:
    """The collectives object the SSLModel expects (`gather`, `scale_loss`), for tf.distribute."""

    def gather(self, x):
        """See `cross_replica_concat`."""
        return cross_replica_concat(x)

    def scale_loss(self, loss):
        """See `scale_loss`."""
        return scale_loss(loss)
