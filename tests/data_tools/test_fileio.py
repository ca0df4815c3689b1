"""Conversion from a bucket: mssl_tf.fileio on local paths and URLs, and whole conversions
whose audio and metadata live on a non-local filesystem (TensorFlow's in-memory ram:// stands in
for gs://, through the same tf.io.gfile calls)."""

import json
import os

import pytest

from data_tools import audio_io, tfrecord_lib
from data_tools.datasets import folder, gtzan, mtat
from mssl_tf import fileio
from tests.data_tools import fixtures


def _reasons(listing, root: str) -> list:
    """Listing-time skips with the audio root left out (it differs between local and remote)."""
    return [(s["path"], s["reason"].replace(root, "ROOT")) for s in listing.skipped]


@pytest.fixture(params=["local", "remote"])
def tree(request, tmp_path):
    local = tmp_path / "t"
    (local / "a" / "b").mkdir(parents=True)
    (local / "a" / "x.csv").write_text("path,labels\r\none.wav,rock\r\n", newline="")
    (local / "a" / "b" / "y.bin").write_bytes(b"\x00\x01\x02")
    (local / "z.txt").write_text("")
    return str(local) if request.param == "local" else fixtures.upload_tree(str(local))


def test_file_operations_behave_alike_on_local_paths_and_urls(tree):
    assert fileio.isdir(tree) and fileio.isdir(fileio.join(tree, "a"))
    assert not fileio.isfile(fileio.join(tree, "a"))
    assert fileio.isfile(fileio.join(tree, "a", "x.csv"))
    assert not fileio.isfile(fileio.join(tree, "nothing")) and not fileio.isdir(
        fileio.join(tree, "nothing"))
    assert sorted(fileio.listdir(tree)) == ["a", "z.txt"]
    assert fileio.read_bytes(fileio.join(tree, "a", "b", "y.bin")) == b"\x00\x01\x02"
    assert fileio.getsize(fileio.join(tree, "a", "b", "y.bin")) == 3
    assert fileio.getsize(fileio.join(tree, "z.txt")) == 0
    with fileio.open_text(fileio.join(tree, "a", "x.csv")) as f:
        assert f.read() == "path,labels\r\none.wav,rock\r\n"  # newlines untranslated, for csv
    found = []
    for root, dirs, files in fileio.walk(tree):
        dirs[:] = [d for d in dirs if d != "b"]  # pruning works as with os.walk
        found += [fileio.relative_to(fileio.join(root, n), tree) for n in files]
    assert sorted(found) == ["a/x.csv", "z.txt"]
    assert fileio.dirname(fileio.join(tree, "a", "x.csv")) == fileio.join(tree, "a")
    for missing in (fileio.read_bytes, fileio.open_text):  # one error type for the CLI to report
        with pytest.raises(FileNotFoundError):
            missing(fileio.join(tree, "a", "missing.csv"))


@pytest.mark.parametrize("root", ["ram://b/audio", "gs://bucket/audio/"])
def test_paths_in_metadata_cannot_leave_a_remote_root(root):
    base = root.rstrip("/")
    assert fileio.resolve_under(root, "rock/x.wav") == f"{base}/rock/x.wav"
    assert fileio.resolve_under(root, "rock/../jazz/x.wav") == f"{base}/jazz/x.wav"
    assert fileio.resolve_under(root, "..foo.wav") == f"{base}/..foo.wav"
    for bad in ("../x.wav", "rock/../../x.wav", "/etc/passwd", "gs://other/x.wav", "", ".",
                "rock/.."):
        assert fileio.resolve_under(root, bad) is None, bad


