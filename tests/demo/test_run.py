"""The demo's steps: conversion through library calls, preset epochs, repeatable pre-training."""

import os
import subprocess
import sys

import pytest

from mssl_tf import fileio
from mssl_tf.demo import corpus, run
from tests.data_tools import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_prepare_step_converts_through_the_library(tmp_path, monkeypatch):
    audio_dir = str(tmp_path / "corpus")
    for i in range(3):
        fixtures.write_audio(os.path.join(audio_dir, f"clip{i}.wav"), 3.0, 22050, 200.0 + 300 * i)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,labels,split\nclip0.wav,low,train\nclip1.wav,high,train\n"
                      "clip2.wav,low,test\n")
    # The command-line entry point is not used (no library -> CLI call).
    monkeypatch.setitem(sys.modules, "data_tools.prepare", None)
    shards = str(tmp_path / "shards")
    manifest = run.prepare(audio_dir, str(labels), shards, progress=False)
    assert manifest == fileio.read_manifest(shards)
    assert manifest["dataset"] == "demo" and manifest["tag_names"] == ["high", "low"]
    assert {s: e["num_tracks"] for s, e in manifest["splits"].items()} == {
        "train": 2, "valid": 0, "test": 1}
    assert manifest["command"].startswith("mssl-prepare folder --audio_dir")


def test_full_demo_trains_each_preset_for_its_own_epochs():
    """The full demo does not override the presets' epochs (VICReg and CLMR are measured at
    their own), and `preset_epochs` reads them from the gin files."""
    import gin  # noqa: PLC0415

    from mssl_tf import gin_utils  # noqa: PLC0415
    assert run.FULL["epochs"] is None
    for _, _, gin_file in run.OBJECTIVES:
        gin_utils.parse([gin_file], ["pretrain.data_dir = '/unused'"])
        assert run.preset_epochs(gin_file) == gin.query_parameter("pretrain.epochs") == 40


# One demo pre-training in a fresh process: VICReg's preset for one epoch (3 steps on 16
# clips), after `repeatable_threads` unless told not to; prints the epoch's loss exactly.
_PRETRAIN = """
import os, sys
os.environ["KERAS_BACKEND"] = "tensorflow"
from mssl_tf.demo import run
if sys.argv[3] == "repeatable":
    assert run.repeatable_threads()
import keras
keras.utils.set_random_seed(0)
result = run._pretrain(sys.argv[1], "experiments/demo_vicreg.gin", sys.argv[2], 1, 0, seed=0)
print("LOSS", repr(float(result["history"]["loss"][-1])))
"""


def _pretrain_in_processes(tmp_path, shards: str, mode: str) -> list[float]:
    procs = [subprocess.Popen([sys.executable, "-c", _PRETRAIN, str(tmp_path / f"{mode}{i}"),
                               shards, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO) for i in range(2)]
    losses = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        losses.append(float(next(line.split()[1] for line in out.splitlines()
                                 if line.startswith("LOSS"))))
    return losses


@pytest.mark.slow
def test_demo_vicreg_pretraining_repeats_to_the_last_digit(tmp_path):
    """With TensorFlow's default thread pools two VICReg runs of one seed differ (~1e-5 of the
    loss after a few steps, points of ROC-AUC after 240 steps); the demo sets one inter-op
    thread, with which they are identical."""
    made = corpus.write_corpus(str(tmp_path / "audio"), counts=run.QUICK["counts"],
                               seconds=run.QUICK["seconds"], progress=False)
    shards = str(tmp_path / "shards")
    run.prepare(str(tmp_path / "audio"), made["labels_csv"], shards, progress=False)
    first, second = _pretrain_in_processes(tmp_path, shards, "repeatable")
    assert first == second
