"""bench/monitor.py: the monitor's rank and the D x D baseline it is timed against."""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import monitor  # noqa: E402


def test_ranks_match_the_singular_value_definition():
    out = monitor.main(["--backend", "tensorflow", "--batch", "8", "--dim", "24", "--calls", "1"])
    h = np.random.default_rng(0).standard_normal((8, 24)).astype("float32")  # as the script draws
    s = np.linalg.svd(h - h.mean(axis=0), compute_uv=False)
    p = s / s.sum()
    expected = float(np.exp(-np.sum(p * np.log(p + 1e-7))))
    assert abs(out["rank"]["mssl_tf"] - expected) < 1e-3 * expected
    # The D x D baseline decomposes a rank-deficient matrix: its 16 zero eigenvalues come out as
    # rounding noise, which adds a little entropy. The B x B form has no such zeros.
    assert abs(out["rank"]["gram_dxd"] - expected) < 0.01 * expected
    assert out["ratio"] > 0 and set(out["ms_per_call"]) == {"gram_dxd", "mssl_tf"}
