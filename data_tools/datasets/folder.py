"""Any folder of audio (wav/mp3/flac/ogg/au, searched recursively), for users' own music.

Without `--labels`, every file becomes an unlabelled track. With a labels CSV (header
`path,labels[,split]`; `labels` is a `;`-separated list of tag names; `path` is relative to the
audio folder), the listed files are converted with multi-hot labels over the sorted tag names
(one-hot when every file has exactly one label). Files without a `split` column value are placed
by a stable hash of their path, by `--valid_fraction` / `--test_fraction` (default: all train).
"""

from __future__ import annotations

import csv
import os
import re

from data_tools import audio_io
from data_tools.datasets.common import Listing, ListingBuilder, normalise_split, stable_fraction
from mssl_tf import fileio


def find_audio(audio_dir: str) -> list[str]:
    """Relative paths (with '/') of the audio files under `audio_dir`, sorted."""
    if not fileio.isdir(audio_dir):
        raise FileNotFoundError(f"--audio_dir {audio_dir}: not a folder")
    found = []
    for root, dirs, files in fileio.walk(audio_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if os.path.splitext(name)[1].lower() in audio_io.AUDIO_EXTENSIONS:
                found.append(fileio.relative_to(fileio.join(root, name), audio_dir))
    return sorted(found)


def _hash_split(relative: str, valid_fraction: float, test_fraction: float) -> str:
    u = stable_fraction(relative)
    return "test" if u < test_fraction else ("valid" if u < test_fraction + valid_fraction else
                                             "train")


def read_labels_csv(path: str) -> list[tuple[int, str, list[str], str]]:
    """Rows of a labels CSV as `(line, path, labels, split)` (split "" when not given).

    A row must give every column of the header (`labels` and `split` may be empty: `a.wav,`
    is an unlabelled file); blank lines are ignored.

    Raises:
      ValueError: the header lacks `path` and `labels` columns, or a row has too few or too
        many fields or no path (the message names the file and line).
    """
    rows = []
    with fileio.open_text(path) as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if "path" not in fields or "labels" not in fields:
            raise ValueError(f"--labels {path}: header must have 'path' and 'labels' columns "
                             f"(optionally 'split'), got {fields}")
        for r in reader:
            where = f"--labels {path} line {reader.line_num}"
            if None in r or any(r[k] is None for k in fields):  # too many / too few fields
                count = len(fields) + len(r.get(None) or []) - sum(r[k] is None for k in fields)
                raise ValueError(
                    f"{where}: {count} field(s), the header names {len(fields)} "
                    f"({','.join(fields)}). Give every column on every row (empty labels are "
                    "written `file.wav,`; quote a field that holds a comma).")
            if not r["path"].strip():
                raise ValueError(f"{where}: the path field is empty")
            rows.append((reader.line_num, r["path"].strip(),
                         [t.strip() for t in r["labels"].split(";") if t.strip()],
                         (r.get("split") or "").strip()))
    return rows


def list_tracks(audio_dir: str, labels_csv: str | None = None, name: str | None = None,
                valid_fraction: float = 0.0, test_fraction: float = 0.0) -> Listing:
    """Lists a folder of audio, with labels from a CSV when given.

    Args:
      audio_dir: the folder.
      labels_csv: optional labels CSV (see the module docstring).
      name: dataset name for the shard files (default: the folder's name).
      valid_fraction: share of files placed in `valid` when the CSV gives no split.
      test_fraction: share placed in `test`.

    Returns:
      The listing; track ids are the relative paths without extension.
    """
    if not 0 <= valid_fraction + test_fraction <= 1 or min(valid_fraction, test_fraction) < 0:
        raise ValueError("--valid_fraction and --test_fraction must be >= 0 and sum to <= 1")
    files = find_audio(audio_dir)
    if not files:
        raise FileNotFoundError(
            f"--audio_dir {audio_dir}: no audio file in it or its subfolders (looked for "
            f"{', '.join(audio_io.AUDIO_EXTENSIONS)}); convert other formats first, e.g. "
            "`ffmpeg -i track.m4a track.flac`")
    # Shard names are "<dataset>-<split>-...": keep the name to characters safe in file names.
    name = re.sub(r"[^A-Za-z0-9_.]+", "_",
                  name or fileio.basename(fileio.absolute(audio_dir))) or "audio"
    builder = ListingBuilder(audio_dir)
    tag_names: list[str] = []
    multi_label = False
    if labels_csv is None:
        for relative in files:
            builder.add(relative, os.path.splitext(relative)[0], _hash_split(
                relative, valid_fraction, test_fraction), (), "found in the folder")
    else:
        rows = read_labels_csv(labels_csv)
        tag_names = sorted({t for _, _, tags, _ in rows for t in tags})
        multi_label = any(len(tags) != 1 for _, _, tags, _ in rows)
        listed = set()
        where_file = fileio.basename(labels_csv)
        for line, relative, tags, split in rows:
            where = f"{where_file} line {line}"
            try:
                split = normalise_split(split) if split else _hash_split(
                    relative, valid_fraction, test_fraction)
            except ValueError as error:
                builder.skip(relative, f"{error} ({where})")
                continue
            listed.add(relative)
            builder.add(relative, os.path.splitext(relative)[0], split,
                        [1.0 if t in tags else 0.0 for t in tag_names], where)
        for relative in files:
            if relative not in listed:
                builder.skip(relative, f"audio file not listed in {where_file}")
    return Listing(dataset=name, tracks=builder.tracks, tag_names=tag_names,
                   multi_label=multi_label, skipped=builder.skipped,
                   est_seconds=[audio_io.duration_seconds(t.path) for t in builder.tracks],
                   extra={"label": "labels.csv" if labels_csv else "none",
                          "split_source": "labels.csv split column / hash of path"})
