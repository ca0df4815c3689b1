"""Conversion stages: ordering, shard plans, atomic writes, determinism, resume, output guards."""

import json
import os
import time

import pytest

from data_tools import manifest as manifest_lib
from data_tools import tfrecord_lib
from data_tools.audio_io import TrackSpec
from data_tools.datasets import folder, gtzan
from data_tools.datasets.common import Listing
from mssl_tf import fileio
from mssl_tf.data import features
from tests.data_tools import fixtures


def _specs(n, split="train"):
    return [TrackSpec(path=f"/x/{i}.wav", track_id=f"t{i:03d}", split=split) for i in range(n)]


@pytest.fixture(scope="module")
def gtzan_listing(tmp_path_factory):
    tree = fixtures.make_gtzan_tree(str(tmp_path_factory.mktemp("gtzan")), seconds=3.0)
    return gtzan.list_tracks(tree.audio_dir)


def test_order_is_fixed_by_ids_not_input_order():
    specs = _specs(30)
    a = tfrecord_lib.order_tracks(specs)
    b = tfrecord_lib.order_tracks(list(reversed(specs)))
    assert a == b and a != specs
    assert tfrecord_lib.order_tracks(specs, seed=1) != a
    # Removing a track leaves the relative order of the others unchanged.
    assert tfrecord_lib.order_tracks(specs[1:]) == [s for s in a if s.track_id != "t000"]


def test_plan_by_size_and_by_count():
    specs = _specs(10) + _specs(3, "test")
    specs = [TrackSpec(s.path, s.track_id + s.split, s.split) for s in specs]
    one_track = 30 * features.SAMPLE_RATE * 2  # 30 s of int16 at 22,050 Hz = 1,323,000 bytes
    plans = tfrecord_lib.plan_shards("ds", specs, [30.0] * 13, shard_bytes=2 * one_track + 10)
    assert [(p.split, len(p.tracks)) for p in plans] == [("train", 2)] * 5 + [("test", 2),
                                                                               ("test", 1)]
    assert plans[0].name == "ds-train-00000-of-00005.tfrecord"
    assert plans[-1].name == "ds-test-00001-of-00002.tfrecord"
    counted = tfrecord_lib.plan_shards("ds", specs, [30.0] * 13, tracks_per_shard=4)
    assert [len(p.tracks) for p in counted] == [4, 4, 2, 3]
    assert [t for p in counted for t in p.tracks] == specs  # order kept, nothing lost
    # A track larger than the target gets a shard of its own instead of an empty shard.
    big = tfrecord_lib.plan_shards("ds", specs[:3], [600.0, 1.0, 1.0], shard_bytes=one_track)
    assert [len(p.tracks) for p in big] == [1, 2]


def test_write_shard_is_atomic(tmp_path):
    path = str(tmp_path / "ds-train-00000-of-00001.tfrecord")

    def records():
        yield b"one"
        yield b"two"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tfrecord_lib.write_shard(path, records())
    assert os.listdir(tmp_path) == []
    info = tfrecord_lib.write_shard(path, iter([b"one", b"two"]))
    assert info["num_records"] == 2 and info["bytes"] == os.path.getsize(path)
    assert info["sha256"] == fileio.sha256_file(path)


@pytest.mark.slow
def test_same_input_gives_byte_identical_shards_for_any_worker_count(tmp_path, gtzan_listing):
    one = tfrecord_lib.convert(gtzan_listing, str(tmp_path / "w1"), workers=1, tracks_per_shard=2,
                               progress=False)
    two = tfrecord_lib.convert(gtzan_listing, str(tmp_path / "w2"), workers=2, tracks_per_shard=2,
                               progress=False)
    a, b = fixtures.shard_bytes(str(tmp_path / "w1")), fixtures.shard_bytes(str(tmp_path / "w2"))
    assert list(a) == list(b) and len(a) == 4  # 3 / 2 / 2 listed tracks, 2 per shard
    assert a == b
    assert one["plan_fingerprint"] == two["plan_fingerprint"]
    assert one["skipped"] == two["skipped"] and one["splits"] == two["splits"]


