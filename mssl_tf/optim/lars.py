"""LARS optimizer (You et al. 2017) as facebookresearch/vicreg's `LARS`, for Keras 3 on any backend.

Keras 3 ships no LARS and the TF2 SimCLR one subclasses the removed legacy optimizer API, so this is
a `keras.optimizers.Optimizer` written with keras.ops only (TensorFlow, JAX, tf.distribute).

Update for a variable w with gradient g (main_vicreg.py `LARS.step`):

    if w.ndim > 1:                              # biases and BN gamma/beta (rank 1) are excluded
        g = g + weight_decay * w
        q = eta * ||w|| / ||g||  if ||w|| > 0 and ||g|| > 0  else 1
        g = q * g
    mu = momentum * mu + g                      # classic momentum, after the trust-ratio scaling
    w = w - lr * mu

This is the "classic" momentum form of the reference (the buffer holds gradients and the current
learning rate multiplies the whole buffer), not google-research/simclr's `v = m v + lr g`; the two
differ whenever the learning rate changes, i.e. at every step of the warmup + cosine schedule.

The exclusion is by rank (vicreg's `exclude_bias_and_norm`), not by name: Keras 3 names BN
parameters `gamma`/`beta`, and Spijkervet/SimCLR's variant that ignores its exclusion lists is
deliberately not copied. The weight decay is this coupled L2 term only; Keras' own decoupled
`weight_decay` of the base class is never applied.
"""

from __future__ import annotations

import keras
from keras import ops
from keras.optimizers.schedules import LearningRateSchedule


@keras.saving.register_keras_serializable(package="mssl_tf")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise adaptive rate scaling with classic momentum (VICReg's variant).

    Args:
      learning_rate: float, or a `keras.optimizers.schedules.LearningRateSchedule` evaluated at the
        optimizer's iteration count (e.g. `mssl_tf.optim.WarmupCosine`).
      momentum: momentum coefficient in [0, 1].
      weight_decay: L2 coefficient added to the gradient of rank > 1 variables before the trust
        ratio (coupled, as in the reference; not Keras' decoupled decay).
      eta: trust coefficient of the layer-wise ratio.
      name: optimizer name.
      **kwargs: other `keras.optimizers.Optimizer` arguments (clipnorm, use_ema, ...). Passing
        Keras' `weight_decay` twice is impossible by construction: ours replaces it.

    Raises:
      ValueError: for a momentum outside [0, 1], a negative weight decay or a non-positive eta.
    """

    def __init__(self, learning_rate: float | LearningRateSchedule = 0.2, momentum: float = 0.9,
                 weight_decay: float = 1e-6, eta: float = 0.001, name: str = "lars",
                 **kwargs):
        # The base class would add a *decoupled* decay on top of ours: keep it off.
        super().__init__(learning_rate=learning_rate, weight_decay=None, name=name, **kwargs)
        momentum, weight_decay, eta = float(momentum), float(weight_decay), float(eta)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"LARS: momentum must be in [0, 1], got {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"LARS: weight_decay must be >= 0, got {weight_decay}")
        if not eta > 0.0:
            raise ValueError(f"LARS: eta must be > 0, got {eta}")
        self.momentum = momentum
        self.lars_weight_decay = weight_decay
        self.eta = eta

    def build(self, variables: list) -> None:
        """Creates one momentum buffer per variable (zeros, like vicreg's lazily created `mu`).

        Args:
          variables: the trainable variables this optimizer will update.
        """
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def update_step(self, gradient, variable, learning_rate) -> None:
        """Applies one LARS update to `variable`.

        Args:
          gradient: gradient of the loss w.r.t. `variable` (already summed over replicas).
          variable: the model variable.
          learning_rate: the current learning rate (a scalar tensor).
        """
        dtype = variable.dtype
        learning_rate = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        mu = self.momentums[self._get_variable_index(variable)]

        # The rank is static, so the Python branch is fine under tf.function and jax.jit. (On TF the
        # variable may be a raw tf.Variable without `.path`, which is why names are not used.)
        if len(variable.shape) > 1:
            gradient = gradient + ops.cast(self.lars_weight_decay, dtype) * variable
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            g_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            # Guard both norms; the safe denominator keeps the unused branch finite.
            safe_g_norm = ops.where(g_norm > 0, g_norm, ops.ones_like(g_norm))
            ratio = ops.cast(self.eta, dtype) * w_norm / safe_g_norm
            trust = ops.where(ops.logical_and(w_norm > 0, g_norm > 0), ratio,
                              ops.ones_like(ratio))
            gradient = gradient * trust

        self.assign(mu, ops.cast(self.momentum, dtype) * mu + gradient)
        self.assign_sub(variable, learning_rate * mu)

    def get_config(self) -> dict:
        """Returns the constructor arguments (learning-rate schedules serialised by Keras)."""
        config = super().get_config()
        config.update({"momentum": self.momentum, "weight_decay": self.lars_weight_decay,
                       "eta": self.eta})
        return config
