"""Read-side speed: two-view crop pairs per second per CPU core from warm shards.

    python bench/pipeline.py [--cores 1] [--tracks 96] [--batch 64] [--batches 40] [--json F]

Writes `--tracks` 30 s tracks (22,050 Hz int16, like converted FMA/GTZAN clips) as shards once,
warms the page cache, then times `mssl_tf.data.pipeline.two_view_dataset` with the process pinned
to `--cores` cores (set before TensorFlow starts, so its thread pools match):
  * uncached: every pair parses a whole 30 s record (1.3 MB) and cuts two 59,049-sample crops;
  * cached: `cache=True`, timed after the first pass has filled the in-memory cache.
Targets (issue): >= 1,200 pairs/s per core uncached and >= 7,000 cached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def time_pairs(ds, batch: int, warmup: int, batches: int) -> float:
    """Pairs per second over `batches` batches after `warmup` batches."""
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        out = next(it)
    out["view_a"].numpy()  # make sure the last batch is materialised
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=1, help="pin to this many cores")
    parser.add_argument("--tracks", type=int, default=96)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))[: args.cores]
    os.sched_setaffinity(0, set(cores))  # before TensorFlow sizes its thread pools
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from mssl_tf.data import pipeline, synthetic

    results = {"cores": len(cores), "tracks": args.tracks, "seconds_per_track": 30,
               "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        synthetic.write_synthetic_dataset(tmp, num_tracks={"train": args.tracks}, seconds=30.0,
                                          shards_per_split=4, dataset="bench")
        for path in tf.io.gfile.glob(os.path.join(tmp, "*.tfrecord")):  # warm the page cache
            with open(path, "rb") as f:
                while f.read(1 << 24):
                    pass
        for cached in (False, True):
            ds = pipeline.two_view_dataset(tmp, args.batch, cache=cached, seed=0,
                                           shuffle_buffer=args.tracks)
            warmup = (args.tracks // args.batch + 2) if cached else 3  # fill the cache first
            rate = time_pairs(ds, args.batch, warmup, args.batches)
            key = "cached" if cached else "uncached"
            results[key] = {"pairs_per_s": round(rate),
                            "pairs_per_s_per_core": round(rate / len(cores))}
            print(f"{key}: {rate:.0f} pairs/s on {len(cores)} core(s) = "
                  f"{rate / len(cores):.0f} pairs/s/core")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
