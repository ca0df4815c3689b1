"""manifest.json: writing it, guarding the output folder, and `verify` (re-reading every shard).

The manifest is the contract with the training/evaluation side: dataset, schema version, sample
rate, tag names, per-split track counts, per-shard record counts and sha256, every skipped file with
its reason, flagged (silent) files, the clipped-sample count, and the command and version that
made it. All file access goes through tf.io.gfile, so `out_dir` may be a gs:// path.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Mapping, Sequence

import tensorflow as tf

from data_tools.datasets.common import Listing
from mssl_tf import fileio
from mssl_tf.data import features
from mssl_tf.version import __version__

log = logging.getLogger(__name__)

PROGRESS_DIR = ".mssl_prepare"  # per-shard completion records while a conversion runs
PLAN_NAME = "plan.json"


def _shard_files(out_dir: str) -> list[str]:
    if not tf.io.gfile.isdir(out_dir):
        return []
    return sorted(n for n in tf.io.gfile.listdir(out_dir) if features.SHARD_RE.match(n))


def _clear(out_dir: str) -> None:
    for name in tf.io.gfile.listdir(out_dir):
        name = name.rstrip("/")
        if (features.SHARD_RE.match(name) or name == features.MANIFEST_NAME
                or name.endswith(".incomplete")):
            tf.io.gfile.remove(os.path.join(out_dir, name))
    progress = os.path.join(out_dir, PROGRESS_DIR)
    if tf.io.gfile.exists(progress):
        tf.io.gfile.rmtree(progress)


def prepare_out_dir(out_dir: str, dataset: str, fingerprint: str,
                    overwrite: bool) -> dict | None:
    """Checks that `out_dir` is empty, resumable or already finished for this conversion.

    Args:
      out_dir: the output folder.
      dataset: the dataset being written.
      fingerprint: `tfrecord_lib.plan_fingerprint` of this conversion.
      overwrite: delete another conversion found there instead of refusing.

    Returns:
      The existing manifest when this exact conversion is already finished, else None.

    Raises:
      ValueError: `out_dir` is a file, or holds shards of another dataset, schema version or
        input.
    """
    if fileio.exists(out_dir) and not fileio.isdir(out_dir):
        raise ValueError(f"--out {out_dir} is a file, not a folder. Name a new or empty folder "
                         "(it is created), or the folder of this dataset's earlier conversion.")
    try:
        tf.io.gfile.makedirs(out_dir)
    except (OSError, tf.errors.OpError) as error:  # a file on the path, no permission, ...
        detail = getattr(error, "message", None) or str(error)
        raise ValueError(f"--out {out_dir}: cannot create the folder ({detail}). Name a folder "
                         "you can write to.") from None
    fix = "Choose an empty --out_dir, or pass --overwrite to replace its contents."
    problems = []
    manifest_path = os.path.join(out_dir, features.MANIFEST_NAME)
    if tf.io.gfile.exists(manifest_path):
        manifest = fileio.read_json(manifest_path)
        if manifest.get("schema_version") != features.SCHEMA_VERSION:
            problems.append(f"{manifest_path} is of schema version "
                            f"{manifest.get('schema_version')!r}, this tool writes "
                            f"{features.SCHEMA_VERSION}")
        elif manifest.get("dataset") != dataset:
            problems.append(f"{manifest_path} is a conversion of dataset "
                            f"{manifest.get('dataset')!r}, not {dataset!r}")
        elif manifest.get("plan_fingerprint") == fingerprint and not overwrite:
            return manifest
        else:
            problems.append(f"{manifest_path} is a finished conversion of other input or options")
    others = sorted({features.SHARD_RE.match(n).group("dataset") for n in _shard_files(out_dir)}
                    - {dataset})
    if others:
        problems.append(f"{out_dir} holds shards of other datasets: {', '.join(others)}")
    plan_path = os.path.join(out_dir, PROGRESS_DIR, PLAN_NAME)
    if (tf.io.gfile.exists(plan_path)
            and fileio.read_json(plan_path).get("fingerprint") != fingerprint):
        problems.append(f"{out_dir} holds an unfinished conversion of other input or options")
    if problems and not overwrite:
        raise ValueError("; ".join(problems) + ". " + fix)
    if overwrite:
        _clear(out_dir)
    if not tf.io.gfile.exists(plan_path):
        fileio.write_json(plan_path, {"fingerprint": fingerprint})
    return None


def finished_shards(out_dir: str, progress_dir: str, names: Sequence[str]) -> dict[str, dict]:
    """Shards that a previous run completed, by name, with their completion records.

    A shard counts as finished when its completion record exists and the file on disk has the
    recorded size and sha256 (a shard damaged since, e.g. by a disk error or a copy cut short,
    is converted again). Leftover temporary files, and shards without a valid record (a crash
    between the rename and the record), are deleted so they are rewritten.
    """
    if tf.io.gfile.isdir(out_dir):
        for name in tf.io.gfile.listdir(out_dir):
            if name.endswith(".tfrecord.incomplete"):  # a shard cut short by a crash or kill
                tf.io.gfile.remove(os.path.join(out_dir, name))
    done = {}
    for name in names:
        path = os.path.join(out_dir, name)
        record_path = os.path.join(progress_dir, name + ".json")
        if tf.io.gfile.exists(record_path) and tf.io.gfile.exists(path):
            record = _completion_record(record_path)
            why = _differs(path, record)
            if why is None:
                done[name] = record
                continue
            log.warning("%s: %s; converting it again", path, why)
        if tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
    return done


def _completion_record(path: str) -> dict | None:
    """A shard's completion record, or None when it is unreadable (a kill while writing it)."""
    try:
        record = fileio.read_json(path)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _differs(path: str, record: dict | None) -> str | None:
    """Why the finished shard at `path` does not match its record (None when it does)."""
    if record is None:
        return "its completion record is unreadable"
    size = tf.io.gfile.stat(path).length
    if size != record.get("bytes"):
        return f"{size} bytes, its completion record says {record.get('bytes')}"
    if fileio.sha256_file(path) != record.get("sha256"):
        return "sha256 differs from its completion record (the file changed since it was written)"
    return None


