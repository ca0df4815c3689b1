"""GTZAN listing: shipped fault-filtered lists, labels from folder names, .au, custom lists."""

import collections
import os

import pytest

from data_tools.datasets import gtzan
from tests.data_tools import fixtures


def test_shipped_filtered_lists_match_the_reference_counts():
    lists = gtzan.read_split_lists(gtzan.SPLIT_DIR)
    assert {s: len(e) for s, e in lists.items()} == {"train": 443, "valid": 197, "test": 290}
    paths = [p for entries in lists.values() for _, p in entries]
    assert len(set(paths)) == 930
    per_genre = collections.Counter(p.split("/")[0] for _, p in lists["train"])
    assert per_genre == {"blues": 46, "classical": 48, "country": 45, "disco": 42, "hiphop": 47,
                         "jazz": 43, "metal": 44, "pop": 41, "reggae": 43, "rock": 44}
    assert lists["train"][252][1] == "jazz/jazz.00054.wav"


def test_filtered_listing_labels_and_splits(tmp_path):
    tree = fixtures.make_gtzan_tree(str(tmp_path))
    listing = gtzan.list_tracks(tree.audio_dir)
    assert listing.tag_names == list(fixtures.GTZAN_GENRES) and not listing.multi_label
    got = {t.track_id: (t.split, list(t.labels)) for t in listing.tracks}
    # The 1 s clip and the corrupt jazz.00054 are listed here and rejected by the decoder.
    assert set(got) == set(tree.expected) | {"blues.00012", "jazz.00054"}
    for track_id, (split, labels, *_rest) in tree.expected.items():
        assert got[track_id] == (split, labels)
    au = [t for t in listing.tracks if t.path.endswith(".au")]
    assert len(au) == 1  # the list says .wav, the original release has .au
    missing = [s for s in listing.skipped if s["reason"].startswith("file not found")]
    assert len(missing) == 930 - len(got)
    assert not any(t.source.endswith("00099x.wav") for t in listing.tracks)


def test_split_all_puts_every_file_in_train(tmp_path):
    tree = fixtures.make_gtzan_tree(str(tmp_path))
    listing = gtzan.list_tracks(tree.audio_dir, split="all")
    n_files = sum(len(f) for _, _, f in os.walk(tree.audio_dir))
    assert len(listing.tracks) == n_files
    assert {t.split for t in listing.tracks} == {"train"}


def test_custom_split_dir_with_escape_and_duplicate(tmp_path):
    tree = fixtures.make_gtzan_tree(str(tmp_path), broken=False)
    split_dir = fixtures.write_gtzan_split_dir(str(tmp_path / "lists"), {
        "train": ["blues/blues.00029.wav", "../../../etc/passwd"],
        "valid": ["hiphop/hiphop.00091.wav"],
        "test": ["blues/blues.00029.wav", "nogenre/nogenre.00001.wav"]})
    listing = gtzan.list_tracks(tree.audio_dir, split_dir=split_dir)
    assert {(t.track_id, t.split) for t in listing.tracks} == {("blues.00029", "train"),
                                                               ("hiphop.00091", "valid")}
    reasons = {s["path"]: s["reason"] for s in listing.skipped}
    assert "escapes the audio root" in reasons["../../../etc/passwd"]
    assert "listed twice" in reasons["blues/blues.00029.wav"]
    assert "genre folder 'nogenre'" in reasons["nogenre/nogenre.00001.wav"]


def test_missing_list_file_is_a_clear_error(tmp_path):
    tree = fixtures.make_gtzan_tree(str(tmp_path), broken=False)
    with pytest.raises(FileNotFoundError, match="train_filtered.txt not found"):
        gtzan.list_tracks(tree.audio_dir, split_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a folder"):
        gtzan.list_tracks(str(tmp_path / "nothing"))
