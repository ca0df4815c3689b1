"""TFRecord schema and tf.data pipelines (TensorFlow side).

Modules load on first use: `mssl_tf.data.features` (the record schema, all a writer such as
`mssl-prepare` needs) does not import the pipelines, and the names below (`two_view_dataset`,
...) import `pipeline` when first touched.
"""

from __future__ import annotations

import importlib

_MODULES = frozenset({"crops", "features", "pipeline", "synthetic"})
_PIPELINE_NAMES = frozenset({"chunk_dataset", "list_shards", "single_crop_dataset",
                             "steps_per_epoch", "track_dataset", "two_view_dataset"})


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"mssl_tf.data.{name}")
    if name in _PIPELINE_NAMES:
        return getattr(importlib.import_module("mssl_tf.data.pipeline"), name)
    raise AttributeError(f"module 'mssl_tf.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES, *_PIPELINE_NAMES})


__all__ = sorted(_PIPELINE_NAMES)
