"""`mssl-probe` end to end: flags, gin files and bindings, results on disk, clear errors."""

import json
import os

import gin
import pytest

from mssl_tf.cli import probe as cli
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.models import build_sample_cnn

SPEC = {"rep_dim": 8, "crop_len": 2187, "widths": [4] * 6}
QUICK = ["--gin_param", "run_probe.max_epochs = 2", "--gin_param", "run_probe.batch_size = 16"]


def make_run(run_dir, data_dir, snapshots=True):
    os.makedirs(os.path.join(run_dir, "snapshots"), exist_ok=True)
    encoder = build_sample_cnn(SPEC["rep_dim"], SPEC["crop_len"], widths=tuple(SPEC["widths"]))
    if snapshots:
        for name in ("encoder_epoch_00001.weights.h5", "encoder_latest.weights.h5"):
            encoder.save_weights(os.path.join(run_dir, "snapshots", name))
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump({"encoder": SPEC, "objective": "vicreg", "data_dir": data_dir,
                   "global_batch": 8, "epochs": 1, "latest_epoch": 1}, f)



@pytest.fixture(autouse=True)
def _clear_gin():
    """The CLI parses gin into the global config; leave none behind for other tests."""
    yield
    gin.clear_config()

@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mtat"))
    write_synthetic_dataset(out, num_tracks={"train": 16, "valid": 8, "test": 8}, seconds=0.5,
                            dataset="mtat")
    return out


def test_probe_cli_writes_results_with_gin_defaults_and_bindings(shards, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, shards)
    assert cli.main(["--model_dir", run_dir, "--data_dir", shards, *QUICK]) == 0
    out = os.path.join(run_dir, "probes", "mtat-epoch00001", "linear")
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    assert res["head"] == "linear" and res["training"]["epochs"] == 2
    assert res["settings"]["learning_rate"] == 1e-3 and res["settings"]["batch_size"] == 16
    assert res["settings"]["weight_decay"] == 1e-6 and res["settings"]["early_stop_patience"] == 10
    with open(os.path.join(out, "operative_config.gin")) as f:
        op = f.read()
    assert "run_probe.max_epochs = 2" in op and "run_probe.plateau_patience = 5" in op
    printed = capsys.readouterr().out
    assert f"ROC-AUC {res['metrics']['roc_auc']:.2f}" in printed and "8 test tracks" in printed


@pytest.mark.slow
def test_probe_cli_head_checkpoint_out_and_random_init(shards, tmp_path):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, shards)
    out = str(tmp_path / "elsewhere")
    assert cli.main(["--model_dir", run_dir, "--data_dir", shards, "--head", "mlp",
                     "--checkpoint", "1", "--out", out, *QUICK]) == 0
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    assert res["head"] == "mlp" and res["checkpoint"]["epoch"] == 1
    assert res["settings"]["hidden"] is None
    assert cli.main(["--model_dir", run_dir, "--data_dir", shards, "--random_init",
                     *QUICK]) == 0
    assert os.path.exists(os.path.join(run_dir, "probes", "mtat-random_init", "linear",
                                       "results.json"))


def test_probe_cli_errors_are_clear(shards, tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    make_run(run_dir, shards, snapshots=False)
    assert cli.main(["--model_dir", run_dir, "--data_dir", shards, *QUICK]) == 2
    err = capsys.readouterr().err
    assert "mssl-probe: error:" in err and "snapshots" in err and "--random_init" in err
    assert cli.main(["--model_dir", run_dir, "--data_dir", shards, "--random_init",
                     "--gin_param", "run_probe.max_epoch = 2"]) == 2
    assert "max_epochs" in capsys.readouterr().err  # the close name is suggested
    assert cli.main(["--model_dir", run_dir, "--data_dir", str(tmp_path / "none"),
                     "--random_init"]) == 2
    assert "manifest.json" in capsys.readouterr().err
