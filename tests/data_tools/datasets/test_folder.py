"""Folder listing: recursive search of all formats, labels CSV, stable hash splits."""

import pytest

from data_tools.datasets import folder
from tests.data_tools import fixtures


def test_unlabelled_folder(tmp_path):
    tree = fixtures.make_folder_tree(str(tmp_path))
    (tmp_path / "my_music" / "notes.txt").write_text("not audio, wrong extension")
    listing = folder.list_tracks(tree.audio_dir)
    assert listing.dataset == "my_music" and listing.tag_names == []
    assert {t.track_id for t in listing.tracks} == set(tree.expected)
    assert all(t.labels == () and t.split == "train" for t in listing.tracks)
    assert listing.est_seconds == pytest.approx([3.0] * 5)


def test_labels_csv(tmp_path):
    labels = {"a/one.wav": ["rock"], "a/two.mp3": ["jazz", "live"], "b/three.flac": ["rock"],
              "b/c/four.ogg": [], "../escape.wav": ["rock"], "missing.wav": ["jazz"]}
    tree = fixtures.make_folder_tree(str(tmp_path), labels=labels)
    listing = folder.list_tracks(tree.audio_dir, tree.metadata["labels"])
    assert listing.tag_names == ["jazz", "live", "rock"] and listing.multi_label
    got = {t.track_id: list(t.labels) for t in listing.tracks}
    assert got == {"a/one": [0, 0, 1], "a/two": [1, 1, 0], "b/three": [0, 0, 1],
                   "b/c/four": [0, 0, 0]}
    reasons = {s["path"]: s["reason"] for s in listing.skipped}
    assert "escapes" in reasons["../escape.wav"]
    assert reasons["missing.wav"].startswith("file not found")
    assert "not listed" in reasons["five.au"]


def test_hash_split_is_stable_and_proportional(tmp_path):
    for i in range(200):
        (tmp_path / "d").mkdir(exist_ok=True)
        (tmp_path / "d" / f"{i:03d}.wav").write_bytes(b"")
    a = folder.list_tracks(str(tmp_path / "d"), valid_fraction=0.2, test_fraction=0.1)
    b = folder.list_tracks(str(tmp_path / "d"), valid_fraction=0.2, test_fraction=0.1)
    assert [(t.track_id, t.split) for t in a.tracks] == [(t.track_id, t.split) for t in b.tracks]
    counts = {s: sum(t.split == s for t in a.tracks) for s in ("train", "valid", "test")}
    assert 20 <= counts["test"] <= 40 and 25 <= counts["valid"] <= 55
    with pytest.raises(ValueError, match="sum to <= 1"):
        folder.list_tracks(str(tmp_path / "d"), valid_fraction=0.7, test_fraction=0.5)


def test_labels_csv_without_required_columns(tmp_path):
    tree = fixtures.make_folder_tree(str(tmp_path))
    bad = tmp_path / "bad.csv"
    bad.write_text("file,tag\na/one.wav,rock\n")
    with pytest.raises(ValueError, match="'path' and 'labels'"):
        folder.list_tracks(tree.audio_dir, str(bad))
