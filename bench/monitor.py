"""Collapse-monitor cost: `effective_rank` against the same rank from the D x D Gram matrix.

    python bench/monitor.py [--backend jax|tensorflow] [--batch 256] [--dim 512] [--calls 10]

`SSLModel` logs the effective rank of the encoder output every training step, which needs the
eigenvalues of a Gram matrix. The baseline decomposes h^T h (D x D) as written in the textbook
definition; `mssl_tf.models.effective_rank` decomposes h h^T (B x B) when the batch is narrower
than the features (same nonzero eigenvalues). Both are compiled (`jax.jit`, or `tf.function`
with XLA as on a TPU), alternate for 3 rounds in one process, and print ms per call and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def gram_dxd_rank(h, eps: float = 1e-7):
    """The baseline: effective rank from the eigenvalues of the D x D Gram matrix."""
    from keras import ops
    h = ops.cast(h, "float32")
    h = h - ops.mean(h, axis=0, keepdims=True)
    eig = ops.eigh(ops.matmul(ops.transpose(h), h))[0]
    s = ops.sqrt(ops.maximum(eig, 0.0))
    p = s / (ops.sum(s) + eps)
    return ops.exp(-ops.sum(p * ops.log(p + eps)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="jax", choices=("jax", "tensorflow"))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    import numpy as np

    from bench import common
    from mssl_tf.models import effective_rank

    h = np.random.default_rng(0).standard_normal((args.batch, args.dim)).astype("float32")
    if args.backend == "jax":
        import jax
        fns = {"gram_dxd": jax.jit(gram_dxd_rank), "mssl_tf": jax.jit(effective_rank)}
    else:
        import tensorflow as tf
        fns = {"gram_dxd": tf.function(gram_dxd_rank, jit_compile=True),
               "mssl_tf": tf.function(effective_rank, jit_compile=True)}
    values = {name: float(f(h)) for name, f in fns.items()}  # compile
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(3):
        for name, f in fns.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                float(f(h))
            times[name].append(1000.0 * (time.perf_counter() - start) / args.calls)
    ms = {name: round(sorted(t)[1], 2) for name, t in times.items()}
    result = {"backend": args.backend, "batch": args.batch, "dim": args.dim,
              "device": common.keras_device_description(args.backend), "ms_per_call": ms,
              "ratio": round(ms["gram_dxd"] / ms["mssl_tf"], 2), "rank": values}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
