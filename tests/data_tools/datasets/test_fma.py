"""FMA listing: two-row tracks.csv, cumulative subsets, official splits, genre labels."""

import pytest

from data_tools.datasets import fma
from tests.data_tools import fixtures


def test_audio_path_layout():
    assert fma.audio_path(2) == "000/000002.mp3"
    assert fma.audio_path(155066) == "155/155066.mp3"


@pytest.mark.parametrize("subset", ["small", "medium", "large"])
def test_cumulative_subsets_splits_and_top_genre(tmp_path, subset):
    tree = fixtures.make_fma_tree(str(tmp_path), subset=subset)
    listing = fma.list_tracks(tree.audio_dir, tree.metadata["tracks_csv"], subset=subset)
    assert listing.tag_names == tree.tag_names and not listing.multi_label
    got = {t.track_id: (t.split, list(t.labels)) for t in listing.tracks}
    decodable = {k: (v[0], v[1]) for k, v in tree.expected.items()}
    # The listing keeps files that exist; corrupt/short ones are rejected later by the decoder.
    assert set(decodable) <= set(got)
    for track_id, value in decodable.items():
        assert got[track_id] == value
    reasons = {s["path"]: s["reason"] for s in listing.skipped}
    if subset != "small":
        assert reasons["099/099134.mp3"].startswith("file not found")
    assert "listed twice" in reasons["000/000005.mp3"]
    assert ("002/002001.mp3" in {t.source for t in listing.tracks}) == (subset == "large")


def test_genres_all_multi_hot_with_names(tmp_path):
    tree = fixtures.make_fma_tree(str(tmp_path), broken=False)
    listing = fma.list_tracks(tree.audio_dir, tree.metadata["tracks_csv"], label="genres_all")
    assert listing.multi_label
    assert listing.tag_names == ["Rock", "Electronic", "Hip-Hop", "Punk", "Experimental", "IDM"]
    labels = {t.track_id: dict(zip(listing.tag_names, t.labels)) for t in listing.tracks}
    assert [g for g, v in labels["000140"].items() if v] == ["Electronic", "Experimental", "IDM"]
    assert [g for g, v in labels["000010"].items() if v] == ["Rock", "Punk"]
    assert listing.extra["label"] == "genres_all"


def test_one_header_row_is_a_clear_error(tmp_path):
    path = fixtures.write_tracks_csv(str(tmp_path / "tracks.csv"),
                                     [{"track_id": 2}], header_rows=1)
    with pytest.raises(ValueError, match="first two rows are the column header"):
        fma.list_tracks(str(tmp_path), path)


def test_bad_options(tmp_path):
    tree = fixtures.make_fma_tree(str(tmp_path), broken=False)
    with pytest.raises(ValueError, match="--subset"):
        fma.list_tracks(tree.audio_dir, tree.metadata["tracks_csv"], subset="huge")
    with pytest.raises(ValueError, match="--label"):
        fma.list_tracks(tree.audio_dir, tree.metadata["tracks_csv"], label="mood")


def test_full_subset_sizes_shards_by_track_duration(tmp_path):
    tree = fixtures.make_fma_tree(str(tmp_path), broken=False, subset="large")
    medium = fma.list_tracks(tree.audio_dir, tree.metadata["tracks_csv"], subset="large")
    full = fma.list_tracks(tree.audio_dir, tree.metadata["tracks_csv"], subset="full")
    assert medium.est_seconds == [30.0] * len(medium.tracks)  # clips of the trimmed subsets
    by_id = dict(zip((t.track_id for t in full.tracks), full.est_seconds))
    assert by_id["000002"] == 30.0 and by_id["000140"] == 312.0
