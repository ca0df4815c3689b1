"""Conversion stages: order tracks, plan shards, decode in parallel, write shards atomically.

The stages are plain functions (the Beam pipeline reuses them):
  `order_tracks` -> `plan_shards` -> `audio_io.process_track` (workers) -> `encode_record` ->
  `write_shard` (temporary name, renamed when complete) -> `manifest.build_manifest`.

Shard membership is fixed before any audio is decoded (from the track list and the expected
durations), so the same input always gives the same shards, whatever the worker count, and a rerun
after a crash knows which shards are finished and converts only the rest.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool

import tensorflow as tf
import tqdm

from data_tools import audio_io
from data_tools import manifest as manifest_lib
from data_tools.audio_io import DecodedTrack, SkippedTrack, TrackSpec
from data_tools.datasets.common import Listing
from mssl_tf import constants, fileio
from mssl_tf.data import features

log = logging.getLogger(__name__)

INCOMPLETE_SUFFIX = ".incomplete"
BYTES_PER_SAMPLE = 2  # int16


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    """The tracks of one output shard."""

    split: str
    index: int
    count: int
    name: str
    tracks: tuple[TrackSpec, ...]


def order_tracks(tracks: Sequence[TrackSpec], seed: int = 0) -> list[TrackSpec]:
    """A fixed pseudo-random order (by sha1 of seed and track id).

    Sources list tracks grouped by genre or folder; mixing them spreads every class over every
    shard, so shard-level interleaving at training time sees all classes. Hashing the id (instead
    of shuffling positions) keeps a track's place when others are added or removed.
    """
    def key(spec: TrackSpec) -> tuple[str, str]:
        return hashlib.sha1(f"{seed}:{spec.track_id}".encode()).hexdigest(), spec.track_id
    return sorted(tracks, key=key)


def plan_shards(dataset: str, tracks: Sequence[TrackSpec], est_seconds: Sequence[float], *,
                sample_rate: int = features.SAMPLE_RATE, shard_bytes: int = constants.SHARD_BYTES,
                tracks_per_shard: int | None = None) -> list[ShardPlan]:
    """Splits the tracks of every split into shards of about `shard_bytes` of audio.

    Args:
      dataset: name used in shard file names.
      tracks: tracks in their final order.
      est_seconds: expected duration of each track (parallel to `tracks`).
      sample_rate: output rate, for the byte estimate.
      shard_bytes: target shard size.
      tracks_per_shard: fixed track count per shard instead of the size target.

    Returns:
      Shard plans, split by split in SPLITS order; splits without tracks get no shard.
    """
    if len(est_seconds) != len(tracks):
        raise ValueError(f"{len(est_seconds)} duration estimates for {len(tracks)} tracks")
    by_split: dict[str, list[tuple[TrackSpec, float]]] = {s: [] for s in features.SPLITS}
    for spec, seconds in zip(tracks, est_seconds):
        by_split[spec.split].append((spec, seconds))
    plans = []
    for split in features.SPLITS:
        groups: list[list[TrackSpec]] = []
        current: list[TrackSpec] = []
        current_bytes = 0.0
        for spec, seconds in by_split[split]:
            size = max(seconds, 0.0) * sample_rate * BYTES_PER_SAMPLE
            full = (len(current) >= tracks_per_shard if tracks_per_shard
                    else current and current_bytes + size > shard_bytes)
            if full:
                groups.append(current)
                current, current_bytes = [], 0.0
            current.append(spec)
            current_bytes += size
        if current:
            groups.append(current)
        for index, group in enumerate(groups):
            plans.append(ShardPlan(split, index, len(groups),
                                   features.shard_name(dataset, split, index, len(groups)),
                                   tuple(group)))
    return plans


def plan_fingerprint(listing: Listing, plans: Sequence[ShardPlan]) -> str:
    """sha256 of everything that decides the shard contents (not of local paths)."""
    payload = {
        "dataset": listing.dataset, "schema_version": features.SCHEMA_VERSION,
        "sample_rate": features.SAMPLE_RATE, "tag_names": list(listing.tag_names),
        "shards": [[p.name, [[t.track_id, t.split, list(t.labels)] for t in p.tracks]]
                   for p in plans],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def encode_record(track: DecodedTrack, sample_rate: int = features.SAMPLE_RATE) -> bytes:
    """The serialized tf.train.Example of one decoded track."""
    return features.serialize_example(track.pcm, track_id=track.spec.track_id,
                                      split=track.spec.split, labels=track.spec.labels,
                                      sample_rate=sample_rate)


def write_shard(path: str, records: Iterable[bytes]) -> dict:
    """Writes records to `path` atomically: a temporary name first, renamed when complete.

    Returns:
      {"num_records", "sha256", "bytes"} of the finished file.
    """
    tmp = path + INCOMPLETE_SUFFIX
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in records:
                writer.write(record)
                count += 1
        info = {"num_records": count, "sha256": fileio.sha256_file(tmp),
                "bytes": tf.io.gfile.stat(tmp).length}
        tf.io.gfile.rename(tmp, path, overwrite=True)
    except BaseException:
        # Ctrl-C, SIGTERM or an error anywhere before the rename (also while the finished file
        # is being checksummed): leave no half-written file behind.
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)
        raise
    return info


def _spawn_executor(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    # "spawn" (not fork): the parent holds TensorFlow, which must not be forked; the children
    # import only audio_io.
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=audio_io.init_worker, initargs=(os.getpid(),))


def _ordered_map(fn: Callable, items: Iterable, workers: int,
                 on_crash: Callable[[object, str], object] | None = None) -> Iterator:
    """fn over items in order, on `workers` spawned processes, with a bounded number in flight.

    At most 4 tasks per worker are in flight, so one slow file cannot make the results of all
    the others pile up in memory. A worker that dies (a decoder library crashing on a corrupt
    file, the OOM killer) breaks the pool; the items then in flight are rerun one at a time in a
    fresh worker to find the one that kills it, which `on_crash(item, why)` turns into a result
    (without `on_crash` the error propagates), and the pool is started again for the rest.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    items = iter(items)
    pending: collections.deque = collections.deque()
    executor = _spawn_executor(workers)
    try:
        while True:
            broken: BaseException | None = None
            for item in items:
                try:
                    future = executor.submit(fn, item)
                except BrokenProcessPool as error:  # a worker died since the last result
                    future, broken = None, error
                pending.append((item, future))
                if broken is not None or len(pending) >= 4 * workers:
                    break
            if not pending:
                return
            if broken is None:
                try:
                    result = pending[0][1].result()
                except BrokenProcessPool as error:
                    broken = error
            if broken is not None:
                if on_crash is None:
                    raise broken
                executor.shutdown(wait=True)
                suspects = [it for it, _ in pending]
                pending.clear()
                yield from _isolate_crashes(fn, suspects, on_crash)
                executor = _spawn_executor(workers)
                continue
            pending.popleft()
            yield result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _isolate_crashes(fn: Callable, items: Sequence, on_crash: Callable[[object, str], object]
                     ) -> Iterator:
    """Runs `items` in order on one worker; each item that kills it becomes `on_crash(...)`."""
    executor = _spawn_executor(1)
    try:
        for item in items:
            try:
                yield executor.submit(fn, item).result()
            except BrokenProcessPool as error:
                log.warning("a decode worker died on %s; skipping it", item)
                yield on_crash(item, f"{type(error).__name__}: {error}")
                executor.shutdown(wait=True)
                executor = _spawn_executor(1)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _decoder_crashed(spec: TrackSpec, why: str) -> SkippedTrack:
    return SkippedTrack(spec, "the decoding process died on this file (a crash in the audio "
                              f"decoder or out of memory): {why}")


