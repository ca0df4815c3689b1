"""mssl_tf: self-supervised music representation learning (VICReg, CLMR) in Keras 3.

Importing the package registers every gin configurable. The keras-only core (models, losses,
augment, optim) imports on any Keras backend; the TensorFlow parts (data, distribute, train,
eval, export) are imported only when TensorFlow is installed, so the JAX-only GPU benchmark
machine can use the core without it.
"""

import importlib.util

__version__ = "0.1.0"

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None

# Keras-only core: importable on any backend, with or without TensorFlow.
from mssl_tf import augment, configurables, losses, models, optim  # noqa: E402,F401

if HAS_TENSORFLOW:
    # TensorFlow side: input pipeline, strategies, training entry points, evaluation, export.
    from mssl_tf import data, distribute, eval, export, train  # noqa: E402,F401
