"""Shared set-up of the evaluation tests: makes `from tests.eval import helpers` work."""

import os
import sys

import pytest

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory):
    """Synthetic tones-with-tags shards (learnable labels), 1 s tracks at 22,050 Hz."""
    from mssl_tf.data.synthetic import write_synthetic_dataset
    out = str(tmp_path_factory.mktemp("synthetic"))
    write_synthetic_dataset(out, num_tracks={"train": 48, "valid": 16, "test": 24}, seconds=1.0)
    return out
