"""FMA (mdeff/fma): `<audio_dir>/<3 digits>/<6-digit id>.mp3` + fma_metadata/tracks.csv.

tracks.csv has two header rows (a column is `(group, name)`, e.g. `('set', 'split')`) and a third
row naming the index (`track_id`). Subsets are cumulative (small < medium < large; `full` = every
track). The official `('set', 'split')` column gives training/validation/test -> train/valid/test.
Labels: the top-level genre one-hot (`--label top_genre`, default) or the multi-hot `genres_all`
(`--label genres_all`, names from genres.csv when it is found).
"""

from __future__ import annotations

import ast
import csv
import sys

from data_tools.datasets.common import Listing, ListingBuilder, normalise_split
from mssl_tf import fileio

SUBSETS = ("small", "medium", "large")
REQUIRED_COLUMNS = (("set", "split"), ("set", "subset"), ("track", "genre_top"),
                    ("track", "genres_all"))
CLIP_SECONDS = 30.0
LABELS = ("top_genre", "genres_all")


def audio_path(track_id: int) -> str:
    """Relative audio path of a track id, e.g. 2 -> '000/000002.mp3'."""
    tid = f"{track_id:06d}"
    return f"{tid[:3]}/{tid}.mp3"


def read_tracks_csv(path: str) -> tuple[dict[tuple[str, str], int], list[tuple[int, list[str]]]]:
    """Reads tracks.csv with its two header rows.

    Returns:
      `(columns, rows)`: column index by `(group, name)`, and `(line number, fields)` per track.

    Raises:
      ValueError: the file does not have the two-row header with the needed columns.
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # album descriptions are long HTML
    with fileio.open_text(path) as f:
        reader = csv.reader(f)
        groups, names = next(reader, []), next(reader, [])
        columns = {(g, n): i for i, (g, n) in enumerate(zip(groups, names))}
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(
                f"--tracks_csv {path}: missing columns {missing}. Expected FMA's tracks.csv from "
                "fma_metadata.zip, whose first two rows are the column header (e.g. 'set' above "
                "'split'); a one-row header means the file was re-saved by another tool")
        rows = []
        for fields in reader:
            line = reader.line_num
            if not fields or fields[0] in ("track_id", ""):
                continue  # the third header row names the index
            rows.append((line, fields))
    return columns, rows


def read_genre_names(path: str | None) -> dict[int, str]:
    """genre_id -> title from genres.csv (empty when there is no such file)."""
    if not path or not fileio.isfile(path):
        return {}
    with fileio.open_text(path) as f:
        return {int(r["genre_id"]): r["title"] for r in csv.DictReader(f)}


def list_tracks(audio_dir: str, tracks_csv: str, subset: str = "medium",
                label: str = "top_genre", genres_csv: str | None = None) -> Listing:
    """Lists the tracks of an FMA subset with their official split and genre labels.

    Args:
      audio_dir: e.g. `fma_medium` (holding `000/`, `001/`, ...).
      tracks_csv: fma_metadata/tracks.csv.
      subset: small, medium, large or full (cumulative).
      label: "top_genre" (one-hot) or "genres_all" (multi-hot).
      genres_csv: genres.csv for genre names (default: next to tracks.csv).

    Returns:
      The listing.
    """
    if subset not in SUBSETS + ("full",):
        raise ValueError(f"--subset {subset!r}: use one of {SUBSETS + ('full',)}")
    if label not in LABELS:
        raise ValueError(f"--label {label!r}: use one of {LABELS}")
    if not fileio.isdir(audio_dir):
        raise FileNotFoundError(f"--audio_dir {audio_dir}: not a folder; pass e.g. fma_medium/")
    columns, rows = read_tracks_csv(tracks_csv)
    c_split, c_subset = columns[("set", "split")], columns[("set", "subset")]
    c_top, c_all = columns[("track", "genre_top")], columns[("track", "genres_all")]
    c_duration = columns.get(("track", "duration"))
    seconds: dict[int, float] = {}
    where_file = fileio.basename(tracks_csv)
    builder = ListingBuilder(audio_dir)
    selected = []
    for line, fields in rows:
        where = f"{where_file} line {line}"
        try:
            track_id = int(fields[0])
        except ValueError:
            builder.skip(fields[0], f"track id is not a number ({where})")
            continue
        row_subset = fields[c_subset]
        if subset != "full" and (row_subset not in SUBSETS
                                 or SUBSETS.index(row_subset) > SUBSETS.index(subset)):
            continue
        try:
            split = normalise_split(fields[c_split])
            genres_all = [int(g) for g in ast.literal_eval(fields[c_all] or "[]")]
        except (ValueError, SyntaxError) as error:
            builder.skip(audio_path(track_id), f"bad split or genres_all ({where}): {error}")
            continue
        selected.append((track_id, split, fields[c_top], genres_all, where))
        seconds[track_id] = CLIP_SECONDS
        if subset == "full" and c_duration is not None:  # fma_full holds untrimmed tracks
            try:
                seconds[track_id] = float(fields[c_duration])
            except ValueError:
                pass

    if label == "top_genre":
        tag_names = sorted({top for _, _, top, _, _ in selected if top})
    else:
        names = read_genre_names(genres_csv or fileio.join(fileio.dirname(tracks_csv),
                                                             "genres.csv"))
        ids = sorted({g for _, _, _, gs, _ in selected for g in gs})
        tag_names = [names.get(g, str(g)) for g in ids]
    for track_id, split, top, genres_all, where in selected:
        if label == "top_genre":
            labels = [1.0 if t == top else 0.0 for t in tag_names]
        else:
            labels = [1.0 if g in genres_all else 0.0 for g in ids]
        builder.add(audio_path(track_id), f"{track_id:06d}", split, labels, where)
    return Listing(dataset="fma", tracks=builder.tracks, tag_names=tag_names,
                   multi_label=label == "genres_all", skipped=builder.skipped,
                   est_seconds=[seconds[int(t.track_id)] for t in builder.tracks],
                   extra={"subset": subset, "label": label,
                          "split_source": "tracks.csv (set, split)"})
