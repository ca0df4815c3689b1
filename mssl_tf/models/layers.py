"""Building blocks for emulating the thesis' hardware: ghost BatchNorm and PyTorch's initialisation.

The thesis trained with PyTorch/XLA on a TPU v3-8. Two things of that set-up change the numbers
and are reproduced here, Keras-only, on any device count:

- BatchNorm statistics per core, not synchronised: in training every core normalised with the
  mean and variance of its own 1/8 of the batch. `GhostBatchNormalization(virtual_batch_size=g)`
  normalises each consecutive group of g rows with that group's statistics (Hoffer et al. 2017,
  "ghost batch normalization").
- PyTorch's default initialisation of `nn.Conv1d` / `nn.Linear` (kaiming_uniform with a = sqrt(5)
  for weights, U(+-1/sqrt(fan_in)) for biases) instead of Keras' Glorot-uniform weights and zero
  biases: `initializers("torch", fan_in)`.
"""

from __future__ import annotations

import math

import keras
from keras import ops

INITS = ("keras", "torch")


def initializers(init: str, fan_in: int) -> dict:
    """Keyword arguments `kernel_initializer` / `bias_initializer` for a Dense or Conv1D layer.

    Args:
      init: "keras" (Glorot-uniform weights, zero biases: Keras' defaults) or "torch" (PyTorch's
        `reset_parameters` of nn.Linear / nn.Conv1d).
      fan_in: input features x kernel size of the layer (torch's fan_in), for the bias bound.

    Returns:
      A dict to splat into the layer's constructor ({} for "keras").

    Raises:
      ValueError: unknown `init`.
    """
    if init == "keras":
        return {}
    if init != "torch":
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    # kaiming_uniform_(a=sqrt(5)): gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain *
    # sqrt(3 / fan_in) = 1 / sqrt(fan_in); VarianceScaling(uniform) has limit sqrt(3 * scale /
    # fan_in), so scale = 1/3 gives the same bound with Keras' own fan_in (kernel_size x in).
    bound = 1.0 / math.sqrt(fan_in)
    return {"kernel_initializer": keras.initializers.VarianceScaling(
                scale=1.0 / 3.0, mode="fan_in", distribution="uniform"),
            "bias_initializer": keras.initializers.RandomUniform(-bound, bound)}


@keras.saving.register_keras_serializable(package="mssl_tf")
class GhostBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization with batch statistics per group of `virtual_batch_size` rows.

    In training the batch is cut into consecutive groups of `virtual_batch_size` rows and each
    group is normalised with its own mean and (biased) variance, as each core of a TPU did with
    unsynchronised BatchNorm. The moving statistics are updated with the mean over the groups of
    their means and variances, which equals the average of the per-group layers' moving
    statistics (the update is linear). In inference the layer is a plain BatchNormalization.

    Args:
      virtual_batch_size: rows per group; None = ordinary BatchNormalization. The batch seen by
        the layer (per replica under tf.distribute, global under JAX's DataParallel) must be a
        multiple of it.
      **kwargs: those of `keras.layers.BatchNormalization` (`synchronized` must stay False:
        groups are within the batch the layer sees).
    """

    def __init__(self, virtual_batch_size: int | None = None, **kwargs):
        if virtual_batch_size is not None and kwargs.get("synchronized"):
            raise ValueError("GhostBatchNormalization: synchronized=True averages the statistics "
                             "over all replicas, the opposite of per-group statistics; use one")
        if virtual_batch_size is not None and int(virtual_batch_size) < 1:
            raise ValueError(f"virtual_batch_size must be >= 1, got {virtual_batch_size}")
        super().__init__(**kwargs)
        self.virtual_batch_size = None if virtual_batch_size is None else int(virtual_batch_size)

    def add_weight(self, *args, **kwargs):
        """Moving statistics aggregated by mean across replicas.

        Keras creates BatchNorm's moving statistics with aggregation "none": under tf.distribute
        every replica then keeps its own copy and a checkpoint holds replica 0's. With "mean"
        each update is averaged over the replicas, so the moving statistics are the mean over
        all groups of the global batch, as on one device, whatever the replica count.
        """
        if not kwargs.get("trainable", True):
            kwargs.setdefault("aggregation", "mean")
        return super().add_weight(*args, **kwargs)

    def call(self, inputs, training=None, mask=None):
        """Per-group statistics in training; see the class docstring."""
        if not (training and self.trainable) or self.virtual_batch_size is None:
            return super().call(inputs, training=training, mask=mask)
        if mask is not None:
            raise ValueError("GhostBatchNormalization does not support masks")
        if self.axis not in (-1, len(inputs.shape) - 1):
            raise ValueError("GhostBatchNormalization normalises the last axis only")
        size = self.virtual_batch_size
        batch = inputs.shape[0]
        if batch is not None and batch % size:
            raise ValueError(f"GhostBatchNormalization {self.name!r}: the batch of {batch} rows "
                             f"is not a multiple of virtual_batch_size={size}; use a (per-replica) "
                             "batch that is a multiple of the ghost batch size")
        x = ops.cast(inputs, backend_result_type(inputs.dtype))
        groups = ops.reshape(x, (-1, size) + tuple(x.shape[1:]))
        reduce_axes = tuple(range(1, len(groups.shape) - 1))
        mean = ops.mean(groups, axis=reduce_axes, keepdims=True)
        variance = ops.mean(ops.square(groups - mean), axis=reduce_axes, keepdims=True)
        channel_axes = tuple(range(len(groups.shape) - 1))
        group_mean = ops.mean(mean, axis=channel_axes)
        group_variance = ops.mean(variance, axis=channel_axes)
        m = self.momentum
        self.moving_mean.assign(ops.cast(self.moving_mean, x.dtype) * m + group_mean * (1.0 - m))
        self.moving_variance.assign(
            ops.cast(self.moving_variance, x.dtype) * m + group_variance * (1.0 - m))
        out = (groups - mean) * ops.rsqrt(variance + self.epsilon)
        if self.scale:
            out = out * ops.cast(self.gamma, x.dtype)
        if self.center:
            out = out + ops.cast(self.beta, x.dtype)
        return ops.cast(ops.reshape(out, ops.shape(x)), self.compute_dtype)

    def get_config(self):
        """Config with `virtual_batch_size`."""
        return {**super().get_config(), "virtual_batch_size": self.virtual_batch_size}


def backend_result_type(dtype) -> str:
    """float32 for float16/bfloat16 inputs (BatchNorm overflows in low precision), else dtype."""
    return keras.backend.result_type(dtype, "float32")


def batch_norm(momentum: float, epsilon: float, *, synchronized: bool,
               ghost_batch_size: int | None, name: str) -> keras.layers.Layer:
    """A BatchNormalization, or a GhostBatchNormalization when `ghost_batch_size` is set."""
    if ghost_batch_size:
        return GhostBatchNormalization(virtual_batch_size=ghost_batch_size, momentum=momentum,
                                       epsilon=epsilon, name=name)
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon,
                                           synchronized=synchronized, name=name)