def _shard_records(plan: ShardPlan, results: Iterator, record: dict, bar) -> Iterator[bytes]:
    """Pulls this shard's results, yields records and books skips/flags/clipping in `record`."""
    for _ in plan.tracks:
        result = next(results)
        bar.update(1)
        if isinstance(result, SkippedTrack):
            record["skipped"].append({"path": result.spec.name, "reason": result.reason})
            continue
        if result.silent:
            record["flagged"].append({"path": result.spec.name, "reason": "silent"})
        record["clipped_samples"] += result.clipped
        yield encode_record(result)


class NothingConvertedError(ValueError):
    """Every track of a conversion was skipped; the message gives the first reasons."""


def describe_skipped(skipped: Sequence[dict], limit: int = 5) -> str:
    """The first `limit` skipped files with their reasons, one per line."""
    lines = [f"  {s['path']}: {s['reason']}" for s in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"  ... and {len(skipped) - limit} more (all are listed in manifest.json's "
                     "'skipped')")
    return "\n".join(lines)


@dataclasses.dataclass
class Conversion:
    """The planning half of a conversion, shared by the local writer and the Beam pipeline.

    Attributes:
      listing: what is converted.
      out_dir: the output folder.
      plans: every shard's plan, in order.
      fingerprint: `plan_fingerprint` of the plans.
      existing: the manifest when `out_dir` already holds this finished conversion, else None.
      done: completion records of the shards a previous run finished (checked), by name.
    """

    listing: Listing
    out_dir: str
    plans: list[ShardPlan]
    fingerprint: str
    existing: dict | None
    done: dict[str, dict]

    @property
    def progress_dir(self) -> str:
        """Where the per-shard completion records live while the conversion runs."""
        return os.path.join(self.out_dir, manifest_lib.PROGRESS_DIR)

    @property
    def todo(self) -> list[ShardPlan]:
        """The shards still to write."""
        return [p for p in self.plans if p.name not in self.done]


