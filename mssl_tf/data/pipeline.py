"""tf.data input pipelines read from sharded TFRecords (local paths or gs://).

Three readers over the same shards: two-view crop pairs for pre-training, one random crop per
track for probe training, and every test chunk of every track for track-level evaluation. Crops
only: augmentation runs later, on the accelerator, inside the training step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

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
        # A relative folder (datasets/*.gin hold data/<name>) is read from the working directory.
        where = "" if "://" in data_dir or os.path.isabs(data_dir) else \
            f" (= {os.path.abspath(data_dir)})"
        raise FileNotFoundError(
            f"No {split!r} shards in {data_dir!r}{where} (looked for "
            f"{os.path.basename(pattern)}). Check the data folder (--data_dir, or "
            "pretrain.data_dir in gin), or write shards there with `mssl-prepare`.")
    return files


def _as_splits(split: str | None, splits: Sequence[str] | None) -> tuple[str, ...]:
    """The splits to read from the old `split=` and the new `splits=` arguments."""
    if splits is None:
        return (split or "train",)
    if split is not None:
        raise ValueError(f"pass either split={split!r} or splits={tuple(splits)!r}, not both")
    if isinstance(splits, str):  # splits="train" would read the splits "t", "r", ...
        splits = (splits,)
    splits = tuple(dict.fromkeys(splits))
    if not splits:
        raise ValueError("splits is empty: name at least one of " + ", ".join(features.SPLITS))
    for s in splits:
        if s not in features.SPLITS:
            raise ValueError(f"split must be one of {features.SPLITS}, got {s!r}")
    return splits


def _manifest_counts(data_dir: str, splits: Sequence[str]) -> dict[str, int] | None:
    """Tracks per split from the manifest (None without one); refuses missing or empty splits.

    Raises:
      ValueError: naming the manifest, the split and the splits that do hold tracks.
    """
    try:
        manifest = fileio.read_manifest(data_dir)
    except FileNotFoundError:
        return None
    path = fileio.join(data_dir, features.MANIFEST_NAME)
    entries = manifest.get("splits", {})
    held = {s: int(e.get("num_tracks", 0)) for s, e in entries.items()}
    have = ", ".join(f"{s} ({n} tracks)" for s, n in held.items() if n) or "none"
    counts = {}
    for split in splits:
        if split not in held:
            raise ValueError(f"{path} has no {split!r} split; the splits with tracks are: "
                             f"{have}. Choose those splits, or convert the data again with "
                             "`mssl-prepare` so that it has this one.")
        if held[split] == 0:
            raise ValueError(f"The {split!r} split of {path} is empty: it holds no tracks. "
                             f"The splits with tracks are: {have}. Read those splits instead, "
                             "or check the manifest's 'skipped' list and re-run `mssl-prepare`.")
        counts[split] = held[split]
    return counts


def _shard_records(data_dir: str) -> dict[str, int]:
    """Records per shard file name, from the manifest ({} without one)."""
    try:
        manifest = fileio.read_manifest(data_dir)
    except FileNotFoundError:
        return {}
    return {shard["file"]: int(shard["num_records"])
            for entry in manifest.get("splits", {}).values()
            for shard in entry.get("shards", [])}


def split_files(data_dir: str, splits: Sequence[str]) -> list[str]:
    """Sorted shard paths of several splits (the same order on every host)."""
    return sorted(f for split in splits for f in list_shards(data_dir, split))


def pipeline_files(files: Sequence[str],
                   input_context: tf.distribute.InputContext | None) -> list[str]:
    """The shard files one input pipeline reads: `sorted(files)[id::n]`.

    Over all pipelines the parts are disjoint and complete, and their sizes differ by at most
    one file. Each host of a multi-worker or TPU-pod run reads only its own part.

    Args:
      files: every shard file of the data to read.
      input_context: the pipeline's `tf.distribute.InputContext`, or None (one pipeline).

    Raises:
      ValueError: fewer files than input pipelines (some hosts would get no data), with the
        `mssl-prepare` options that write more, smaller shards.
    """
    files = sorted(files)
    if input_context is None or input_context.num_input_pipelines <= 1:
        return files
    n, i = input_context.num_input_pipelines, input_context.input_pipeline_id
    if len(files) < n:
        folder = fileio.dirname(files[0]) if files else "the data folder"
        raise ValueError(
            f"{len(files)} shard file(s) in {folder} for {n} input pipelines (one per host): "
            "every pipeline needs at least one file of its own. Convert the data again with "
            f"more, smaller shards, e.g. `mssl-prepare ... --out DIR --shard_size_mb M` with M "
            f"below (total MB / {n}) or `--tracks_per_shard T` with T below (tracks / {n}).")
    return files[i::n]


def _count_records(files: Sequence[str], data_dir: str, at_most: int) -> int:
    """Tracks in `files`: from the manifest's per-shard counts, else by reading (up to at_most)."""
    per_shard = _shard_records(data_dir)
    names = [os.path.basename(f) for f in files]
    if per_shard and all(n in per_shard for n in names):
        return sum(per_shard[n] for n in names)
    return sum(1 for _ in tf.data.TFRecordDataset(list(files)).take(at_most))


