"""Shared set-up of the data_tools tests: makes `from tests.data_tools import fixtures` work."""

import os
import sys

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