def plan_conversion(listing: Listing, out_dir: str, *,
                    shard_bytes: int = constants.SHARD_BYTES,
                    tracks_per_shard: int | None = None, overwrite: bool = False) -> Conversion:
    """Orders the tracks, plans the shards, guards `out_dir` and finds finished shards.

    Raises:
      ValueError: nothing to convert, inconsistent labels, `out_dir` is a file or holds another
        conversion (see the message).
    """
    if not listing.tracks:
        raise NothingConvertedError(
            f"{listing.dataset}: no track to convert ({len(listing.skipped)} skipped while "
            "listing):\n" + describe_skipped(listing.skipped))
    lengths = {len(t.labels) for t in listing.tracks}
    if len(lengths) > 1:
        raise ValueError(f"{listing.dataset}: label vectors of different lengths {sorted(lengths)}")
    tracks = order_tracks(listing.tracks)
    est = dict(zip((t.track_id for t in listing.tracks), listing.est_seconds))
    plans = plan_shards(listing.dataset, tracks, [est[t.track_id] for t in tracks],
                        shard_bytes=shard_bytes, tracks_per_shard=tracks_per_shard)
    fingerprint = plan_fingerprint(listing, plans)
    existing = manifest_lib.prepare_out_dir(out_dir, listing.dataset, fingerprint, overwrite)
    done = {} if existing is not None else manifest_lib.finished_shards(
        out_dir, os.path.join(out_dir, manifest_lib.PROGRESS_DIR), [p.name for p in plans])
    return Conversion(listing, out_dir, plans, fingerprint, existing, done)


