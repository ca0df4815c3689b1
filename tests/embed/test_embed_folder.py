"""mssl-embed: a folder of real audio -> one output equal to ExportedModel, failures listed,
resumable after a kill, decode workers that die with their parent."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from mssl_tf.data import crops
from mssl_tf.embed import audio, results, sources
from tests.embed.helpers import TAGS
from tests.export.helpers import TINY

CROP = TINY["crop_len"]
ENV = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.mark.parametrize("length", [0, CROP - 1, CROP, CROP + 1, 2 * CROP, 5 * CROP + 3])
def test_chunk_starts_follow_the_test_protocol(length):
    starts = audio.chunk_starts(length, CROP)
    want = crops.num_chunks(length, CROP) or (1 if length == CROP else 0)
    np.testing.assert_array_equal(starts, np.arange(want) * CROP)
    hop = CROP // 3  # overlapping windows: every full window every `hop` samples
    windows = audio.chunk_starts(length, CROP, hop)
    assert all(s + CROP <= length for s in windows)
    assert len(windows) == (0 if length < CROP else (length - CROP) // hop + 1)


def test_list_audio_folders_lists_and_errors(tmp_path, audio_folder):
    root, good, bad = audio_folder
    found = sources.list_audio([root])
    assert sorted(found) == sorted(good + list(bad))  # recursive; readme.txt left out
    listing = tmp_path / "files.txt"
    rel = os.path.relpath(good[0], tmp_path)
    listing.write_text(f"# my files\n{rel}\n\n{good[1]}\n{good[1]}\n")
    assert sources.list_audio([str(listing)]) == [str(tmp_path / rel), good[1]]
    with pytest.raises(FileNotFoundError, match="nope.*no such file or folder"):
        sources.list_audio([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no audio file"):
        sources.list_audio([str(tmp_path / "empty")])


@pytest.mark.slow
def test_folder_embeddings_equal_exported_model(tiny_export, audio_folder, tmp_path, caplog):
    from mssl_tf.embed import runner
    from mssl_tf.export import ExportedModel
    export_dir, _, _ = tiny_export
    root, good, bad = audio_folder
    out = str(tmp_path / "emb.npz")
    model = runner.load_model(export_dir)
    summary = runner.embed_files([root], out, model, chunks=True, workers=2, batch_size=8,
                                 save_every=2, xla=True)  # XLA agrees with the SavedModel too
    assert summary["embedded"] == len(good) and len(summary["failed"]) == 2
    assert not os.path.exists(out + ".partial")  # parts removed once the output is written
    d = np.load(out)
    assert sorted(d["path"]) == good and list(d["tag_names"]) == TAGS
    # Bad files: listed with their reasons, in the output and on the console.
    reasons = dict(zip(d["failed_path"], d["failed_reason"]))
    assert sorted(reasons) == sorted(bad)
    for path, fragment in bad.items():
        assert fragment in reasons[path]
        assert any(path in r.getMessage() and fragment in r.getMessage() for r in caplog.records)
    exported = ExportedModel(export_dir)
    for i, path in enumerate(d["path"]):
        want = exported.embed_file(str(path), chunks=True)  # the SavedModel, one file at a time
        np.testing.assert_allclose(d["embedding"][i], want["embedding"], atol=1e-5)
        np.testing.assert_allclose(d["tag_probabilities"][i], want["tag_probabilities"],
                                   atol=1e-5)
        assert d["n_chunks"][i] == want["n_chunks"] >= 3
        assert d["duration"][i] == pytest.approx(want["duration"])
        rows = d["chunk_track"] == i
        np.testing.assert_allclose(d["chunk_embedding"][rows], want["chunk_embeddings"],
                                   atol=1e-5)
        np.testing.assert_allclose(d["chunk_start"][rows], np.arange(rows.sum()) * CROP / 22050)
        # Per-chunk outputs average to the track's.
        np.testing.assert_allclose(d["chunk_embedding"][rows].mean(0), d["embedding"][i],
                                   atol=1e-6)
        np.testing.assert_allclose(d["chunk_tag_probabilities"][rows].mean(0),
                                   d["tag_probabilities"][i], atol=1e-6)
    settings = json.loads(str(d["settings"]))
    assert settings["model"]["export"] == export_dir and settings["hop"] is None
    # ExportedModel.embed_files: one result per path, bad files as errors when asked.
    listed = exported.embed_files([good[0], *bad], on_error="skip")
    assert "embedding" in listed[0] and all("error" in r for r in listed[1:])
    with pytest.raises(ValueError, match="too short"):
        exported.embed_files([p for p in bad if "short" in p])


@pytest.mark.slow
def test_overlapping_chunks_with_hop(tiny_export, audio_folder, tmp_path):
    from mssl_tf.embed import runner
    export_dir, encoder, _ = tiny_export
    _, good, _ = audio_folder
    out = str(tmp_path / "hop.npz")
    hop = CROP // 2
    runner.embed_files([good[3]], out, runner.load_model(export_dir), hop=hop, chunks=True,
                       workers=0)
    d = np.load(out)
    wave = audio.load_waveform(good[3], 22050)
    starts = np.arange(0, len(wave) - CROP + 1, hop)
    np.testing.assert_allclose(d["chunk_start"], starts / 22050)
    windows = np.stack([wave[s:s + CROP] for s in starts])
    np.testing.assert_allclose(d["chunk_embedding"], encoder(windows, training=False).numpy(),
                               atol=1e-5)
    assert json.loads(str(d["settings"]))["hop"] == hop


def _many_files(root, count):
    rng = np.random.default_rng(1)
    os.makedirs(root, exist_ok=True)
    for i in range(count):
        wave = rng.uniform(-0.5, 0.5, int(0.3 * 22050)).astype(np.float32)
        sf.write(os.path.join(root, f"t{i:03d}.wav"), wave, 22050, subtype="PCM_16")
    with open(os.path.join(root, "zz_broken.wav"), "wb") as f:
        f.write(b"RIFF\x00\x00garbage")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_output(tiny_export, tmp_path):
    from mssl_tf.cli import embed as cli
    export_dir, _, _ = tiny_export
    root = str(tmp_path / "many")
    _many_files(root, 150)
    killed, clean = str(tmp_path / "killed.npz"), str(tmp_path / "clean.npz")
    cmd = [sys.executable, "-m", "mssl_tf.cli.embed", root, "--model", export_dir, "--out",
           killed, "--chunks", "--workers", "0", "--batch_size", "2", "--save_every", "1"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parts = killed + results.PARTIAL_SUFFIX
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.isdir(parts) and len(os.listdir(parts)) >= 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not os.path.exists(killed)
    done_before = sum(len(results.read_npz(os.path.join(parts, p))[0])
                      for p in os.listdir(parts) if p.endswith(".npz"))
    assert 3 <= done_before < 151
    assert cli.main([root, "--model", export_dir, "--out", killed, "--chunks", "--workers",
                     "0", "--batch_size", "2"]) == 0
    assert cli.main([root, "--model", export_dir, "--out", clean, "--chunks", "--workers",
                     "0", "--batch_size", "2"]) == 0
    a, b = np.load(killed), np.load(clean)
    assert set(a.files) == set(b.files)
    for key in a.files:
        if a[key].dtype.kind in "fc":
            np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert len(a["path"]) == 150 and list(a["failed_path"]) == [os.path.join(root,
                                                                             "zz_broken.wav")]
    assert not os.path.exists(parts)


@pytest.mark.slow
def test_rerun_with_other_settings_is_refused(tiny_export, audio_folder, tmp_path, capsys):
    from mssl_tf.cli import embed as cli
    export_dir, _, _ = tiny_export
    root, good, _ = audio_folder
    out = str(tmp_path / "o.npz")
    args = [good[0], "--model", export_dir, "--out", out, "--workers", "0"]
    assert cli.main(args) == 0
    assert cli.main(args) == 0  # same settings: nothing left to do
    assert "1 from an earlier run" in capsys.readouterr().out
    assert cli.main(args + ["--hop", "1000"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(args + ["--hop", "1000", "--overwrite"]) == 0


def test_cli_bad_input(tmp_path, capsys):
    from mssl_tf.cli import embed as cli
    (tmp_path / "x.wav").write_bytes(b"")
    assert cli.main([str(tmp_path / "x.wav"), "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "neither an `mssl-export` folder" in err and str(tmp_path) in err
    assert cli.main([str(tmp_path / "x.wav"), "--model", str(tmp_path), "--hop", "0"]) == 2
    assert "--hop must be a positive" in capsys.readouterr().err


def test_parquet_output_reads_back(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rng = np.random.default_rng(0)
    recs = [results.TrackRecord("a.wav", 3.0, rng.normal(size=8).astype(np.float32),
                                rng.uniform(size=3).astype(np.float32),
                                np.array([0.0, CROP / 22050]),
                                rng.normal(size=(2, 8)).astype(np.float32),
                                rng.uniform(size=(2, 3)).astype(np.float32), 2),
            results.TrackRecord("b.mp3", error="too short")]
    settings = {"rep_dim": 8, "chunks": True}
    path = str(tmp_path / "e.parquet")
    results.write_output(path, recs, settings, TAGS)
    table = pq.read_table(path)
    assert json.loads(table.schema.metadata[b"tag_names"]) == TAGS
    rows = table.to_pylist()
    assert rows[1]["error"] == "too short" and rows[1]["embedding"] is None
    np.testing.assert_allclose(rows[0]["embedding"], recs[0].embedding)
    np.testing.assert_allclose(rows[0]["chunk_embedding"], recs[0].chunk_embedding)
    np.testing.assert_allclose(rows[0]["chunk_tag_probabilities"],
                               recs[0].chunk_tag_probabilities)


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if it were not installed
    with pytest.raises(ValueError, match=r"mssl_tf\[parquet\]"):
        results.write_output(str(tmp_path / "e.parquet"), [], {"rep_dim": 8}, [])


@pytest.mark.slow
def test_decode_workers_exit_when_the_parent_is_killed(tmp_path):
    script = ("import os, sys, time\n"
              "from mssl_tf.embed import audio\n"
              "if __name__ == '__main__':\n"
              "    pool = audio.spawn_pool(2)\n"
              "    pids = {f.result() for f in [pool.submit(os.getpid) for _ in range(8)]}\n"
              "    print(' '.join(map(str, pids)), flush=True)\n"
              "    time.sleep(120)\n")
    path = tmp_path / "parent.py"
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path)], env={**ENV, "PYTHONPATH": os.getcwd()},
                            stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in proc.stdout.readline().split()]
    assert pids and proc.pid not in pids
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "decode workers outlived their parent"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has exited
    except FileNotFoundError:
        return False


def test_decode_worker_modules_import_no_tensorflow():
    """Spawned decode workers import `mssl_tf.embed.audio`: it must stay TF-free (tens of MB
    per worker instead of ~700)."""
    code = ("import sys, mssl_tf.embed.audio, mssl_tf.embed.results, mssl_tf.embed.sources\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env={**ENV, "PYTHONPATH": os.getcwd()},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.slow
def test_run_directory_with_probe_equals_its_export(audio_folder, tmp_path, capsys):
    from mssl_tf.cli import embed as cli
    from mssl_tf.export import export_run
    from tests.export.helpers import make_probed_run, make_run
    run_dir, probe_dir, shards = make_probed_run(tmp_path / "probed")
    _, good, _ = audio_folder
    export_dir = str(tmp_path / "export")
    export_run(run_dir, export_dir, probe_dir=probe_dir)
    outs = {}
    for name, flags in (("run", ["--model", run_dir, "--probe_dir", probe_dir]),
                        ("export", ["--model", export_dir])):
        outs[name] = str(tmp_path / f"{name}.npz")
        assert cli.main([*good[:2], *flags, "--out", outs[name], "--workers", "0"]) == 0
    a, b = np.load(outs["run"]), np.load(outs["export"])
    np.testing.assert_array_equal(a["tag_names"], b["tag_names"])
    np.testing.assert_allclose(a["embedding"], b["embedding"], atol=1e-6)
    np.testing.assert_allclose(a["tag_probabilities"], b["tag_probabilities"], atol=1e-6)
    assert json.loads(str(a["settings"]))["model"]["model_dir"] == run_dir
    # A probe of another run is refused here too, naming both runs.
    other = make_run(str(tmp_path / "other"), shards, seed=10)
    assert cli.main([good[0], "--model", other, "--probe", probe_dir, "--out",
                     str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert other in err and run_dir in err and not os.path.exists(tmp_path / "x.npz")


@pytest.mark.slow
def test_sigterm_keeps_finished_tracks_and_stops_the_workers(tiny_export, tmp_path):
    export_dir, _, _ = tiny_export
    root = str(tmp_path / "many")
    _many_files(root, 150)
    out = str(tmp_path / "t.npz")
    cmd = [sys.executable, "-m", "mssl_tf.cli.embed", root, "--model", export_dir, "--out",
           out, "--workers", "2", "--batch_size", "2", "--save_every", "7"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    parts = out + results.PARTIAL_SUFFIX
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not (
            os.path.isdir(parts) and os.listdir(parts)):
        time.sleep(0.01)
    workers = _children(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "rerun the same command to resume" in err
    saved = [results.read_npz(os.path.join(parts, p))[0] for p in sorted(os.listdir(parts))]
    assert sum(len(r) for r in saved) >= 7 and not os.path.exists(out)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert workers and not any(_alive(p) for p in workers)


def _children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def test_progress_prints_plain_lines_with_rate_and_eta_when_not_a_tty():
    import io

    from mssl_tf.embed.runner import Progress
    stream = io.StringIO()  # not a tty: no bar, plain lines
    progress = Progress(total=10, already=4, stream=stream, interval=0.0)
    progress.update(failed=False)
    progress.update(failed=True)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in stream.getvalue()
    assert lines[-1].startswith("mssl-embed: 6/10 tracks (1 failed), ")
    assert "tracks/s, ETA 00:00:" in lines[-1]


@pytest.mark.slow
def test_remote_folder_and_output(tiny_export, audio_folder, tmp_path):
    """A remote folder in, a remote output out (TensorFlow's in-memory ram:// stands in for
    gs://; one process, since ram:// is per process)."""
    import tensorflow as tf

    from mssl_tf.embed import runner
    export_dir, _, _ = tiny_export
    root, good, bad = audio_folder
    remote = "ram://embed_test/audio"

    def remote_name(rel):  # ram:// lists folder "b" with a prefix match ("broken.mp3" -> "roken")
        *folders, name = rel.split("/")
        return "/".join([f"dir_{f}" for f in folders] + [name])

    for path in good + list(bad):
        target = remote + "/" + remote_name(os.path.relpath(path, root))
        tf.io.gfile.makedirs(os.path.dirname(target))
        tf.io.gfile.copy(path, target, overwrite=True)
    out = "ram://embed_test/out/emb.npz"
    model = runner.load_model(export_dir)
    summary = runner.embed_files([remote], out, model, workers=0, save_every=2)
    assert summary["embedded"] == len(good) and len(summary["failed"]) == len(bad)
    remote_out, _ = results.read_npz(out)
    local = str(tmp_path / "local.npz")
    runner.embed_files([root], local, model, workers=0)
    want = {remote_name(os.path.relpath(r.path, root)): r for r in results.read_npz(local)[0]}
    for rec in remote_out:
        ref = want[rec.path[len(remote) + 1:]]
        assert (rec.error is None) == (ref.error is None)
        if rec.error is None:
            np.testing.assert_allclose(rec.embedding, ref.embedding, atol=1e-6)
    assert not tf.io.gfile.exists(out + results.PARTIAL_SUFFIX)


def test_exit_status_is_1_only_when_no_file_could_be_embedded(tiny_export, audio_folder, tmp_path,
                                                             capsys):
    """A script must see a run that embedded nothing as failed (it exited 0); one failure among
    good files stays exit 0, with the failure listed."""
    from mssl_tf.cli import embed as cli
    export_dir, _, _ = tiny_export
    _, good, bad = audio_folder
    out = str(tmp_path / "none.npz")
    assert cli.main([*bad, "--model", export_dir, "--out", out, "--workers", "0",
                     "--no_progress"]) == 1
    text = capsys.readouterr()
    assert "0 tracks embedded, 2 failed" in text.out
    assert "no file could be embedded" in text.err
    for path, reason in bad.items():
        assert f"failed: {path}: " in text.out and reason in text.out
    saved = np.load(out)  # the failures are still written, for the record
    assert sorted(saved["failed_path"]) == sorted(bad)
    mixed = str(tmp_path / "mixed.npz")
    assert cli.main([good[0], *bad, "--model", export_dir, "--out", mixed, "--workers", "0",
                     "--no_progress"]) == 0
    assert "1 tracks embedded, 2 failed" in capsys.readouterr().out


def test_an_output_ending_other_than_npz_or_parquet_is_refused_before_any_work(
        tiny_export, audio_folder, tmp_path, capsys):
    """`--out x.csv` wrote an npz archive under a .csv name after embedding everything."""
    from mssl_tf.cli import embed as cli
    export_dir, _, _ = tiny_export
    _, good, _ = audio_folder
    out = tmp_path / "emb.csv"
    assert cli.main([good[0], "--model", export_dir, "--out", str(out), "--workers", "0",
                     "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert f"--out {out}: name a .npz or a .parquet file" in err
    assert not out.exists() and not os.path.exists(f"{out}.partial")


def test_checkpoint_with_an_export_is_refused(tiny_export, audio_folder, tmp_path, capsys):
    """--checkpoint was silently ignored for an export (its encoder is fixed at export time),
    as --probe_dir is refused."""
    from mssl_tf.cli import embed as cli
    export_dir, _, _ = tiny_export
    _, good, _ = audio_folder
    out = tmp_path / "e.npz"
    assert cli.main([good[0], "--model", export_dir, "--checkpoint", "3", "--out", str(out),
                     "--workers", "0", "--no_progress"]) == 2
    err = capsys.readouterr().err
    assert "is an export" in err and "--checkpoint is for run directories" in err
    assert not out.exists()
