"""Results of `mssl-embed`: per-track records, the npz / Parquet output, resumable parts.

npz layout (`numpy.load(OUT)`; T embedded tracks, C chunks, F failed files, K tags, D dims):
  path (T,) str, duration (T,) float64 seconds, n_chunks (T,) int64, embedding (T, D) float32
  (the mean over the track's chunks), tag_names (K,) and tag_probabilities (T, K) with a probe;
  with --chunks: chunk_track (C,) int64 (the row in `path` a chunk belongs to), chunk_start (C,)
  float64 seconds, chunk_embedding (C, D) and chunk_tag_probabilities (C, K);
  failed_path (F,) str and failed_reason (F,) str; settings () str (JSON: model, hop, ...).
Parquet: one row per file (failed ones too, with `error` set and no embedding); list columns
  embedding, tag_probabilities, chunk_start, chunk_embedding, chunk_tag_probabilities; the tag
  names and settings in the schema metadata.

Resuming: finished tracks are written every few tracks to OUT.partial/part-NNNNN.npz (same
layout), each atomically; a rerun with the same settings reads them and skips those files, and
the parts are deleted once OUT is written (atomically, through `mssl_tf.fileio`). TF-free.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re

import numpy as np

from mssl_tf import fileio

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
PART_RE = re.compile(r"^part-(\d{5,})\.npz$")


@dataclasses.dataclass
class TrackRecord:
    """One file's result: embedded (error None) or failed (error set)."""

    path: str
    duration: float = 0.0
    embedding: np.ndarray | None = None
    tag_probabilities: np.ndarray | None = None
    chunk_start: np.ndarray | None = None  # seconds
    chunk_embedding: np.ndarray | None = None
    chunk_tag_probabilities: np.ndarray | None = None
    n_chunks: int = 0
    error: str | None = None


def output_format(path: str) -> str:
    """"parquet" for a .parquet/.pq output, "npz" for .npz.

    Raises:
      ValueError: any other ending (an npz written under "x.csv" would mislead its reader).
    """
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith(".npz"):
        return "npz"
    raise ValueError(f"--out {path}: name a .npz or a .parquet file; the ending chooses the "
                     "output's format.")


def _stack(rows: list, width: int | None, dtype) -> np.ndarray:
    if rows:
        return np.stack(rows).astype(dtype)
    return np.zeros((0, width or 0), dtype)


def to_npz_bytes(records: list[TrackRecord], settings: dict, tag_names: list[str]) -> bytes:
    """The npz layout of the module docstring, as bytes."""
    ok = [r for r in records if r.error is None]
    bad = [r for r in records if r.error is not None]
    dim = int(settings.get("rep_dim") or 0)
    arrays = {
        "path": np.asarray([r.path for r in ok], dtype=str),
        "duration": np.asarray([r.duration for r in ok], np.float64),
        "n_chunks": np.asarray([r.n_chunks for r in ok], np.int64),
        "embedding": _stack([r.embedding for r in ok], dim, np.float32),
        "failed_path": np.asarray([r.path for r in bad], dtype=str),
        "failed_reason": np.asarray([r.error for r in bad], dtype=str),
        "settings": np.asarray(json.dumps(settings, sort_keys=True)),
    }
    if tag_names:
        arrays["tag_names"] = np.asarray(tag_names, dtype=str)
        arrays["tag_probabilities"] = _stack([r.tag_probabilities for r in ok], len(tag_names),
                                             np.float32)
    if settings.get("chunks"):
        arrays["chunk_track"] = (np.concatenate([np.full(r.n_chunks, i, np.int64)
                                                 for i, r in enumerate(ok)])
                                 if ok else np.zeros(0, np.int64))
        arrays["chunk_start"] = (np.concatenate([r.chunk_start for r in ok]).astype(np.float64)
                                 if ok else np.zeros(0, np.float64))
        arrays["chunk_embedding"] = (np.concatenate([r.chunk_embedding for r in ok])
                                     .astype(np.float32) if ok else np.zeros((0, dim), np.float32))
        if tag_names:
            arrays["chunk_tag_probabilities"] = (
                np.concatenate([r.chunk_tag_probabilities for r in ok]).astype(np.float32)
                if ok else np.zeros((0, len(tag_names)), np.float32))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def read_npz(path: str) -> tuple[list[TrackRecord], dict]:
    """Records and settings of an npz written by `to_npz_bytes` (an output or a part)."""
    with np.load(io.BytesIO(fileio.read_bytes(path)), allow_pickle=False) as data:
        d = {k: data[k] for k in data.files}
    settings = json.loads(str(d["settings"]))
    records = []
    bounds = np.concatenate([[0], np.cumsum(d["n_chunks"])]) if "chunk_track" in d else None
    for i, p in enumerate(d["path"]):
        rec = TrackRecord(str(p), float(d["duration"][i]), d["embedding"][i],
                          n_chunks=int(d["n_chunks"][i]))
        if "tag_probabilities" in d:
            rec.tag_probabilities = d["tag_probabilities"][i]
        if bounds is not None:
            sl = slice(int(bounds[i]), int(bounds[i + 1]))
            rec.chunk_start = d["chunk_start"][sl]
            rec.chunk_embedding = d["chunk_embedding"][sl]
            if "chunk_tag_probabilities" in d:
                rec.chunk_tag_probabilities = d["chunk_tag_probabilities"][sl]
        records.append(rec)
    records += [TrackRecord(str(p), error=str(r))
                for p, r in zip(d["failed_path"], d["failed_reason"])]
    return records, settings


