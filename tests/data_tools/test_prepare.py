"""`mssl-prepare` end to end: fixture trees -> shards -> read back (tf.data and mssl_tf.data).

Checks exact track sets, splits, labels and audio (length, FFT peak, level), the manifest's skipped
and flagged lists, `verify`, and crash safety with a real kill -9 and Ctrl-C of the command.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from data_tools import audio_io, prepare, tfrecord_lib
from data_tools import manifest as manifest_lib
from data_tools.datasets import folder
from mssl_tf import fileio
from mssl_tf.data import features, pipeline
from tests.data_tools import fixtures

SR = features.SAMPLE_RATE
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PCM_FORMATS = (".wav", ".au", ".flac")


def read_back(out_dir):
    """track_id -> parsed record, read with tf.data + features.parse_example."""
    records = {}
    for path in tf.io.gfile.glob(os.path.join(out_dir, "*.tfrecord")):
        for raw in tf.data.TFRecordDataset(path):
            parsed = features.parse_example(raw)
            track_id = parsed["track_id"].numpy().decode()
            assert track_id not in records
            records[track_id] = {k: v.numpy() for k, v in parsed.items()}
            assert features.SHARD_RE.match(os.path.basename(path)).group("split") == \
                records[track_id]["split"].decode()
    return records


def check_output(out_dir, tree, lossy=True):
    """Asserts the shards hold exactly the expected tracks with the right labels and audio."""
    assert prepare.main(["verify", out_dir]) == 0
    records = read_back(out_dir)
    assert set(records) == set(tree.expected)
    for track_id, (split, labels, rate, channels, seconds, freq) in tree.expected.items():
        r = records[track_id]
        assert r["split"].decode() == split
        np.testing.assert_array_equal(r["labels"], np.asarray(labels, np.float32))
        assert r["sample_rate"] == SR and r["schema_version"] == features.SCHEMA_VERSION
        audio = r["audio"]
        assert r["num_samples"] == len(audio)
        assert abs(len(audio) - seconds * SR) <= (2400 if lossy else 0)
        if not np.any(audio):
            continue  # the silent fixture; checked through the flagged list
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        assert abs(np.argmax(spectrum) * SR / len(audio) - freq) < 1.0
        rms = np.sqrt(np.mean(audio[SR // 4: -SR // 4].astype(np.float64) ** 2))
        assert rms == pytest.approx((0.3 if channels == 1 else 0.225) / np.sqrt(2), rel=0.03)
    m = fileio.read_manifest(out_dir)
    skipped = {s["path"] for s in m["skipped"]}
    assert set(tree.expected_skipped) <= skipped
    assert sorted(f["path"] for f in m["flagged"]) == sorted(tree.expected_flagged)
    assert m["tag_names"] == tree.tag_names
    return records, m


@pytest.mark.slow
def test_gtzan_end_to_end_and_read_through_the_pipeline(tmp_path):
    tree = fixtures.make_gtzan_tree(str(tmp_path), seconds=6.0)
    out = str(tmp_path / "out")
    assert prepare.main(["gtzan", "--audio_dir", tree.audio_dir, "--out_dir", out,
                         "--workers", "1", "--no_progress"]) == 0
    records, m = check_output(out, tree, lossy=False)
    assert {s: e["num_tracks"] for s, e in m["splits"].items()} == {"train": 2, "valid": 2,
                                                                    "test": 1}
    # Test-time chunks: non-overlapping 59,049-sample chunks, the last one dropped, ids kept.
    seen = set()
    for track in pipeline.chunk_dataset(out, "valid"):
        track_id = track["track_id"].numpy().decode()
        audio = records[track_id]["audio"]
        n = int(np.ceil(len(audio) / features.CROP_LEN)) - 1
        assert int(track["num_chunks"]) == n == 2
        np.testing.assert_array_equal(track["chunks"].numpy().reshape(-1),
                                      audio[: n * features.CROP_LEN])
        seen.add(track_id)
    assert seen == {k for k, v in tree.expected.items() if v[0] == "valid"}
    # Single crops for probe training: each is a contiguous slice of its track.
    batch = next(iter(pipeline.single_crop_dataset(out, "train", 8, seed=3)))
    assert batch["audio"].shape == (2, features.CROP_LEN)
    for crop, track_id in zip(batch["audio"].numpy(), batch["track_id"].numpy()):
        audio = records[track_id.decode()]["audio"]
        starts = [s for s in range(len(audio) - features.CROP_LEN + 1)
                  if audio[s] == crop[0] and np.array_equal(audio[s:s + features.CROP_LEN], crop)]
        assert starts
    # Two-view pre-training pairs.
    pair = next(iter(pipeline.two_view_dataset(out, 2, seed=0, shuffle_buffer=4)))
    assert pair["view_a"].shape == pair["view_b"].shape == (2, features.CROP_LEN)


def test_mtat_end_to_end(tmp_path):
    tree = fixtures.make_mtat_tree(str(tmp_path))
    out = str(tmp_path / "out")
    assert prepare.main(["mtat", "--audio_dir", tree.audio_dir, "--annotations",
                         tree.metadata["annotations"], "--out_dir", out, "--workers", "1",
                         "--no_progress"]) == 0
    _, m = check_output(out, tree)
    assert m["multi_label"] and m["num_labels"] == 50 and m["tag_order"] == "pons2017"
    reasons = {s["path"]: s["reason"] for s in m["skipped"]}
    assert reasons["2/corrupt_clip-0-29.mp3"].startswith("not decodable audio")
    assert reasons["2/text_clip-0-29.mp3"].startswith("not decodable audio")
    assert "escapes the audio root" in reasons["../../outside.mp3"]


def test_fma_end_to_end_genres_all(tmp_path):
    tree = fixtures.make_fma_tree(str(tmp_path))
    out = str(tmp_path / "out")
    assert prepare.main(["fma", "--audio_dir", tree.audio_dir, "--tracks_csv",
                         tree.metadata["tracks_csv"], "--subset", "medium", "--out_dir", out,
                         "--workers", "1", "--no_progress"]) == 0
    _, m = check_output(out, tree)
    assert m["label"] == "top_genre" and m["subset"] == "medium" and not m["multi_label"]
    reasons = {s["path"]: s["reason"] for s in m["skipped"]}
    assert reasons["099/099134.mp3"].startswith("file not found")
    assert reasons["108/108925.mp3"] == "empty file (0 bytes)"
    assert reasons["133/133297.mp3"].startswith("not decodable audio")
    assert reasons["001/001486.mp3"].startswith("too short")
    assert "listed twice" in reasons["000/000005.mp3"]

    multi = str(tmp_path / "multi")
    assert prepare.main(["fma", "--audio_dir", tree.audio_dir, "--tracks_csv",
                         tree.metadata["tracks_csv"], "--label", "genres_all", "--out_dir", multi,
                         "--workers", "1", "--no_progress"]) == 0
    m = fileio.read_manifest(multi)
    labels = {k: dict(zip(m["tag_names"], v["labels"])) for k, v in read_back(multi).items()}
    assert m["multi_label"] and m["label"] == "genres_all"
    assert {g for g, v in labels["000140"].items() if v} == {"Electronic", "Experimental", "IDM"}


def test_folder_end_to_end_with_labels(tmp_path):
    labels = {"a/one.wav": ["rock"], "a/two.mp3": ["jazz"], "b/three.flac": ["rock"],
              "b/c/four.ogg": ["jazz"], "five.au": ["jazz"]}
    tree = fixtures.make_folder_tree(str(tmp_path), labels=labels)
    out = str(tmp_path / "out")
    assert prepare.main(["folder", "--audio_dir", tree.audio_dir, "--labels",
                         tree.metadata["labels"], "--out_dir", out, "--workers", "1",
                         "--no_progress"]) == 0
    _, m = check_output(out, tree)
    assert m["dataset"] == "my_music" and not m["multi_label"] and m["num_labels"] == 2
    assert sorted(os.listdir(out)) == ["manifest.json", "my_music-train-00000-of-00001.tfrecord"]


def test_cli_errors_are_clear(tmp_path, capsys):
    bad_csv = fixtures.write_tracks_csv(str(tmp_path / "tracks.csv"), [{"track_id": 2}],
                                        header_rows=1)
    assert prepare.main(["fma", "--audio_dir", str(tmp_path), "--tracks_csv", bad_csv,
                         "--out_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "tracks.csv: missing columns" in err and "two rows" in err
    assert prepare.main(["verify", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "manifest.json not found" in err and "--out" in err
    assert "--data_dir" not in err  # verify has no such flag (the message named it)


def _many_files(root, n=30):
    audio_dir = os.path.join(root, "many")
    for i in range(n):
        fixtures.write_audio(os.path.join(audio_dir, f"{i:03d}.wav"), 3.0, 48000, 300.0 + i)
    return audio_dir


def _start(audio_dir, out):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, "-m", "data_tools.prepare", "folder", "--audio_dir", audio_dir,
         "--out_dir", out, "--tracks_per_shard", "1", "--workers", "1", "--no_progress"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_first_shard(proc, out, timeout=120.0):
    progress = os.path.join(out, manifest_lib.PROGRESS_DIR)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.isdir(progress) and any(n.endswith(".tfrecord.json")
                                           for n in os.listdir(progress)):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.002)
    raise AssertionError("no shard finished in time")


def _assert_same_shards(out, audio_dir, reference):
    tfrecord_lib.convert(folder.list_tracks(audio_dir), reference, workers=1, tracks_per_shard=1,
                         progress=False)
    names = sorted(n for n in os.listdir(reference) if features.SHARD_RE.match(n))
    assert names == sorted(n for n in os.listdir(out) if features.SHARD_RE.match(n))
    for name in names:
        assert open(os.path.join(out, name), "rb").read() == \
            open(os.path.join(reference, name), "rb").read()


def _cli(audio_dir, out):
    return ["folder", "--audio_dir", audio_dir, "--out_dir", out, "--tracks_per_shard", "1",
            "--workers", "1", "--no_progress"]


@pytest.mark.slow
def test_killed_command_resumes_to_identical_output(tmp_path, caplog):
    audio_dir = _many_files(str(tmp_path))
    out = str(tmp_path / "out")
    proc = _start(audio_dir, out)
    _wait_for_first_shard(proc, out)
    proc.kill()  # SIGKILL: no clean-up code runs
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = [n for n in os.listdir(out) if features.SHARD_RE.match(n)]
    assert 1 <= len(done) < 30 and not os.path.exists(os.path.join(out, "manifest.json"))
    assert prepare.main(["verify", out]) == 1

    with caplog.at_level("INFO"):
        assert prepare.main(_cli(audio_dir, out)) == 0  # the same command, run again
    assert "resuming" in caplog.text
    assert prepare.main(["verify", out]) == 0
    _assert_same_shards(out, audio_dir, str(tmp_path / "reference"))


def test_ctrl_c_keeps_finished_shards_and_resumes(tmp_path, monkeypatch, capsys):
    audio_dir = _many_files(str(tmp_path), n=6)
    out = str(tmp_path / "out")
    real = audio_io.process_track
    calls = []

    def interrupted_on_fourth_track(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises in the converting process
        return real(*args, **kwargs)

    monkeypatch.setattr(audio_io, "process_track", interrupted_on_fourth_track)
    assert prepare.main(_cli(audio_dir, out)) == 130
    assert "run the same command again" in capsys.readouterr().err
    assert sorted(n for n in os.listdir(out) if features.SHARD_RE.match(n)) == [
        f"many-train-0000{i}-of-00006.tfrecord" for i in range(3)]  # no partial 4th shard
    assert not [n for n in os.listdir(out) if n.endswith(".incomplete")]
    monkeypatch.setattr(audio_io, "process_track", real)
    assert prepare.main(_cli(audio_dir, out)) == 0
    assert prepare.main(["verify", out]) == 0
    _assert_same_shards(out, audio_dir, str(tmp_path / "reference"))
