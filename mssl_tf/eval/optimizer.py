"""PyTorch's `torch.optim.Adam` (with its coupled L2 `weight_decay`) as a Keras 3 optimizer.

CLMR trains its probes with `Adam(lr=1e-3, weight_decay=1e-6)` (anchors 1.8). Two details make
Keras' own Adam differ from it:

* PyTorch's `weight_decay` is L2 added to the gradient (`g + wd * w`) *before* the moments, so
  it is rescaled by Adam; Keras' `weight_decay` is decoupled (AdamW-style, anchors pitfall 15).
  An L2 kernel regularizer is not the same either: its gradient is 2 * l2 * w, it shows up in
  the logged (and validation-monitored) loss, and it covers only the layers it is attached to.
* PyTorch divides by `sqrt(v_hat) + eps` with the bias-corrected `v_hat`; Keras folds the bias
  correction into the step size and adds eps to the uncorrected `sqrt(v)`, which is a different
  effective epsilon early in training.

Keras-only (keras.ops), so it runs on the TensorFlow and the JAX backend.
"""

from __future__ import annotations

import keras
from keras import ops


class TorchAdam(keras.optimizers.Optimizer):
    """Adam exactly as `torch.optim.Adam(amsgrad=False, maximize=False)` computes it.

    Per step t, for every trainable variable w (biases included, as `model.parameters()` is):
    g = grad + l2 * w; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """

    def __init__(self, learning_rate: float = 1e-3, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-8, l2: float = 0.0, name: str = "torch_adam", **kwargs):
        """Creates the optimizer.

        Args:
          learning_rate: step size (a float or a Keras schedule).
          beta_1: first-moment decay (PyTorch betas[0]).
          beta_2: second-moment decay (PyTorch betas[1]).
          epsilon: added to the bias-corrected sqrt(v) (PyTorch eps; its default 1e-8).
          l2: PyTorch's coupled `weight_decay`, added as l2 * w to every gradient.
          name: optimizer name.
          **kwargs: other `keras.optimizers.Optimizer` arguments. Keras' own decoupled
            `weight_decay` is refused to keep the two kinds of decay apart.
        """
        if kwargs.get("weight_decay"):
            raise ValueError("TorchAdam applies PyTorch's coupled decay: pass l2=..., not "
                             "weight_decay=... (Keras' decoupled decay)")
        if l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.l2 = l2

    def build(self, var_list):
        """Creates the first- and second-moment slots."""
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        """One PyTorch Adam step on one variable."""
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        if self.l2:
            gradient = ops.add(gradient, ops.multiply(ops.cast(self.l2, dtype), variable))
        step = ops.cast(self.iterations + 1, dtype)
        bias1 = 1 - ops.power(ops.cast(self.beta_1, dtype), step)
        bias2 = 1 - ops.power(ops.cast(self.beta_2, dtype), step)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        denom = ops.add(ops.divide(ops.sqrt(v), ops.sqrt(bias2)), self.epsilon)
        self.assign_sub(variable, ops.divide(ops.multiply(m, lr / bias1), denom))

    def get_config(self) -> dict:
        """Config for `keras.saving` round trips."""
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon, l2=self.l2)
        return config
