"""MagnaTagATune: `annotations_final.csv` (tab-separated, 188 tags) + mp3 folders `0..f`.

Labels: multi-hot over the `top_n` most frequent tags (default 50); when these are the Pons et al.
top-50 they are stored in the Pons/CLMR order (data/index/mtt/output_labels_mtt.txt), so that label
columns line up with models trained by CLMR. Default split: Pons et al. 2017 (musicnn-training
aux/mtt/partition_gt.py): folder digit 0-b train, c valid, d-f test, without the 3 broken clips ->
18,706 / 1,825 / 5,329; clips without any top-50 tag are kept. `--split DIR` reads other split
files (minzwon's {train,valid,test}.npy, Pons' *_gt_mtt.tsv, or plain lists of clip ids/paths).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence

import numpy as np

from data_tools.datasets.common import Listing, ListingBuilder, normalise_split
from mssl_tf import fileio

log = logging.getLogger(__name__)

CLIP_SECONDS = 29.1
# clip_id -> mp3_path of the clips that partition_gt.py drops (empty or corrupt mp3).
BROKEN_CLIPS = {
    "35644": "6/norine_braun-now_and_zen-08-gently-117-146.mp3",
    "55753": "8/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-"
             "204-233.mp3",
    "57881": "9/american_baroque-dances_and_suites_of_rameau_and_couperin-25-le_petit_rien_xiveme_"
             "ordre_couperin-88-117.mp3",
}
PONS_TOP50 = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird",
    "country", "metal", "female voice", "choral")
SPLIT_FILE_NAMES = {
    "train": ("train.npy", "train.txt", "train.tsv", "train_gt_mtt.tsv"),
    "valid": ("valid.npy", "valid.txt", "valid.tsv", "val.npy", "val.txt", "val_gt_mtt.tsv"),
    "test": ("test.npy", "test.txt", "test.tsv", "test_gt_mtt.tsv"),
}


def read_annotations(path: str) -> tuple[list[str], list[tuple[str, list[int], str, int]]]:
    """Reads annotations_final.csv.

    Returns:
      `(tag_names, rows)`: the 188 tag names in column order and rows of
      `(clip_id, tag values, mp3_path, line number)`.

    Raises:
      ValueError: the header is not `clip_id, <tags>, mp3_path` or a row is malformed.
    """
    with fileio.open_text(path) as f:
        reader = csv.reader(f, delimiter="\t", quotechar='"')
        header = next(reader, [])
        if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
            raise ValueError(f"--annotations {path}: expected a tab-separated header "
                             f"'clip_id<TAB><tags...><TAB>mp3_path', got {header[:3]}...; pass "
                             "MagnaTagATune's annotations_final.csv")
        tags = header[1:-1]
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"--annotations {path} line {line}: {len(row)} columns, header "
                                 f"has {len(header)}")
            try:
                values = [int(v) for v in row[1:-1]]
            except ValueError:
                raise ValueError(
                    f"--annotations {path} line {line}: tag values must be 0/1") from None
            rows.append((row[0], values, row[-1], line))
    return tags, rows


def top_tags(tags: Sequence[str], rows: Sequence[tuple], top_n: int) -> tuple[list[str], str]:
    """The `top_n` most frequent tags and the order used ("pons2017" or "frequency").

    Ties are broken by column order. With fewer tags than `top_n`, all are used with a warning.
    """
    if top_n > len(tags):
        log.warning("--top_n %d but the annotations hold only %d tags; using all of them",
                    top_n, len(tags))
        top_n = len(tags)
    counts = np.sum(np.asarray([r[1] for r in rows], dtype=np.int64).reshape(-1, len(tags)), axis=0)
    order = sorted(range(len(tags)), key=lambda i: (-int(counts[i]), i))[:top_n]
    chosen = [tags[i] for i in order]
    if top_n == len(PONS_TOP50) and set(chosen) == set(PONS_TOP50):
        return list(PONS_TOP50), "pons2017"
    return chosen, "frequency"


def pons2017_split(mp3_path: str) -> str | None:
    """Split of a clip by its folder digit (0-b train, c valid, d-f test); None if not 0-f."""
    folder = mp3_path.split("/")[0]
    if len(folder) != 1 or folder.lower() not in "0123456789abcdef":
        return None
    digit = int(folder, 16)
    return "train" if digit < 12 else ("valid" if digit == 12 else "test")


def _read_entries(path: str) -> list[str]:
    if path.endswith(".npy"):
        return [str(v) for v in np.load(io.BytesIO(fileio.read_bytes(path)),
                                        allow_pickle=False).tolist()]
    with fileio.open_text(path) as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def read_split_files(split_dir: str) -> dict[str, list[str]]:
    """Entries (clip ids or mp3 paths) per split from a folder of split files.

    Each line (or .npy entry) is tab-separated; a field ending in `.mp3` is taken as the path,
    otherwise the first field is the clip id. This reads minzwon's `"<row>\\t<path>"` .npy files,
    Pons' `<clip_id>\\t<labels>` *_gt_mtt.tsv files and plain lists of ids or paths.
    """
    if not fileio.isdir(split_dir):
        raise FileNotFoundError(f"--split {split_dir}: not 'pons2017' and not a folder of split "
                                "files ({train,valid,test}.npy/.txt/.tsv or *_gt_mtt.tsv)")
    out = {}
    for split, names in SPLIT_FILE_NAMES.items():
        found = [n for n in names if fileio.isfile(fileio.join(split_dir, n))]
        if not found:
            raise FileNotFoundError(f"--split {split_dir}: no {split} file (looked for "
                                    f"{', '.join(names)})")
        entries = []
        for raw in _read_entries(fileio.join(split_dir, found[0])):
            fields = raw.split("\t")
            paths = [f for f in fields if f.endswith(".mp3")]
            entries.append(paths[0] if paths else fields[0].strip())
        out[normalise_split(split)] = entries
    return out


def list_tracks(audio_dir: str, annotations: str, split: str = "pons2017",
                top_n: int = 50) -> Listing:
    """Lists MTAT clips with multi-hot top-N tag labels.

    Args:
      audio_dir: the folder holding `0/ ... f/`.
      annotations: annotations_final.csv.
      split: "pons2017" or a folder of split files (see `read_split_files`).
      top_n: number of most frequent tags in the label vector.

    Returns:
      The listing (clips whose mp3 is missing are listed as skipped).
    """
    if not fileio.isdir(audio_dir):
        raise FileNotFoundError(f"--audio_dir {audio_dir}: not a folder; pass the folder holding "
                                "MTAT's 0/ ... f/ mp3 folders")
    tags, rows = read_annotations(annotations)
    tag_names, tag_order = top_tags(tags, rows, top_n)
    column = {t: i for i, t in enumerate(tags)}
    label_columns = [column[t] for t in tag_names]
    builder = ListingBuilder(audio_dir)
    where = fileio.basename(annotations)
    if split == "pons2017":
        assignment = []
        for clip_id, values, mp3_path, line in rows:
            if clip_id in BROKEN_CLIPS:
                builder.skip(mp3_path, f"known broken clip {clip_id} (excluded by the Pons 2017 "
                                       "split)")
                continue
            split_name = pons2017_split(mp3_path)
            if fileio.resolve_under(audio_dir, mp3_path) is None:
                builder.skip(mp3_path, f"path escapes the audio root {audio_dir} ({where} line "
                                       f"{line})")
                continue
            if split_name is None:
                builder.skip(mp3_path, f"folder is not one of 0-f ({where} line {line})")
                continue
            assignment.append((split_name, clip_id, values, mp3_path, line))
    else:
        by_id = {r[0]: r for r in rows}
        by_path = {r[2]: r for r in rows}
        assignment = []
        for split_name, entries in read_split_files(split).items():
            for entry in entries:
                row = by_path.get(entry) or by_id.get(entry)
                if row is None:
                    builder.skip(entry, f"in the {split_name} split file but not in {where}")
                    continue
                assignment.append((split_name, row[0], row[1], row[2], row[3]))
    for split_name, clip_id, values, mp3_path, line in assignment:
        builder.add(mp3_path, clip_id, split_name, [float(values[c]) for c in label_columns],
                    f"{where} line {line}")
    return Listing(dataset="mtat", tracks=builder.tracks, tag_names=tag_names, multi_label=True,
                   skipped=builder.skipped, est_seconds=[CLIP_SECONDS] * len(builder.tracks),
                   extra={"split_source": split if split == "pons2017" else fileio.absolute(split),
                          "tag_order": tag_order, "label": f"top{len(tag_names)}_tags"})
