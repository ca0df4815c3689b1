"""What every dataset reader returns (a Listing) and the checks they share.

Readers only list tracks: they resolve paths, decide splits and label vectors, and record every
entry they reject (missing file, path outside the audio root, listed twice) with its reason.
Nothing here decodes audio or imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

from data_tools.audio_io import TrackSpec
from mssl_tf import fileio

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "valid": "valid", "validation": "valid", "val": "valid",
    "test": "test", "testing": "test",
}


def normalise_split(name: str) -> str:
    """Maps a source's split name (training/validation/val/testing/...) to train/valid/test.

    Raises:
      ValueError: the name is not a known split name.
    """
    key = name.strip().lower()
    if key not in SPLIT_ALIASES:
        raise ValueError(f"unknown split name {name!r}; expected one of {sorted(SPLIT_ALIASES)}")
    return SPLIT_ALIASES[key]


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` (for hash-based split assignment)."""
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclasses.dataclass
class Listing:
    """The tracks of one dataset conversion.

    Attributes:
      dataset: dataset name used in shard names ("fma", "gtzan", "mtat", or the folder's name).
      tracks: tracks to convert (each with its split and label vector).
      tag_names: names of the label vector's entries (empty when unlabelled).
      multi_label: True for multi-hot labels (tags), False for one-hot (genre classes).
      skipped: entries rejected while listing, as {"path", "reason"} dicts.
      est_seconds: expected duration per track (same order as `tracks`), used to size shards.
      extra: more manifest entries (label choice, split source, warnings).
    """

    dataset: str
    tracks: list[TrackSpec]
    tag_names: list[str]
    multi_label: bool
    skipped: list[dict] = dataclasses.field(default_factory=list)
    est_seconds: list[float] = dataclasses.field(default_factory=list)
    extra: dict = dataclasses.field(default_factory=dict)


class ListingBuilder:
    """Collects tracks, rejecting missing files, escaping paths and duplicates with reasons."""

    def __init__(self, audio_root: str):
        """Args: audio_root: folder that every audio path must stay inside."""
        self.audio_root = audio_root
        self.tracks: list[TrackSpec] = []
        self.skipped: list[dict] = []
        self._seen: dict[str, str] = {}

    def skip(self, path: str, reason: str) -> None:
        """Records a rejected entry."""
        self.skipped.append({"path": path, "reason": reason})

    def add(self, relative_path: str, track_id: str, split: str,
            labels: Sequence[float] = (), where: str = "") -> bool:
        """Adds one track unless its path or id is bad; returns whether it was added.

        Args:
          relative_path: audio path relative to the audio root, as the metadata gives it.
          track_id: the track's id (must be unique in the dataset).
          split: train/valid/test.
          labels: the label vector.
          where: where the entry came from (e.g. "tracks.csv line 7"), for messages.
        """
        origin = f" ({where})" if where else ""
        path = fileio.resolve_under(self.audio_root, relative_path)
        if path is None:
            self.skip(relative_path, f"path escapes the audio root {self.audio_root}{origin}")
            return False
        if track_id in self._seen:
            self.skip(relative_path, f"track {track_id!r} listed twice{origin}; the first entry "
                                     f"({self._seen[track_id]}) is kept")
            return False
        if not fileio.isfile(path):
            self.skip(relative_path, f"file not found under {self.audio_root}{origin}")
            return False
        self._seen[track_id] = where or relative_path
        self.tracks.append(TrackSpec(path=path, track_id=track_id, split=split,
                                     labels=tuple(float(v) for v in labels),
                                     source=relative_path))
        return True
