"""Optimisation: VICReg's LARS optimizer and its warmup + cosine learning-rate schedule."""

from mssl_tf.optim.lars import LARS
from mssl_tf.optim.schedules import WarmupCosine, scaled_learning_rate

__all__ = ["LARS", "WarmupCosine", "scaled_learning_rate"]
