"""Small synthetic TFRecord datasets (tones with learnable tags) for smoke runs and tests.

Each track is a sum of a few harmonic tones whose fundamental is chosen by its tag, plus a little
noise, so a probe on a working encoder can learn the tags. Written in the exact format that
`mssl-prepare` writes (shards + manifest.json), so every reader is exercised for real.
"""

from __future__ import annotations

import datetime
import hashlib
import os

import numpy as np
import tensorflow as tf

from mssl_tf import fileio
from mssl_tf.data import features

DEFAULT_TAGS = ("low", "mid", "high", "pulse")
_FUNDAMENTALS = {"low": 110.0, "mid": 440.0, "high": 1760.0}


def synth_track(rng: np.random.Generator, tags: np.ndarray, num_samples: int,
                sample_rate: int) -> np.ndarray:
    """One float32 track in [-1, 1] whose content depends on its multi-hot `tags`."""
    t = np.arange(num_samples) / sample_rate
    x = 0.01 * rng.standard_normal(num_samples)
    for i, name in enumerate(DEFAULT_TAGS[:3]):
        if tags[i]:
            f0 = _FUNDAMENTALS[name] * rng.uniform(0.97, 1.03)
            for h in range(1, 4):
                x += 0.2 / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 2 * np.pi))
    if tags[3]:  # amplitude pulses at ~4 Hz
        x *= 0.5 + 0.5 * (np.sin(2 * np.pi * 4.0 * t) > 0)
    return (x / max(1.0, np.abs(x).max() / 0.9)).astype(np.float32)


def write_synthetic_dataset(out_dir: str, *, num_tracks: dict[str, int] | None = None,
                            seconds: float = 3.0, sample_rate: int = features.SAMPLE_RATE,
                            shards_per_split: int = 2, seed: int = 0,
                            dataset: str = "synthetic") -> dict:
    """Writes shards and manifest.json of a small multi-label dataset.

    Args:
      out_dir: output folder (created).
      num_tracks: tracks per split; default {"train": 32, "valid": 8, "test": 8}.
      seconds: length of every track.
      sample_rate: sample rate written into the records.
      shards_per_split: shards per split.
      seed: random seed (the same seed gives byte-identical shards).
      dataset: dataset name used in shard names and manifest.

    Returns:
      The manifest dict (also written to out_dir/manifest.json).
    """
    num_tracks = num_tracks or {"train": 32, "valid": 8, "test": 8}
    rng = np.random.default_rng(seed)
    tf.io.gfile.makedirs(out_dir)
    n = int(seconds * sample_rate)
    manifest = {"dataset": dataset, "schema_version": features.SCHEMA_VERSION,
                "sample_rate": sample_rate, "multi_label": True, "tag_names": list(DEFAULT_TAGS),
                "num_labels": len(DEFAULT_TAGS), "splits": {}, "skipped": [], "flagged": [],
                "clipped_samples": 0, "command": "mssl_tf.data.synthetic.write_synthetic_dataset",
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    for split, count in num_tracks.items():
        records = []
        for i in range(count):
            tags = (rng.random(len(DEFAULT_TAGS)) < 0.5).astype(np.float32)
            audio, _ = features.float_to_int16(synth_track(rng, tags, n, sample_rate))
            records.append(features.serialize_example(
                audio, track_id=f"{split}-{i:04d}", split=split, labels=tags,
                sample_rate=sample_rate))
        shards = []
        for s in range(shards_per_split):
            name = features.shard_name(dataset, split, s, shards_per_split)
            part = records[s::shards_per_split]
            with tf.io.TFRecordWriter(os.path.join(out_dir, name)) as w:
                for r in part:
                    w.write(r)
            with open(os.path.join(out_dir, name), "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            shards.append({"file": name, "num_records": len(part), "sha256": digest})
        manifest["splits"][split] = {"num_tracks": count, "shards": shards}
    fileio.write_json(os.path.join(out_dir, features.MANIFEST_NAME), manifest)
    return manifest