def test_resume_after_a_crash_keeps_finished_shards(tmp_path, gtzan_listing):
    out = str(tmp_path / "out")

    def crash_after_first(name):
        raise RuntimeError(f"simulated crash after {name}")

    with pytest.raises(RuntimeError, match="simulated crash"):
        tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=1, progress=False,
                             on_shard_done=crash_after_first)
    finished = fixtures.shard_bytes(out)
    assert len(finished) == 1
    assert not os.path.exists(os.path.join(out, features.MANIFEST_NAME))
    problems = manifest_lib.verify(out)
    assert problems and "manifest.json not found" in problems[0]
    (name, content), = finished.items()
    stamp = os.stat(os.path.join(out, name)).st_mtime_ns
    # A leftover temporary file (kill -9 mid-shard) is cleaned up by the rerun.
    open(os.path.join(out, "gtzan-test-00000-of-00001.tfrecord.incomplete"), "wb").close()

    resumed = []
    tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=1, progress=False,
                         on_shard_done=resumed.append)
    assert name not in resumed and len(resumed) == 6  # 7 listed tracks, one shard each
    assert os.stat(os.path.join(out, name)).st_mtime_ns == stamp
    assert manifest_lib.verify(out) == []
    reference = str(tmp_path / "reference")
    tfrecord_lib.convert(gtzan_listing, reference, workers=1, tracks_per_shard=1, progress=False)
    assert fixtures.shard_bytes(out) == fixtures.shard_bytes(reference)
    assert not os.path.exists(os.path.join(out, manifest_lib.PROGRESS_DIR))


def test_resume_redoes_a_finished_shard_damaged_since(tmp_path, gtzan_listing, caplog):
    out = str(tmp_path / "out")
    stop = []

    def crash_after_second(name):
        stop.append(name)
        if len(stop) == 2:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=1, progress=False,
                             on_shard_done=crash_after_second)
    damaged, intact = stop
    path = os.path.join(out, damaged)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the size still matches its record
    open(path, "wb").write(bytes(data))

    resumed = []
    with caplog.at_level("WARNING"):
        tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=1, progress=False,
                             on_shard_done=resumed.append)
    assert damaged in resumed and intact not in resumed
    assert f"{damaged}: sha256 differs" in caplog.text
    assert manifest_lib.verify(out) == []
    reference = str(tmp_path / "reference")
    tfrecord_lib.convert(gtzan_listing, reference, workers=1, tracks_per_shard=1, progress=False)
    assert fixtures.shard_bytes(out) == fixtures.shard_bytes(reference)


def test_resume_survives_a_truncated_completion_record(tmp_path, gtzan_listing):
    out = str(tmp_path / "out")

    def crash(name):
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=1, progress=False,
                             on_shard_done=crash)
    progress = os.path.join(out, manifest_lib.PROGRESS_DIR)
    (record,) = [n for n in os.listdir(progress) if n.endswith(".tfrecord.json")]
    open(os.path.join(progress, record), "w").write('{"num_rec')  # a kill while writing it
    resumed = []
    tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=1, progress=False,
                         on_shard_done=resumed.append)
    assert record[:-len(".json")] in resumed
    assert manifest_lib.verify(out) == []


def test_finished_output_is_not_rewritten(tmp_path, gtzan_listing):
    out = str(tmp_path / "out")
    first = tfrecord_lib.convert(gtzan_listing, out, workers=1, progress=False)
    calls = []
    again = tfrecord_lib.convert(gtzan_listing, out, workers=1, progress=False,
                                 on_shard_done=calls.append)
    assert calls == [] and again == first


def test_output_folder_guards(tmp_path, gtzan_listing):
    out = str(tmp_path / "out")
    tfrecord_lib.convert(gtzan_listing, out, workers=1, progress=False)
    other_tree = fixtures.make_folder_tree(str(tmp_path))
    other = folder.list_tracks(other_tree.audio_dir)
    with pytest.raises(ValueError, match="conversion of dataset 'gtzan'.*--overwrite"):
        tfrecord_lib.convert(other, out, workers=1, progress=False)
    with pytest.raises(ValueError, match="finished conversion of other input or options"):
        tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=1, progress=False)

    # Shards of another dataset without a manifest are refused too.
    os.remove(os.path.join(out, features.MANIFEST_NAME))
    with pytest.raises(ValueError, match="holds shards of other datasets: gtzan"):
        tfrecord_lib.convert(other, out, workers=1, progress=False)

    # A manifest of another schema version.
    manifest_path = os.path.join(out, features.MANIFEST_NAME)
    with open(manifest_path, "w") as f:
        json.dump({"dataset": "gtzan", "schema_version": 0}, f)
    with pytest.raises(ValueError, match="schema version 0, this tool writes 1"):
        tfrecord_lib.convert(gtzan_listing, out, workers=1, progress=False)

    manifest = tfrecord_lib.convert(other, out, workers=1, progress=False, overwrite=True)
    assert manifest["dataset"] == "my_music"
    assert not any(n.startswith("gtzan-") for n in os.listdir(out))
    assert manifest_lib.verify(out) == []