def finish_conversion(conversion: Conversion, command: str, **extra) -> dict:
    """Writes manifest.json from the finished shards and removes the progress records.

    Args:
      conversion: the conversion, with every shard in `conversion.done`.
      command: the command line, recorded in the manifest.
      **extra: more manifest entries (e.g. the Beam runner).

    Returns:
      The manifest.

    Raises:
      NothingConvertedError: every track was skipped; the empty shards are removed and the
        first reasons given.
      RuntimeError: shards are missing (a Beam run that ended early).
    """
    missing = [p.name for p in conversion.plans if p.name not in conversion.done]
    if missing:
        raise RuntimeError(f"the conversion ended without shards {missing[:3]}...; run the same "
                           "command again to finish it")
    if not sum(r["num_records"] for r in conversion.done.values()):
        skipped = list(conversion.listing.skipped) + [
            s for r in conversion.done.values() for s in r["skipped"]]
        _remove_shards(conversion)
        raise NothingConvertedError(
            f"{conversion.listing.dataset}: every track was skipped ({len(skipped)}), no shard "
            "written:\n" + describe_skipped(skipped))
    manifest = manifest_lib.build_manifest(conversion.listing, conversion.plans, conversion.done,
                                           conversion.fingerprint, command)
    manifest.update(extra)
    fileio.write_json(os.path.join(conversion.out_dir, features.MANIFEST_NAME), manifest,
                      indent=1, sort_keys=False)
    tf.io.gfile.rmtree(conversion.progress_dir)
    return manifest


def _remove_shards(conversion: Conversion) -> None:
    """Deletes this conversion's shards and progress records (nothing else in `out_dir`)."""
    for plan in conversion.plans:
        fileio.remove(os.path.join(conversion.out_dir, plan.name))
    fileio.rmtree(conversion.progress_dir)


def convert(listing: Listing, out_dir: str, *, workers: int | None = None,
            shard_bytes: int = constants.SHARD_BYTES, tracks_per_shard: int | None = None,
            command: str = "", overwrite: bool = False, progress: bool = True,
            on_shard_done: Callable[[str], None] | None = None) -> dict:
    """Converts a listing into sharded TFRecords plus manifest.json in `out_dir`.

    Resumable: finished shards (renamed from their temporary name, with a completion record
    whose size and sha256 they still match) are kept by a rerun of the same conversion, and
    only the others are written.

    Args:
      listing: the dataset's tracks (from a reader in data_tools.datasets).
      out_dir: local or gs:// folder.
      workers: decode processes (default: all cores; 1 decodes in this process).
      shard_bytes: target shard size in bytes of audio.
      tracks_per_shard: fixed track count per shard instead of `shard_bytes`.
      command: the command line, recorded in the manifest.
      overwrite: replace whatever conversion `out_dir` already holds.
      progress: show a tqdm bar (tracks/s and ETA).
      on_shard_done: called with each finished shard's name (used by tests to interrupt a run).

    Returns:
      The manifest that was written.

    Raises:
      ValueError: inconsistent labels, `out_dir` is a file or holds another conversion, or
        every track was skipped (`NothingConvertedError`); see the message.
    """
    workers = workers or audio_io.available_cores()
    conversion = plan_conversion(listing, out_dir, shard_bytes=shard_bytes,
                                 tracks_per_shard=tracks_per_shard, overwrite=overwrite)
    if conversion.existing is not None:
        log.info("%s already holds this conversion (manifest fingerprint matches); nothing to do",
                 out_dir)
        return conversion.existing
    done, todo = conversion.done, conversion.todo
    if done:
        log.info("resuming: %d of %d shards already finished", len(done), len(conversion.plans))
    fn = functools.partial(audio_io.process_track, sample_rate=features.SAMPLE_RATE,
                           min_samples=features.CROP_LEN)
    results = _ordered_map(fn, (t for p in todo for t in p.tracks), min(workers, max(
        1, sum(len(p.tracks) for p in todo))), on_crash=_decoder_crashed)
    with tqdm.tqdm(total=sum(len(p.tracks) for p in todo), unit="track", desc=listing.dataset,
                   disable=not progress, dynamic_ncols=True) as bar:
        for plan in todo:
            record = {"file": plan.name, "split": plan.split, "skipped": [], "flagged": [],
                      "clipped_samples": 0}
            record.update(write_shard(os.path.join(out_dir, plan.name),
                                      _shard_records(plan, results, record, bar)))
            fileio.write_json(os.path.join(conversion.progress_dir, plan.name + ".json"), record)
            done[plan.name] = record
            if on_shard_done is not None:
                on_shard_done(plan.name)
    results.close()
    return finish_conversion(conversion, command)