def to_parquet_bytes(records: list[TrackRecord], settings: dict, tag_names: list[str]) -> bytes:
    """One row per file (see the module docstring), as Parquet bytes (needs pyarrow)."""
    try:
        import pyarrow as pa  # noqa: PLC0415  (an optional extra)
        import pyarrow.parquet as pq  # noqa: PLC0415
    except ImportError:
        raise ValueError("Parquet output needs pyarrow: pip install 'mssl_tf[parquet]', or "
                         "write an .npz output instead.") from None

    def lst(x):
        return None if x is None else np.asarray(x).tolist()

    columns = {"path": [r.path for r in records],
               "duration": [r.duration if r.error is None else None for r in records],
               "n_chunks": [r.n_chunks if r.error is None else None for r in records],
               "embedding": pa.array([lst(r.embedding) for r in records],
                                     pa.list_(pa.float32())),
               "error": [r.error for r in records]}
    if tag_names:
        columns["tag_probabilities"] = pa.array([lst(r.tag_probabilities) for r in records],
                                                pa.list_(pa.float32()))
    if settings.get("chunks"):
        columns["chunk_start"] = pa.array([lst(r.chunk_start) for r in records],
                                          pa.list_(pa.float64()))
        columns["chunk_embedding"] = pa.array([lst(r.chunk_embedding) for r in records],
                                              pa.list_(pa.list_(pa.float32())))
        if tag_names:
            columns["chunk_tag_probabilities"] = pa.array(
                [lst(r.chunk_tag_probabilities) for r in records],
                pa.list_(pa.list_(pa.float32())))
    table = pa.table(columns).replace_schema_metadata({
        "tag_names": json.dumps(list(tag_names)),
        "settings": json.dumps(settings, sort_keys=True)})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def write_output(path: str, records: list[TrackRecord], settings: dict,
                 tag_names: list[str]) -> None:
    """Writes the final output atomically (npz, or Parquet for a .parquet path)."""
    if output_format(path) == "parquet":
        data = to_parquet_bytes(records, settings, tag_names)
    else:
        data = to_npz_bytes(records, settings, tag_names)
    fileio.write_bytes(path, data)


class PartialStore:
    """OUT.partial/: finished tracks of an unfinished run, one atomically written part at a time.

    Args:
      output: the run's final output path.
      settings: what the records depend on; parts made with other settings are refused.
      tag_names: the model's tag names (stored in each part).
    """

    def __init__(self, output: str, settings: dict, tag_names: list[str]):
        self.folder = output + PARTIAL_SUFFIX
        self.settings = settings
        self.tag_names = list(tag_names)
        self.next_index = 0

    def load(self) -> dict[str, TrackRecord]:
        """Records of the parts already written, by path.

        Raises:
          ValueError: the parts were made with other settings (names the folder and the fix).
        """
        done: dict[str, TrackRecord] = {}
        if not fileio.isdir(self.folder):
            return done
        for name in sorted(fileio.listdir(self.folder)):
            match = PART_RE.match(name)
            if not match:
                continue  # e.g. a temporary file of a write that was killed
            self.next_index = max(self.next_index, int(match.group(1)) + 1)
            records, settings = read_npz(fileio.join(self.folder, name))
            if settings != self.settings:
                changed = sorted(k for k in set(settings) | set(self.settings)
                                 if settings.get(k) != self.settings.get(k))
                raise ValueError(
                    f"{self.folder} holds results of an unfinished run with other settings "
                    f"({', '.join(changed)} differ); rerun with the same flags to resume it, or "
                    "delete that folder to start again.")
            done.update((r.path, r) for r in records)
        return done

    def write(self, records: list[TrackRecord]) -> None:
        """Writes the next part (atomically)."""
        if not records:
            return
        fileio.makedirs(self.folder)
        name = f"part-{self.next_index:05d}.npz"
        fileio.write_bytes(fileio.join(self.folder, name),
                           to_npz_bytes(records, self.settings, self.tag_names))
        self.next_index += 1

    def remove(self) -> None:
        """Deletes the parts (after the final output is written)."""
        fileio.rmtree(self.folder)


def reuse_output(path: str, settings: dict) -> dict[str, TrackRecord]:
    """Records of an earlier final npz output made with the same settings (so a rerun on a
    grown folder embeds only the new files); {} when there is none or it differs."""
    if output_format(path) != "npz" or not fileio.exists(path):
        return {}
    try:
        records, old = read_npz(path)
    except (OSError, ValueError, KeyError) as e:
        logger.warning("Ignoring the existing %s (%s); it will be replaced.", path, e)
        return {}
    if old != settings:
        return {}
    return {r.path: r for r in records}


__all__ = ["PartialStore", "TrackRecord", "output_format", "read_npz", "reuse_output",
           "to_npz_bytes", "to_parquet_bytes", "write_output"]


