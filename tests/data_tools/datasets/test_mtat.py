"""MagnaTagATune listing: annotations format, Pons 2017 split arithmetic, tag order, split files."""

import logging

import numpy as np
import pytest

from data_tools.datasets import mtat
from tests.data_tools import fixtures


@pytest.mark.slow
def test_pons2017_counts_on_full_size_annotations(tmp_path):
    # 25,863 rows with the real per-folder counts, audio for only 3 of them: the split arithmetic
    # must give 18,706 / 1,825 / 5,329 and drop exactly the 3 known broken clips. (50 tag
    # columns instead of 188 keep the file small; the split does not depend on them.)
    tags = fixtures.mtat_tag_columns(num_tags=50)
    rows = fixtures.pons_scale_rows(tags)
    assert len(rows) == 25863
    path = fixtures.write_mtat_annotations(str(tmp_path / "annotations_final.csv"), rows, tags)
    audio_dir = tmp_path / "mp3"
    with_audio = [rows[0][2], rows[20000][2], rows[-1][2]]
    for rel in with_audio:
        fixtures.write_audio(str(audio_dir / rel), 0.1, 16000)
    counts = {"train": 0, "valid": 0, "test": 0}
    for clip_id, _, rel in rows:
        if str(clip_id) not in mtat.BROKEN_CLIPS:
            counts[mtat.pons2017_split(rel)] += 1
    assert counts == {"train": 18706, "valid": 1825, "test": 5329}

    listing = mtat.list_tracks(str(audio_dir), path)
    assert sorted(t.source for t in listing.tracks) == sorted(with_audio)
    assert [t.split for t in sorted(listing.tracks, key=lambda t: int(t.track_id))] == [
        "train", "valid", "test"]
    broken = [s for s in listing.skipped if "known broken clip" in s["reason"]]
    assert sorted(s["path"] for s in broken) == sorted(fixtures.MTAT_BROKEN.values())
    missing = [s for s in listing.skipped if s["reason"].startswith("file not found")]
    assert len(missing) == 25863 - 3 - 3
    assert len(listing.skipped) == 25863 - 3


def test_labels_in_pons_order_and_untagged_clips_kept(tmp_path):
    tree = fixtures.make_mtat_tree(str(tmp_path), broken=False)
    listing = mtat.list_tracks(tree.audio_dir, tree.metadata["annotations"])
    assert listing.tag_names == list(mtat.PONS_TOP50) == tree.tag_names
    assert listing.extra["tag_order"] == "pons2017" and listing.multi_label
    got = {t.track_id: (t.split, list(t.labels)) for t in listing.tracks}
    assert got == {k: (v[0], v[1]) for k, v in tree.expected.items()}
    untagged = [t for t in listing.tracks if not any(t.labels)]
    assert len(untagged) == 1 and untagged[0].split == "valid"


def test_top_n_frequency_order_and_warning(tmp_path, caplog):
    tree = fixtures.make_mtat_tree(str(tmp_path), broken=False)
    listing = mtat.list_tracks(tree.audio_dir, tree.metadata["annotations"], top_n=5)
    assert listing.tag_names == list(mtat.PONS_TOP50[:5])  # most frequent first
    assert listing.extra["tag_order"] == "frequency"
    assert all(len(t.labels) == 5 for t in listing.tracks)
    with caplog.at_level(logging.WARNING):
        everything = mtat.list_tracks(tree.audio_dir, tree.metadata["annotations"], top_n=500)
    assert len(everything.tag_names) == 188
    assert "only 188 tags" in caplog.text


def test_bad_entries_are_listed(tmp_path):
    tree = fixtures.make_mtat_tree(str(tmp_path))
    listing = mtat.list_tracks(tree.audio_dir, tree.metadata["annotations"])
    reasons = {s["path"]: s["reason"] for s in listing.skipped}
    assert "escapes the audio root" in reasons["../../outside.mp3"]
    for rel in fixtures.MTAT_BROKEN.values():
        assert "known broken clip" in reasons[rel]
    # The corrupt and text files exist, so they are listed; decoding rejects them later.
    assert {"2/corrupt_clip-0-29.mp3", "2/text_clip-0-29.mp3"} <= {t.source for t in listing.tracks}


def test_duplicate_clip_id_keeps_first(tmp_path):
    tags = fixtures.mtat_tag_columns()
    zero = [0] * len(tags)
    rows = [(7, zero, "0/a-0-29.mp3"), (7, zero, "0/b-0-29.mp3")]
    path = fixtures.write_mtat_annotations(str(tmp_path / "a.csv"), rows, tags)
    for rel in ("0/a-0-29.mp3", "0/b-0-29.mp3"):
        fixtures.write_audio(str(tmp_path / "mp3" / rel), 0.1, 16000)
    listing = mtat.list_tracks(str(tmp_path / "mp3"), path)
    assert [t.source for t in listing.tracks] == ["0/a-0-29.mp3"]
    assert "listed twice" in listing.skipped[0]["reason"]


@pytest.mark.parametrize("style", ["minzwon_npy", "pons_tsv", "plain_ids"])
def test_split_files_selectable_by_path(tmp_path, style):
    tree = fixtures.make_mtat_tree(str(tmp_path), broken=False)
    _, rows = mtat.read_annotations(tree.metadata["annotations"])
    ids = sorted(tree.expected, key=int)
    by_id = {r[0]: r for r in rows}
    # A different split than Pons': first clip to test, last two to valid, the rest to train.
    assign = {"test": ids[:1], "valid": ids[-2:], "train": ids[1:-2]}
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    for split, members in assign.items():
        if style == "minzwon_npy":
            entries = [f"{rows.index(by_id[i])}\t{by_id[i][2]}" for i in members]
            np.save(split_dir / f"{split}.npy", np.asarray(entries))
        elif style == "pons_tsv":
            name = {"train": "train", "valid": "val", "test": "test"}[split] + "_gt_mtt.tsv"
            (split_dir / name).write_text("".join(f"{i}\t[0, 1]\n" for i in members))
        else:
            (split_dir / f"{split}.txt").write_text("".join(f"{i}\n" for i in members))
    listing = mtat.list_tracks(tree.audio_dir, tree.metadata["annotations"], split=str(split_dir))
    got = {s: sorted((t.track_id for t in listing.tracks if t.split == s), key=int)
           for s in assign}
    assert got == {s: sorted(m, key=int) for s, m in assign.items()}


def test_wrong_annotations_header_is_a_clear_error(tmp_path):
    path = tmp_path / "annotations_final.csv"
    path.write_text("clip_id,guitar,mp3_path\n2,1,0/a.mp3\n")
    with pytest.raises(ValueError, match="tab-separated header"):
        mtat.list_tracks(str(tmp_path), str(path))
