"""Fixtures of the export tests: a tiny pre-training run directory and a real probe of it."""

import os
import sys

import pytest

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if _ROOT not in sys.path:  # makes `from tests.export import helpers` work
    sys.path.insert(0, _ROOT)

from tests.export.helpers import make_probed_run  # noqa: E402


@pytest.fixture(scope="session")
def probed_run(tmp_path_factory):
    """(run_dir, probe_dir, shards): a tiny run whose latest snapshot was probed for real."""
    return make_probed_run(tmp_path_factory.mktemp("probed_run"))
