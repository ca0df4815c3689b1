"""GTZAN: `genres/<genre>/<genre>.000NN.wav` (or the original `.au`) with 10 one-hot genres.

Default split: the fault-filtered lists of Kereliuk, Sturm & Larsen (coreyker/dnn-mgr,
443 / 197 / 290 tracks), shipped in `splits/gtzan/`. `--split_dir` takes other
`{train,valid,test}_filtered.txt` lists of the same format; `--split all` converts every file of
the tree into `train` (for pre-training, where no held-out GTZAN tracks are needed).
"""

from __future__ import annotations

import os

from data_tools.datasets.common import Listing, ListingBuilder
from mssl_tf import fileio

SPLIT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "splits", "gtzan")
LIST_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt",
              "test": "test_filtered.txt"}
EXTENSIONS = (".wav", ".au")
CLIP_SECONDS = 30.0


def genre_names(audio_dir: str) -> list[str]:
    """Sorted names of the genre folders (alphabetical = torchaudio's gtzan_genres order)."""
    if not fileio.isdir(audio_dir):
        raise FileNotFoundError(f"--audio_dir {audio_dir}: not a folder; pass the GTZAN `genres` "
                                "folder (genres/<genre>/<genre>.000NN.wav)")
    names = sorted(n for n in fileio.listdir(audio_dir) if fileio.isdir(fileio.join(audio_dir, n))
                   and not n.startswith("."))
    if not names:
        raise ValueError(f"--audio_dir {audio_dir}: no genre folders found; expected "
                         "genres/<genre>/<genre>.000NN.wav")
    return names


def _existing_variant(audio_dir: str, relative: str) -> str:
    """The listed path, or the same stem with the other GTZAN extension when only that exists."""
    stem, ext = os.path.splitext(relative)
    if ext.lower() in EXTENSIONS and not fileio.isfile(fileio.join(audio_dir, relative)):
        for other in EXTENSIONS:
            if fileio.isfile(fileio.join(audio_dir, stem + other)):
                return stem + other
    return relative


def read_split_lists(split_dir: str) -> dict[str, list[tuple[int, str]]]:
    """Reads `{train,valid,test}_filtered.txt` into (line number, path) lists per split."""
    lists = {}
    for split, filename in LIST_FILES.items():
        path = fileio.join(split_dir, filename)
        if not fileio.isfile(path):
            raise FileNotFoundError(f"--split_dir {split_dir}: {filename} not found; expected "
                                    f"{', '.join(LIST_FILES.values())} with one "
                                    "genre/genre.000NN.wav per line")
        with fileio.open_text(path) as f:
            lists[split] = [(i + 1, line.strip()) for i, line in enumerate(f) if line.strip()]
    return lists


def list_tracks(audio_dir: str, split: str = "filtered",
                split_dir: str | None = None) -> Listing:
    """Lists GTZAN tracks with one-hot genre labels.

    Args:
      audio_dir: the `genres` folder.
      split: "filtered" (the fault-filtered lists) or "all" (every file, all in train).
      split_dir: folder with other `{train,valid,test}_filtered.txt` lists.

    Returns:
      The listing; tag_names are the genre folder names.
    """
    genres = genre_names(audio_dir)
    builder = ListingBuilder(audio_dir)

    def add(relative: str, split_name: str, where: str) -> None:
        genre = relative.replace("\\", "/").split("/")[0]
        if genre not in genres and fileio.resolve_under(audio_dir, relative) is not None:
            builder.skip(relative, f"genre folder {genre!r} not in {audio_dir} ({where})")
            return
        one_hot = [1.0 if g == genre else 0.0 for g in genres]  # escaping paths: rejected by add
        track_id = os.path.splitext(os.path.basename(relative))[0]  # "blues.00012", as torchaudio
        builder.add(relative, track_id, split_name, one_hot, where)

    if split == "all":
        for genre in genres:
            for name in sorted(fileio.listdir(fileio.join(audio_dir, genre))):
                if os.path.splitext(name)[1].lower() in EXTENSIONS:
                    add(f"{genre}/{name}", "train", f"{genre}/")
        source = "all files (train only)"
    elif split == "filtered":
        lists = read_split_lists(split_dir or SPLIT_DIR)
        for split_name, entries in lists.items():
            for line, relative in entries:
                add(_existing_variant(audio_dir, relative), split_name,
                    f"{LIST_FILES[split_name]} line {line}")
        source = (fileio.absolute(split_dir) if split_dir
                  else "fault-filtered (Kereliuk et al. 2015)")
    else:
        raise ValueError(f"--split {split!r}: use 'filtered' (default) or 'all'")
    return Listing(dataset="gtzan", tracks=builder.tracks, tag_names=genres, multi_label=False,
                   skipped=builder.skipped, est_seconds=[CLIP_SECONDS] * len(builder.tracks),
                   extra={"split_source": source, "label": "genre"})
