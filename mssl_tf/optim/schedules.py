"""Per-step learning-rate schedule of VICReg: batch-scaled peak, linear warmup, cosine to 0.001x.

facebookresearch/vicreg `adjust_learning_rate` (called every step):

    peak = base_lr * batch_size / 256
    step < warmup_steps:  lr = peak * step / warmup_steps
    otherwise:            q = 0.5 * (1 + cos(pi * (step - warmup) / (max_steps - warmup)))
                          lr = peak * q + end_factor * peak * (1 - q)

Keras evaluates the schedule at the optimizer's iteration count before incrementing it, so the
n-th update (n = 0, 1, ...) uses lr(n), exactly as the reference sets lr(step) before
`optimizer.step()`; in particular the very first update has lr = 0 when there is a warmup.
Here `batch_size` must be the *global* batch (all replicas), and the schedule holds the end value
after the last step instead of letting the cosine rise again.

This is Keras' `CosineDecay(initial_learning_rate=0, warmup_target=peak, warmup_steps=warmup,
decay_steps=total - warmup, alpha=end_factor)`, whose decay is `peak * ((1 - alpha) * q + alpha)`
= the formula above (tests/optim check the two against each other); `WarmupCosine` only adds the
batch scaling and epoch-based arguments.
"""

from __future__ import annotations

import keras


def scaled_learning_rate(base_lr: float, global_batch: int, batch_reference: int = 256) -> float:
    """Linear learning-rate scaling rule: base_lr * global_batch / batch_reference.

    Args:
      base_lr: learning rate quoted for a batch of `batch_reference` (VICReg: 0.2, thesis: 0.2).
      global_batch: batch size summed over all replicas.
      batch_reference: the batch the base rate refers to (256 in VICReg, SimCLR, CLMR).

    Returns:
      The peak learning rate as a Python float.

    Raises:
      ValueError: for a negative base_lr or non-positive batch sizes.
    """
    if base_lr < 0:
        raise ValueError(f"base_lr must be >= 0, got {base_lr}")
    if global_batch <= 0 or batch_reference <= 0:
        raise ValueError(f"global_batch ({global_batch}) and batch_reference ({batch_reference}) "
                         "must be positive")
    return float(base_lr) * float(global_batch) / float(batch_reference)


@keras.saving.register_keras_serializable(package="mssl_tf")
class WarmupCosine(keras.optimizers.schedules.CosineDecay):
    """Linear warmup from 0 to the batch-scaled peak, then cosine decay to `end_factor` x peak.

    Args:
      base_lr: learning rate for a batch of `batch_reference`.
      global_batch: batch size summed over all replicas (used for the linear scaling rule).
      steps_per_epoch: optimizer steps per epoch.
      total_epochs: length of the schedule; the end value is reached at
        total_epochs * steps_per_epoch and held afterwards.
      warmup_epochs: epochs of linear warmup from 0 (VICReg: 10). May be 0.
      end_factor: final learning rate as a fraction of the peak (VICReg: 0.001).
      batch_reference: batch size `base_lr` refers to.

    Raises:
      ValueError: if the warmup is not shorter than the whole schedule, or an argument is out of
        range (non-positive steps/epochs, negative warmup or end factor).
    """

    def __init__(self, base_lr: float, global_batch: int, steps_per_epoch: int,
                 total_epochs: float, warmup_epochs: float = 10, end_factor: float = 0.001,
                 batch_reference: int = 256):
        if steps_per_epoch <= 0:
            raise ValueError(f"WarmupCosine: steps_per_epoch must be > 0, got {steps_per_epoch}")
        if total_epochs <= 0:
            raise ValueError(f"WarmupCosine: total_epochs must be > 0, got {total_epochs}")
        if warmup_epochs < 0:
            raise ValueError(f"WarmupCosine: warmup_epochs must be >= 0, got {warmup_epochs}")
        if warmup_epochs >= total_epochs:
            raise ValueError(f"WarmupCosine: warmup_epochs={warmup_epochs} must be smaller than "
                             f"total_epochs={total_epochs}; lower the warmup or train longer")
        if end_factor < 0:
            raise ValueError(f"WarmupCosine: end_factor must be >= 0, got {end_factor}")
        self.base_lr = float(base_lr)
        self.global_batch = int(global_batch)
        self.steps_per_epoch = int(steps_per_epoch)
        self.total_epochs = total_epochs
        self.warmup_epochs = warmup_epochs
        self.end_factor = float(end_factor)
        self.batch_reference = int(batch_reference)
        self.peak_lr = scaled_learning_rate(base_lr, global_batch, batch_reference)
        self.warmup_steps_f = float(warmup_epochs) * self.steps_per_epoch
        self.total_steps = float(total_epochs) * self.steps_per_epoch
        super().__init__(initial_learning_rate=0.0,
                         decay_steps=self.total_steps - self.warmup_steps_f,
                         alpha=self.end_factor, warmup_target=self.peak_lr,
                         warmup_steps=self.warmup_steps_f, name="WarmupCosine")

    def get_config(self) -> dict:
        """Returns the constructor arguments."""
        return {"base_lr": self.base_lr, "global_batch": self.global_batch,
                "steps_per_epoch": self.steps_per_epoch, "total_epochs": self.total_epochs,
                "warmup_epochs": self.warmup_epochs, "end_factor": self.end_factor,
                "batch_reference": self.batch_reference}
