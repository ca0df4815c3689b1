"""tf.data input pipelines read from sharded TFRecords (local paths or gs://).

Three readers over the same shards: two-view crop pairs for pre-training, one random crop per
track for probe training, and every test chunk of every track for track-level evaluation. Crops
only: augmentation runs later, on the accelerator, inside the training step.
"""

from __future__ import annotations

import os

import tensorflow as tf

from mssl_tf import fileio
from mssl_tf.data import crops, features

AUTOTUNE = tf.data.AUTOTUNE


def list_shards(data_dir: str, split: str) -> list[str]:
    """Sorted shard paths of one split.

    Raises:
      FileNotFoundError: naming the folder and pattern when no shard matches.
    """
    if split not in features.SPLITS:
        raise ValueError(f"split must be one of {features.SPLITS}, got {split!r}")
    pattern = os.path.join(data_dir, f"*-{split}-?????-of-?????.tfrecord")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f"No {split!r} shards in {data_dir!r} (looked for {os.path.basename(pattern)}). "
            "Check --data_dir, or write shards with `mssl-prepare`.")
    return files


def split_size(data_dir: str, split: str) -> int | None:
    """Number of tracks of a split from the manifest, or None when there is no manifest."""
    try:
        manifest = fileio.read_manifest(data_dir)
    except FileNotFoundError:
        return None
    return int(manifest.get("splits", {}).get(split, {}).get("num_tracks", 0))


def _check_not_empty(data_dir: str, split: str, files: list[str], at_least: int) -> None:
    """Fails early and clearly instead of letting fit() hang or stop on an empty dataset."""
    count = split_size(data_dir, split)
    if count is None:  # no manifest: look at the first records instead
        count = 0
        for _ in tf.data.TFRecordDataset(files).take(at_least):
            count += 1
    if count == 0:
        raise ValueError(f"The {split!r} split in {data_dir!r} holds no tracks ({len(files)} "
                         "shard(s) are empty). Re-run `mssl-prepare` and check its manifest's "
                         "'skipped' list.")
    if count < at_least:
        raise ValueError(f"The {split!r} split in {data_dir!r} holds {count} tracks, fewer than "
                         f"one batch of {at_least}; lower the batch size.")


def _record_dataset(data_dir: str, split: str, *, shuffle_files: bool, seed: int | None,
                    input_context: tf.distribute.InputContext | None
                    ) -> tuple[tf.data.Dataset, bool]:
    """Serialized records of one split, and whether the stream must keep its order."""
    files = list_shards(data_dir, split)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # Parallel reads may return records out of order (faster) unless a seed asks for a
    # reproducible stream, or the files are read in order (evaluation).
    deterministic = seed is not None or not shuffle_files
    # Parallel, buffered reads hide the latency of remote storage (gs://). On local disk they
    # cost more than they save: thread hand-offs (measured 980 vs 1,230 crop pairs/s on one
    # core), and the read buffer adds a copy of every 1.3 MB record on its way from the page
    # cache (buffer_size=0 reads a record straight into its string).
    remote = "://" in data_dir
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, buffer_size=None if remote else 0),
        cycle_length=min(len(files), 16), num_parallel_calls=AUTOTUNE if remote else None,
        deterministic=deterministic if remote else None)
    return ds, deterministic


