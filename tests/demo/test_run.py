"""The demo's conversion step: library calls (dataset listing + tfrecord_lib.convert)."""

import os
import sys

from mssl_tf import fileio
from mssl_tf.demo import run
from tests.data_tools import fixtures


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
        assert run.preset_epochs(gin_file) == gin.query_parameter("pretrain.epochs") == 20
