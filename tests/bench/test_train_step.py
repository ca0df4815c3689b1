"""bench/train_step.py: device-side crops, the PyTorch reference, and the CLI's JSON lines."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "bench", "train_step.py")
sys.path.insert(0, ROOT)

from bench import train_step, train_step_torch  # noqa: E402

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_JAX = importlib.util.find_spec("jax") is not None
TINY = ["--widths", "8,8,8,8", "--rep-dim", "16", "--batch", "4", "--steps", "2",
        "--warmup", "1", "--tracks", "2", "--track-seconds", "0.1"]
REQUIRED_KEYS = {"impl", "backend", "objective", "batch", "augment", "precision", "pairs_per_s",
                 "step_ms", "device", "loss_last", "date", "command"}


def test_device_crops_cut_two_contiguous_views_of_one_track():
    import keras
    device_crops, _ = train_step.keras_parts()
    num_tracks, track_len, crop_len, batch = 3, 500, 81, 8
    # Sample j of track t holds 1000 t + j, so a crop reveals its track and offset.
    tracks = (1000 * np.arange(num_tracks)[:, None] + np.arange(track_len)).astype(np.int16)
    layer = device_crops(tracks, crop_len, batch, seed=3)
    seen_offsets = set()
    for _ in range(2):
        view_a, view_b = (np.round(keras.ops.convert_to_numpy(v) * 32768.0).astype(int)
                          for v in layer(np.zeros((batch, 1), "float32")))
        assert view_a.shape == view_b.shape == (batch, crop_len)
        for views in (view_a, view_b):
            assert np.all(np.diff(views, axis=1) == 1)  # contiguous samples of one track
            offsets = views[:, 0] % 1000
            assert np.all(offsets + crop_len <= track_len)
            seen_offsets.update(offsets.tolist())
        np.testing.assert_array_equal(view_a[:, 0] // 1000, view_b[:, 0] // 1000)  # same track
    # Offsets are drawn per pair, per view and per call, from the layer's seed generator.
    assert len(seen_offsets) > 16


def test_device_crops_reject_tracks_shorter_than_a_crop():
    device_crops, _ = train_step.keras_parts()
    with pytest.raises(ValueError, match="--track-seconds"):
        device_crops(np.zeros((2, 50), np.int16), 81, 4)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is in the bench extra")
def test_torch_reference_losses_equal_mssl_tf_losses():
    import torch

    from mssl_tf.losses import nt_xent_loss, vicreg_loss
    parts = train_step_torch.torch_parts()
    rng = np.random.default_rng(0)
    z_a = rng.standard_normal((12, 24)).astype(np.float32)
    z_b = (z_a + 0.5 * rng.standard_normal((12, 24))).astype(np.float32)
    ta, tb = torch.from_numpy(z_a), torch.from_numpy(z_b)
    ours, _ = vicreg_loss(z_a, z_b)
    np.testing.assert_allclose(float(parts["vicreg"](ta, tb)), float(ours), rtol=1e-5)
    ours, _ = nt_xent_loss(z_a, z_b, temperature=0.5)
    np.testing.assert_allclose(float(parts["nt_xent"](ta, tb)), float(ours), rtol=1e-5)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is in the bench extra")
def test_torch_reference_has_the_keras_parameter_counts():
    from mssl_tf.models import build_projector, build_sample_cnn
    parts = train_step_torch.torch_parts()

    def count(module):
        return sum(p.numel() for p in module.parameters())

    encoder = parts["sample_cnn"](train_step.CLMR_WIDTHS, 512)
    assert count(encoder) == 2_368_512  # CLMR's SampleCNN without fc (anchors 1.1)
    keras_encoder = build_sample_cnn(512)
    assert count(encoder) == sum(int(np.prod(v.shape)) for v in keras_encoder.trainable_variables)
    for kind, spec in (("vicreg", "64-64-32"), ("clmr", "512-128")):
        keras_proj = build_projector(kind, spec, input_dim=512)
        trainable = sum(int(np.prod(v.shape)) for v in keras_proj.trainable_variables)
        assert count(parts["projector"](kind, spec, 512)) == trainable


def _run_cli(args, env_backend, tmp_path):
    out = tmp_path / f"{env_backend}.jsonl"
    env = dict(os.environ, KERAS_BACKEND=env_backend, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, SCRIPT, *TINY, *args, "--json-out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert rows == [json.loads(line) for line in out.read_text().splitlines()]
    return rows


def _check_row(row, impl, backend, objective, augment):
    assert REQUIRED_KEYS <= set(row), REQUIRED_KEYS - set(row)
    assert (row["impl"], row["backend"], row["objective"]) == (impl, backend, objective)
    assert (row["batch"], row["augment"], row["precision"]) == (4, augment, "float32")
    assert row["crop_len"] == 243 and row["timed_steps"] == 2
    assert row["pairs_per_s"] > 0 and math.isfinite(row["loss_last"])
    # pairs/s and ms/step describe the same timing.
    assert row["pairs_per_s"] * row["step_ms"] / 1000.0 == pytest.approx(4, rel=0.01)
    assert row["device"].startswith("cpu: ")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="torch is in the bench extra")
def test_cli_tensorflow_against_torch_eager(tmp_path):
    # Without augmentation: tracing AudioAugment costs a minute on 2 cores, and the layer's own
    # tests already fit it on both backends.
    rows = _run_cli(["--backend", "tensorflow", "--projector", "32-32", "--torch", "eager",
                     "--no-augment"], "tensorflow", tmp_path)
    assert [r["impl"] for r in rows] == ["torch_eager", "mssl_tf"]
    torch_row, tf_row = rows
    _check_row(torch_row, "torch_eager", "torch", "vicreg", False)
    _check_row(tf_row, "mssl_tf", "tensorflow", "vicreg", False)
    assert tf_row["ratio_vs_torch_eager"] == pytest.approx(
        tf_row["pairs_per_s"] / torch_row["pairs_per_s"], rel=1e-2)
    assert tf_row["versions"]["tensorflow"].startswith("2.")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is in the jax extra")
def test_cli_jax_without_augmentation_ntxent_lars(tmp_path):
    # The parent process may run under any backend: the worker gets KERAS_BACKEND=jax itself.
    rows = _run_cli(["--backend", "jax", "--objective", "ntxent", "--no-augment",
                     "--optimizer", "lars"], "tensorflow", tmp_path)
    assert len(rows) == 1
    _check_row(rows[0], "mssl_tf", "jax", "ntxent", False)
    assert rows[0]["projector"] == "512-128" and rows[0]["optimizer"] == "lars"
    assert "ratio_vs_torch_eager" not in rows[0]
    assert "jax" in rows[0]["versions"]


def test_cli_rejects_unknown_backend_and_breakdown_on_jax():
    with pytest.raises(SystemExit, match="--backend 'torch'"):
        train_step.build_jobs(train_step.parse_args(["--backend", "torch"]))
    with pytest.raises(SystemExit, match="drop jax"):
        train_step.build_jobs(train_step.parse_args(["--backend", "jax", "--breakdown"]))


def test_jobs_put_the_torch_reference_first_in_each_round():
    args = train_step.parse_args(["--backend", "tensorflow,jax", "--augment-both", "--torch",
                                  "--batch", "4,8", "--repeats", "2"])
    jobs = train_step.build_jobs(args)
    assert len(jobs) == 2 * 2 * (2 + 2 * 2)
    first = jobs[:6]
    assert [(j["kind"], j.get("torch_mode"), j.get("backend"), j["augment"]) for j in first] == [
        ("torch", "eager", None, False), ("torch", "compile", None, False),
        ("keras", None, "tensorflow", True), ("keras", None, "tensorflow", False),
        ("keras", None, "jax", True), ("keras", None, "jax", False)]
    assert {j["batch"] for j in first} == {4} and {j["round"] for j in first} == {0}
    assert jobs[0]["crop_len"] == 59049 and jobs[0]["projector"] == "8192-8192-8192"


def test_ratios_compare_rows_of_the_same_round_and_configuration():
    from bench import common
    base = {"objective": "vicreg", "batch": 4, "precision": "float32", "rep_dim": 16,
            "projector": "32-32", "optimizer": "sgd", "crop_len": 243}
    done = [dict(base, round=0, impl="torch_eager", backend="torch", pairs_per_s=10.0),
            dict(base, round=1, impl="torch_eager", backend="torch", pairs_per_s=40.0),
            dict(base, round=1, impl="torch_compile", backend="torch", pairs_per_s=80.0)]
    row = dict(base, round=1, impl="mssl_tf", backend="tensorflow", pairs_per_s=20.0)
    common.add_ratios(row, done, train_step.MATCH_KEYS)
    assert row["ratio_vs_torch_eager"] == 0.5 and row["ratio_vs_torch_compile"] == 0.25
    other = dict(row, batch=8)
    other.pop("ratio_vs_torch_eager"), other.pop("ratio_vs_torch_compile")
    common.add_ratios(other, done, train_step.MATCH_KEYS)
    assert "ratio_vs_torch_eager" not in other


RUN_WITHOUT_TF = """
import importlib.util, runpy, sys
sys.path = [p for p in sys.path if "site-packages" not in p] + [{site!r}]
assert importlib.util.find_spec("tensorflow") is None
sys.argv = [{script!r}] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")
assert "tensorflow" not in sys.modules, "the JAX worker imported tensorflow"
print("NO_TENSORFLOW_OK")
"""


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="JAX is in the jax extra")
def test_jax_worker_runs_where_tensorflow_is_not_installed(tmp_path):
    # The GPU machine has JAX and no TensorFlow: hide TensorFlow by running the worker on a copy
    # of site-packages (symlinks) without it.
    import keras
    site_packages = os.path.dirname(os.path.dirname(keras.__file__))
    site = tmp_path / "site"
    site.mkdir()
    for name in os.listdir(site_packages):
        if not name.startswith(("tensorflow", "tf_keras", "torch")):
            os.symlink(os.path.join(site_packages, name), site / name)
    runner = tmp_path / "run.py"
    runner.write_text(RUN_WITHOUT_TF.format(site=str(site), script=SCRIPT))
    args = train_step.parse_args([*TINY, "--backend", "jax", "--no-augment",
                                  "--projector", "32-32"])
    job = train_step.build_jobs(args)[0]
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH="")
    proc = subprocess.run([sys.executable, str(runner), "--worker", json.dumps(job)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "NO_TENSORFLOW_OK" in proc.stdout
    line = next(x for x in proc.stdout.splitlines() if x.startswith("BENCH_RESULT "))
    result = json.loads(line[len("BENCH_RESULT "):])
    assert result["backend"] == "jax" and result["pairs_per_s"] > 0
    assert math.isfinite(result["loss_last"])