def track_dataset(data_dir: str, split: str, *, shuffle_files: bool = False,
                  seed: int | None = None, decode_float: bool = True,
                  min_samples: int = 0, input_context: tf.distribute.InputContext | None = None,
                  ) -> tf.data.Dataset:
    """Parsed tracks of one split (dicts as in `features.parse_example`).

    Args:
      data_dir: folder holding the shards and manifest (local or gs://).
      split: "train", "valid" or "test".
      shuffle_files: shuffle the shard order.
      seed: seed of the shard shuffle.
      decode_float: float32 audio; False keeps int16 (for caching).
      min_samples: drop tracks shorter than this (they cannot be cropped).
      input_context: shard by input pipeline when each host reads its own part (TPU pods).
    """
    ds, deterministic = _record_dataset(data_dir, split, shuffle_files=shuffle_files, seed=seed,
                                        input_context=input_context)
    ds = ds.map(lambda s: features.parse_example(s, decode_float=decode_float),
                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if min_samples:
        ds = ds.filter(lambda t: t["num_samples"] >= min_samples)
    return ds


def _with_seeds(ds: tf.data.Dataset, seed: int | None) -> tf.data.Dataset:
    """Pairs every element with its own [2] int64 seed for stateless crops."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds)


def two_view_dataset(data_dir: str, global_batch: int, *, split: str = "train",
                     crop_len: int = features.CROP_LEN, shuffle_buffer: int = 1000,
                     cache: bool = False, crops_per_track: int = 1, seed: int | None = None,
                     repeat: bool = True) -> tf.data.Dataset:
    """Two-view pre-training batches: `{"view_a": (B, crop_len), "view_b": (B, crop_len)}`.

    Each view is an independent random crop of the same track (anchors pitfall 5); the two
    views are augmented independently later, on the accelerator.

    Args:
      data_dir: shard folder.
      global_batch: batch size over all replicas (Keras splits it across replicas).
      split: which split to read.
      crop_len: crop length in samples.
      shuffle_buffer: tracks held in the shuffle buffer.
      cache: keep the tracks (their int16 bytes) in memory after the first epoch (fits FMA-medium's
        ~33 GB only on large hosts; GTZAN/MTAT easily).
      crops_per_track: crop pairs drawn from each track read (cheaper reads, correlated batch).
      seed: seed of shuffling and crops (None: nondeterministic).
      repeat: repeat forever (fit() then needs steps_per_epoch).
    """
    files = list_shards(data_dir, split)
    _check_not_empty(data_dir, split, files, global_batch)
    ds, deterministic = _record_dataset(data_dir, split, shuffle_files=True, seed=seed,
                                        input_context=None)
    # Tracks stay int16 bytes (also in the cache): the crops are cut before decoding.
    ds = ds.map(features.parse_pcm_bytes, num_parallel_calls=AUTOTUNE,
                deterministic=deterministic)
    ds = ds.filter(lambda pcm, num_samples: num_samples >= crop_len)
    ds = ds.map(lambda pcm, num_samples: pcm)
    if cache:
        ds = ds.cache()
    if repeat:
        ds = ds.repeat()
    if shuffle_buffer:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if crops_per_track > 1:
        ds = ds.flat_map(lambda a: tf.data.Dataset.from_tensors(a).repeat(crops_per_track))

    def _pair(audio, seed_pair):
        a, b = crops.two_view_crops(audio, crop_len, seed_pair)
        return {"view_a": features.pcm_to_float(a), "view_b": features.pcm_to_float(b)}

    ds = _with_seeds(ds, seed).map(_pair, num_parallel_calls=AUTOTUNE)
    return ds.batch(global_batch, drop_remainder=True).prefetch(AUTOTUNE)


def steps_per_epoch(data_dir: str, global_batch: int, *, split: str = "train",
                    crops_per_track: int = 1) -> int:
    """Optimizer steps in one pass over the split's tracks (partial batches dropped)."""
    count = split_size(data_dir, split)
    if count is None:
        count = sum(1 for _ in tf.data.TFRecordDataset(list_shards(data_dir, split)))
    steps = count * crops_per_track // global_batch
    if steps < 1:
        raise ValueError(f"The {split!r} split in {data_dir!r} holds {count} tracks, fewer than "
                         f"one batch of {global_batch}; lower the batch size.")
    return steps


def single_crop_dataset(data_dir: str, split: str, batch_size: int, *,
                        crop_len: int = features.CROP_LEN, seed: int | None = None
                        ) -> tf.data.Dataset:
    """One random crop per track, in file order, one pass, last partial batch kept.

    This is what CLMR's probe caches features of (anchors 1.8): one fixed crop per track.
    Yields `{"audio": (b, crop_len), "labels": (b, L), "track_id": (b,)}`.
    """
    ds = track_dataset(data_dir, split, decode_float=False, min_samples=crop_len)

    def _crop(track, seed_pair):
        crop = crops.random_crop(track["audio"], crop_len, seed_pair)
        return {"audio": features.pcm_to_float(crop), "labels": track["labels"],
                "track_id": track["track_id"]}

    ds = _with_seeds(ds, seed).map(_crop, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def chunk_dataset(data_dir: str, split: str = "test", *, crop_len: int = features.CROP_LEN
                  ) -> tf.data.Dataset:
    """Every track with its test chunks, in file order (CLMR's test protocol).

    Yields `{"chunks": (n, crop_len), "num_chunks": n, "labels": (L,), "track_id": ()}` per
    track; n = ceil(len / crop_len) - 1 and may be 0 for short tracks, which the caller skips
    and reports.
    """
    ds = track_dataset(data_dir, split)

    def _chunks(track):
        chunks = crops.chunk_track(track["audio"], crop_len)
        return {"chunks": chunks, "num_chunks": tf.shape(chunks)[0], "labels": track["labels"],
                "track_id": track["track_id"]}

    return ds.map(_chunks, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