def test_local_decoding_does_not_import_tensorflow(tmp_path):
    # Decode workers of a local conversion must stay TensorFlow-free (their memory budget).
    import subprocess
    import sys
    path = fixtures.write_audio(str(tmp_path / "a.wav"), 3.0, 22050)
    code = ("import sys; from data_tools import audio_io; "
            f"r = audio_io.process_track(audio_io.TrackSpec({path!r}, 'a', 'train'), 22050, 100); "
            "assert r.pcm.size > 0; print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_gtzan_from_a_bucket_gives_the_same_shards(tmp_path):
    tree = fixtures.make_gtzan_tree(str(tmp_path / "local"), seconds=3.0)
    split_dir = fixtures.write_gtzan_split_dir(str(tmp_path / "local" / "lists"),
                                               fixtures.gtzan_reference_lists())
    remote_audio = fixtures.upload_tree(tree.audio_dir)
    remote_lists = fixtures.upload_tree(split_dir)
    local = gtzan.list_tracks(tree.audio_dir, split_dir=split_dir)
    remote = gtzan.list_tracks(remote_audio, split_dir=remote_lists)
    assert [t.track_id for t in remote.tracks] == [t.track_id for t in local.tracks]
    assert all(t.path.startswith("ram://") for t in remote.tracks)
    assert _reasons(remote, remote_audio) == _reasons(local, tree.audio_dir)
    out_local, out_remote = str(tmp_path / "out_l"), str(tmp_path / "out_r")
    m_local = tfrecord_lib.convert(local, out_local, workers=1, tracks_per_shard=4,
                                   progress=False)
    m_remote = tfrecord_lib.convert(remote, out_remote, workers=1, tracks_per_shard=4,
                                    progress=False)
    local_shards = fixtures.shard_bytes(out_local)
    assert fixtures.shard_bytes(out_remote) == local_shards and local_shards
    # The corrupt, the too-short file: skipped for the same reasons from the bucket.
    reasons = lambda m, root: [(s["path"], s["reason"].replace(root, "ROOT"))  # noqa: E731
                               for s in m["skipped"]]
    assert reasons(m_remote, remote_audio) == reasons(m_local, tree.audio_dir)
    assert len(m_local["skipped"]) >= 2


@pytest.mark.slow
def test_folder_and_mtat_from_a_bucket(tmp_path):
    labels = {"a/one.wav": ["rock"], "a/two.mp3": ["jazz"], "b/three.flac": ["rock"],
              "b/c/four.ogg": ["jazz"], "five.au": ["jazz"]}
    tree = fixtures.make_folder_tree(str(tmp_path / "f"), labels=labels)
    remote_dir = fixtures.upload_tree(tree.audio_dir)
    remote_labels = fixtures.upload_tree(os.path.dirname(tree.metadata["labels"]))
    remote_labels += "/" + os.path.basename(tree.metadata["labels"])
    local = folder.list_tracks(tree.audio_dir, tree.metadata["labels"], name="music")
    remote = folder.list_tracks(remote_dir, remote_labels, name="music")
    assert [(t.track_id, t.labels, t.split) for t in remote.tracks] == [
        (t.track_id, t.labels, t.split) for t in local.tracks]
    assert remote.est_seconds == local.est_seconds  # durations read from the bucket's files
    for listing, out in ((local, "l"), (remote, "r")):
        tfrecord_lib.convert(listing, str(tmp_path / out), workers=1, progress=False)
    assert fixtures.shard_bytes(str(tmp_path / "r")) == fixtures.shard_bytes(str(tmp_path / "l"))

    mt = fixtures.make_mtat_tree(str(tmp_path / "m"), seconds=3.0)
    remote_mp3 = fixtures.upload_tree(mt.audio_dir)
    remote_ann = fixtures.upload_tree(os.path.dirname(mt.metadata["annotations"]))
    remote_ann += "/" + os.path.basename(mt.metadata["annotations"])
    a = mtat.list_tracks(mt.audio_dir, mt.metadata["annotations"])
    b = mtat.list_tracks(remote_mp3, remote_ann)
    assert [(t.track_id, t.split, t.labels) for t in b.tracks] == [
        (t.track_id, t.split, t.labels) for t in a.tracks]
    assert b.tag_names == a.tag_names
    assert _reasons(b, remote_mp3) == _reasons(a, mt.audio_dir) and a.skipped


def test_a_corrupt_file_in_a_bucket_is_skipped_with_its_reason(tmp_path):
    local = tmp_path / "bad"
    local.mkdir()
    fixtures.write_corrupt_mp3(str(local / "x.mp3"))
    fixtures.write_empty(str(local / "y.wav"))
    remote = fixtures.upload_tree(str(local))
    for name, reason in (("x.mp3", "not decodable audio"), ("y.wav", "empty file"),
                         ("nothing.wav", "file not found")):
        result = audio_io.process_track(audio_io.TrackSpec(f"{remote}/{name}", name, "train"),
                                        22050, 100)
        assert isinstance(result, audio_io.SkippedTrack) and reason in result.reason, result
    json.dumps(result.reason)  # reasons go into manifest.json