def _check_not_empty(data_dir: str, splits: Sequence[str], files: list[str], at_least: int,
                     pipeline: str = "") -> None:
    """Fails early and clearly instead of letting fit() hang or stop on an empty dataset."""
    what = "+".join(splits)
    count = _count_records(files, data_dir, at_least)
    if count == 0:
        raise ValueError(f"The {what!r} data in {data_dir!r}{pipeline} holds no tracks "
                         f"({len(files)} shard(s) are empty). Re-run `mssl-prepare` and check "
                         "its manifest's 'skipped' list.")
    if count < at_least:
        raise ValueError(f"The {what!r} data in {data_dir!r}{pipeline} holds {count} tracks, "
                         f"fewer than one batch of {at_least}; lower the batch size, or read "
                         "more splits.")


def _record_dataset(files: Sequence[str], *, shuffle_files: bool, seed: int | None
                    ) -> tuple[tf.data.Dataset, bool]:
    """Serialized records of the given shard files, and whether the stream must keep its order."""
    files = list(files)
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # Parallel reads may return records out of order (faster) unless a seed asks for a
    # reproducible stream, or the files are read in order (evaluation).
    deterministic = seed is not None or not shuffle_files
    # Parallel, buffered reads hide the latency of remote storage (gs://). On local disk they
    # cost more than they save: thread hand-offs (measured 980 vs 1,230 crop pairs/s on one
    # core), and the read buffer adds a copy of every 1.3 MB record on its way from the page
    # cache (buffer_size=0 reads a record straight into its string).
    remote = fileio.is_remote(files[0])
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
      input_context: read only this input pipeline's shard files (`pipeline_files`).
    """
    files = pipeline_files(list_shards(data_dir, split), input_context)
    ds, deterministic = _record_dataset(files, shuffle_files=shuffle_files, seed=seed)
    ds = ds.map(lambda s: features.parse_example(s, decode_float=decode_float),
                num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    if min_samples:
        ds = ds.filter(lambda t: t["num_samples"] >= min_samples)
    return ds


# Corrupt input: name the shard and the fix instead of TensorFlow's "corrupted record at N".

class CorruptDataError(ValueError):
    """A shard of the input data is damaged; the message names it and the fix."""


def find_bad_shards(data_dir: str, splits: Sequence[str] | None = None) -> list[str]:
    """Checks the shard files of `splits` (default: every split) and says what is wrong.

    With a manifest, each listed shard's size and sha256 are compared with it (cheap, and it
    also finds damage inside the audio bytes that no record check sees); without one, every
    record of every shard is read back and its checksum checked.

    Returns:
      One "path: what is wrong" line per damaged or missing shard (empty when all are fine).
    """
    splits = tuple(features.SPLITS if splits is None else _as_splits(None, splits))
    try:
        manifest = fileio.read_manifest(data_dir)
    except (FileNotFoundError, ValueError):
        manifest = None
    problems = []
    if manifest is not None:
        for split in splits:
            for shard in manifest.get("splits", {}).get(split, {}).get("shards", []):
                path = fileio.join(data_dir, shard["file"])
                problem = _shard_problem(path, shard)
                if problem:
                    problems.append(f"{path}: {problem}")
        return problems
    for split in splits:
        try:
            files = list_shards(data_dir, split)
        except FileNotFoundError:
            continue
        for path in files:
            problem = _record_problem(path)
            if problem:
                problems.append(f"{path}: {problem}")
    return problems


def _shard_problem(path: str, shard: dict) -> str | None:
    if not fileio.exists(path):
        return "listed in the manifest but missing"
    size = fileio.getsize(path)
    if "bytes" in shard and size != shard["bytes"]:
        return f"{size} bytes, the manifest says {shard['bytes']} (truncated or replaced)"
    if "sha256" in shard and fileio.sha256_file(path) != shard["sha256"]:
        return "sha256 differs from the manifest (the file is damaged or was changed)"
    return _record_problem(path) if "sha256" not in shard else None


def _record_problem(path: str) -> str | None:
    try:
        for _ in tf.data.TFRecordDataset(path):
            pass
    except tf.errors.DataLossError as error:
        return f"corrupt TFRecord ({error.message.split('[Op:')[0].split('}}')[-1].strip()})"
    return None


def explain_data_error(error: BaseException, data_dir: str,
                       splits: Sequence[str] | None = None) -> str:
    """A message for a read error of the input (e.g. `tf.errors.DataLossError`).

    TensorFlow's own text ("corrupted record at 1236680") names no file, so the shards of
    `splits` are checked (`find_bad_shards`) to name the damaged ones.

    Args:
      error: the exception raised while reading the data.
      data_dir: the shard folder being read.
      splits: the splits being read (default: every split).

    Returns:
      A message naming the damaged shard(s) (or saying that none was found) and the fix:
      `mssl-prepare verify --out DATA_DIR`, then converting the data again.
    """
    detail = getattr(error, "message", None) or str(error)
    detail = detail.split("[Op:")[0].split("}}")[-1].strip() or type(error).__name__
    bad = find_bad_shards(data_dir, splits)
    fix = (f"Run `mssl-prepare verify --out {data_dir}` to check every shard, then rerun the "
           "mssl-prepare command that wrote it with `--overwrite` (or copy the damaged shards "
           "again from a good copy).")
    if not bad:
        return (f"Reading the data in {data_dir} failed ({detail}), but every shard matches its "
                f"manifest entry; the storage may have returned bad bytes. {fix}")
    shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
    return f"Damaged input data ({detail}): {shown}. {fix}"


@contextlib.contextmanager
def explain_data_errors(data_dir: str, splits: Sequence[str] | None = None) -> Iterator[None]:
    """Turns a read error of corrupt shards inside the block into a `CorruptDataError`.

    For the trainer: `with pipeline.explain_data_errors(data_dir, splits): model.fit(...)`.
    Only `tf.errors.DataLossError` (a record whose checksum or length is wrong) is translated;
    the original error stays attached as `__cause__`.
    """
    try:
        yield
    except tf.errors.DataLossError as error:
        raise CorruptDataError(explain_data_error(error, data_dir, splits)) from error


def _with_seeds(ds: tf.data.Dataset, seed: int | None) -> tf.data.Dataset:
    """Pairs every element with its own [2] int64 seed for stateless crops."""
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip(ds, seeds)


def two_view_dataset(data_dir: str, global_batch: int, *, split: str | None = None,
                     splits: Sequence[str] | None = None, crop_len: int = features.CROP_LEN,
                     shuffle_buffer: int = 1000, cache: bool = False, crops_per_track: int = 1,
                     seed: int | None = None, repeat: bool = True,
                     input_context: tf.distribute.InputContext | None = None
                     ) -> tf.data.Dataset:
    """Two-view pre-training batches: `{"view_a": (B, crop_len), "view_b": (B, crop_len)}`.

    Each view is an independent random crop of the same track (anchors pitfall 5); the two
    views are augmented independently later, on the accelerator.

    Args:
      data_dir: shard folder.
      global_batch: batch size over all replicas (Keras splits it across replicas).
      split: one split to read (the older spelling of `splits=(split,)`).
      splits: the splits to read together (default ("train",)); the thesis pre-trained on all
        three of GTZAN's.
      crop_len: crop length in samples.
      shuffle_buffer: tracks held in the shuffle buffer.
      cache: keep the tracks (their int16 bytes) in memory after the first epoch (fits FMA-medium's
        ~33 GB only on large hosts; GTZAN/MTAT easily).
      crops_per_track: crop pairs drawn from each track read (cheaper reads, correlated batch).
      seed: seed of shuffling and crops (None: nondeterministic).
      repeat: repeat forever (fit() then needs steps_per_epoch).
      input_context: for `strategy.distribute_datasets_from_function`: read only this input
        pipeline's shard files (`pipeline_files`) and batch
        `input_context.get_per_replica_batch_size(global_batch)`. Refused when there are fewer
        shard files than input pipelines.

    Raises:
      ValueError: a split missing from or empty in the manifest, fewer tracks than one batch,
        or fewer shard files than input pipelines (each message names the fix).
      FileNotFoundError: no shards of a split in `data_dir`.
    """
    _check_batch(global_batch)
    splits = _as_splits(split, splits)
    counts = _manifest_counts(data_dir, splits)
    files = pipeline_files(split_files(data_dir, splits), input_context)
    batch = global_batch
    where = ""
    if input_context is not None:
        batch = input_context.get_per_replica_batch_size(global_batch)
        if input_context.num_input_pipelines > 1:
            where = (f" (input pipeline {input_context.input_pipeline_id} of "
                     f"{input_context.num_input_pipelines}: {len(files)} shard file(s))")
            if seed is not None:  # the hosts' crop and shuffle streams must differ
                seed = seed * 1_000_003 + input_context.input_pipeline_id
    if counts is not None and not where:
        _check_count(data_dir, splits, sum(counts.values()), batch)
    else:
        _check_not_empty(data_dir, splits, files, batch, where)
    ds, deterministic = _record_dataset(files, shuffle_files=True, seed=seed)
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
    return ds.batch(batch, drop_remainder=True).prefetch(AUTOTUNE)


def _check_batch(global_batch: int) -> None:
    if isinstance(global_batch, bool) or not isinstance(global_batch, int) or global_batch < 1:
        raise ValueError(f"global_batch must be a positive number of pairs, got {global_batch!r}")


def _check_count(data_dir: str, splits: Sequence[str], count: int, global_batch: int,
                 crops_per_track: int = 1) -> None:
    """Refuses fewer tracks than one batch (the manifest already refused empty splits)."""
    if count * crops_per_track < global_batch:
        what = "+".join(splits)
        raise ValueError(f"The {what!r} data in {data_dir!r} holds {count} tracks, fewer than "
                         f"one batch of {global_batch}; lower the batch size, or read more "
                         "splits.")


def steps_per_epoch(data_dir: str, global_batch: int, *, split: str | None = None,
                    splits: Sequence[str] | None = None, crops_per_track: int = 1) -> int:
    """Optimizer steps in one pass over the tracks of the splits (partial batches dropped).

    Args:
      data_dir: shard folder.
      global_batch: pairs per step over all replicas and hosts.
      split: one split (the older spelling of `splits=(split,)`).
      splits: the splits read together (default ("train",)); their track counts are summed.
      crops_per_track: crop pairs drawn per track read.

    Raises:
      ValueError: a split missing from or empty in the manifest, or fewer tracks than a batch.
    """
    _check_batch(global_batch)
    splits = _as_splits(split, splits)
    counts = _manifest_counts(data_dir, splits)
    if counts is None:
        count = sum(1 for _ in tf.data.TFRecordDataset(split_files(data_dir, splits)))
        if count == 0:
            raise ValueError(f"The {'+'.join(splits)!r} data in {data_dir!r} holds no tracks. "
                             "Re-run `mssl-prepare` and check its manifest's 'skipped' list.")
    else:
        count = sum(counts.values())
    _check_count(data_dir, splits, count, global_batch, crops_per_track)
    return count * crops_per_track // global_batch


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
