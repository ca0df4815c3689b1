"""mssl_tf: self-supervised music representation learning (VICReg, CLMR) in Keras 3.

Subpackages load on first use (`mssl_tf.models`, `mssl_tf.train`, ...), so importing the package,
`mssl_tf.fileio` or `mssl_tf.constants` costs neither TensorFlow nor Keras: the conversion
workers and every command's `--help` stay fast. `mssl_tf.gin_utils.register_configurables()`
imports every module that registers gin configurables; `gin_utils.parse` calls it.

The Keras-only core (models, losses, augment, optim) runs on any Keras backend without
TensorFlow; data, distribute, train, eval and export need TensorFlow.
"""

from __future__ import annotations

import importlib
import importlib.util

from mssl_tf.version import __version__

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None

_SUBMODULES = frozenset({
    "augment", "cli", "configurables", "constants", "data", "demo", "distribute", "embed", "eval",
    "export", "fileio", "gin_utils", "losses", "models", "optim", "rundir", "train", "version",
})


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"mssl_tf.{name}")
    raise AttributeError(f"module 'mssl_tf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})


__all__ = ["HAS_TENSORFLOW", "__version__"]