def test_label_vectors_must_have_one_length(tmp_path):
    listing = Listing("ds", [TrackSpec("/a.wav", "a", "train", (1.0,)),
                             TrackSpec("/b.wav", "b", "train", (1.0, 0.0))], ["x"], False,
                      est_seconds=[1.0, 1.0])
    with pytest.raises(ValueError, match="different lengths"):
        tfrecord_lib.convert(listing, str(tmp_path), workers=1, progress=False)


def test_writes_through_tf_gfile_to_non_local_filesystems(gtzan_listing):
    # TensorFlow's in-memory ram:// filesystem stands in for gs://: every output file access
    # (shards, temporary names, renames, manifest, progress records) must go through tf.io.gfile.
    import tensorflow as tf
    out = "ram://bucket/gtzan"
    manifest = tfrecord_lib.convert(gtzan_listing, out, workers=1, tracks_per_shard=3,
                                    progress=False)
    names = sorted(tf.io.gfile.listdir(out))
    assert names == sorted([features.MANIFEST_NAME] + [
        s["file"] for e in manifest["splits"].values() for s in e["shards"]])
    assert manifest_lib.verify(out) == []
    assert sum(e["num_tracks"] for e in manifest["splits"].values()) == 5


def test_decode_workers_stay_small():
    # Workers are spawned and import only audio_io (numpy, soundfile, soxr): far below the 300 MB
    # per-worker budget. Importing TensorFlow there would cost ~700 MB each.
    from data_tools import audio_io
    peaks = list(tfrecord_lib._ordered_map(audio_io.peak_rss_mb, range(2), workers=2))
    assert len(peaks) == 2 and all(0 < p < 150 for p in peaks), peaks


@pytest.mark.slow
def test_a_worker_that_dies_costs_only_its_file():
    # A decoder crash (segfault, OOM kill) ends the worker process. The conversion must neither
    # hang nor stop: the file that killed it is reported as skipped and the others are converted,
    # in order. Every file after a crash lands on restarted workers.
    from data_tools.audio_io import SkippedTrack
    from tests.data_tools import crashing
    names = [f"t{i}" for i in range(11)]
    names[3] = "crash-a"
    names[9] = "crash-b"
    results = list(tfrecord_lib._ordered_map(crashing.decode_or_die, names, workers=2,
                                             on_crash=lambda n, why: ("skipped", n, why)))
    assert [r if isinstance(r, str) else r[1] for r in results] == [
        n if n.startswith("crash") else n.upper() for n in names]
    crashed = [r for r in results if not isinstance(r, str)]
    assert [r[1] for r in crashed] == ["crash-a", "crash-b"]
    assert all("BrokenProcessPool" in r[2] for r in crashed)
    # In the conversion the crash becomes a manifest entry naming the file and the cause.
    skip = tfrecord_lib._decoder_crashed(_specs(1)[0], crashed[0][2])
    assert isinstance(skip, SkippedTrack) and "died on this file" in skip.reason
    # A worker can also die while the next files are being handed out (submit then fails).
    def slow_names():
        yield "crash-first"
        for i in range(4):
            time.sleep(0.5)  # by now the pool has noticed that its worker died
            yield f"s{i}"
    results = list(tfrecord_lib._ordered_map(crashing.decode_or_die, slow_names(), workers=2,
                                             on_crash=lambda n, why: ("skipped", n, why)))
    assert results == [("skipped", "crash-first", results[0][2]), "S0", "S1", "S2", "S3"]
    # Without a handler the error is not swallowed.
    with pytest.raises(Exception, match="terminated abruptly"):
        list(tfrecord_lib._ordered_map(crashing.decode_or_die, ["a", "crash"], workers=2))