def build_manifest(listing: Listing, plans: Sequence, shard_records: Mapping[str, dict],
                   fingerprint: str, command: str) -> dict:
    """The manifest of a finished conversion.

    Args:
      listing: what was converted.
      plans: the shard plans (tfrecord_lib.ShardPlan), in order.
      shard_records: per-shard completion records by shard name.
      fingerprint: the plan fingerprint (lets a rerun recognise a finished output).
      command: the command line that made it.
    """
    splits = {}
    skipped = list(listing.skipped)
    flagged = []
    clipped = 0
    for split in features.SPLITS:
        shards = []
        for plan in (p for p in plans if p.split == split):
            record = shard_records[plan.name]
            shards.append({"file": plan.name, "num_records": record["num_records"],
                           "sha256": record["sha256"], "bytes": record["bytes"]})
            skipped.extend(record["skipped"])
            flagged.extend(record["flagged"])
            clipped += record["clipped_samples"]
        splits[split] = {"num_tracks": sum(s["num_records"] for s in shards), "shards": shards}
    manifest = {
        "dataset": listing.dataset,
        "schema_version": features.SCHEMA_VERSION,
        "sample_rate": features.SAMPLE_RATE,
        "multi_label": listing.multi_label,
        "tag_names": list(listing.tag_names),
        "num_labels": len(listing.tag_names),
        "splits": splits,
        "skipped": sorted(skipped, key=lambda s: (s["path"], s["reason"])),
        "flagged": sorted(flagged, key=lambda s: s["path"]),
        "clipped_samples": clipped,
        "plan_fingerprint": fingerprint,
        "command": command,
        "mssl_tf_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    manifest.update(listing.extra)
    return manifest


def _check_record(parsed: dict, manifest: dict, split: str, where: str) -> list[str]:
    problems = []
    if parsed["schema_version"] != features.SCHEMA_VERSION:
        problems.append(f"{where}: schema_version {parsed['schema_version']}")
    if parsed["split"] != split:
        problems.append(f"{where}: split {parsed['split']!r} in a {split!r} shard")
    if parsed["sample_rate"] != manifest["sample_rate"]:
        problems.append(f"{where}: sample_rate {parsed['sample_rate']}")
    if parsed["num_samples"] != parsed["audio"].shape[0]:
        problems.append(f"{where}: num_samples {parsed['num_samples']} but "
                        f"{parsed['audio'].shape[0]} samples stored")
    if parsed["audio"].shape[0] < features.CROP_LEN:
        problems.append(f"{where}: only {parsed['audio'].shape[0]} samples (< {features.CROP_LEN})")
    if parsed["labels"].shape[0] != manifest["num_labels"]:
        problems.append(f"{where}: {parsed['labels'].shape[0]} labels, manifest says "
                        f"{manifest['num_labels']}")
    return problems


def verify(out_dir: str) -> list[str]:
    """Re-reads every shard and checks it against the manifest.

    Checks: every listed shard exists with the recorded sha256 and record count, every record
    parses with this schema version, its split, sample rate, length and label count agree with the
    manifest, track ids are unique, per-split counts add up, and no unlisted or temporary shard
    files are left in the folder.

    Args:
      out_dir: a folder written by `mssl-prepare`.

    Returns:
      Problems found (empty when the output is complete and consistent).
    """
    try:
        manifest = fileio.read_manifest(out_dir)
    except (FileNotFoundError, ValueError) as error:
        return [str(error)]
    problems = []
    listed = set()
    track_ids: dict[str, str] = {}
    for split, entry in manifest["splits"].items():
        total = 0
        for shard in entry["shards"]:
            name = shard["file"]
            listed.add(name)
            path = os.path.join(out_dir, name)
            if not tf.io.gfile.exists(path):
                problems.append(f"{path}: listed in the manifest but missing")
                continue
            if fileio.sha256_file(path) != shard["sha256"]:
                problems.append(f"{path}: sha256 differs from the manifest (file changed or "
                                "truncated)")
            count = 0
            try:
                for i, raw in enumerate(tf.data.TFRecordDataset(path).as_numpy_iterator()):
                    parsed = features.parse_example_numpy(raw)
                    problems.extend(_check_record(parsed, manifest, split, f"{path} record {i}"))
                    if parsed["track_id"] in track_ids:
                        problems.append(f"{path} record {i}: track {parsed['track_id']!r} also in "
                                        f"{track_ids[parsed['track_id']]}")
                    track_ids[parsed["track_id"]] = name
                    count += 1
            except tf.errors.DataLossError as error:
                problems.append(f"{path}: corrupt TFRecord ({error.message})")
            if count != shard["num_records"]:
                problems.append(f"{path}: {count} records, manifest says {shard['num_records']}")
            total += count
        if total != entry["num_tracks"]:
            problems.append(f"split {split}: {total} records, manifest says {entry['num_tracks']}")
    for name in tf.io.gfile.listdir(out_dir):
        if features.SHARD_RE.match(name) and name not in listed:
            problems.append(f"{os.path.join(out_dir, name)}: shard not listed in the manifest")
        if name.endswith(".incomplete"):
            problems.append(f"{os.path.join(out_dir, name)}: temporary file of an interrupted run")
    if tf.io.gfile.exists(os.path.join(out_dir, PROGRESS_DIR)):
        problems.append(f"{out_dir}: an interrupted conversion's progress records are still there; "
                        "rerun the mssl-prepare command to finish it")
    return problems
