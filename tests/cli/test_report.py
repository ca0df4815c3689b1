"""`mssl-report` on real `mssl-probe` output: tables with our numbers, PNG figures."""

import json
import os

import gin
import matplotlib.image as mpimg
import pytest

from mssl_tf.cli import probe as probe_cli
from mssl_tf.cli import report as cli
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.models import build_sample_cnn

SPEC = {"rep_dim": 8, "crop_len": 2187, "widths": [4] * 6}



@pytest.fixture(autouse=True)
def _clear_gin():
    """The CLI parses gin into the global config; leave none behind for other tests."""
    yield
    gin.clear_config()

@pytest.mark.slow
def test_report_from_probed_runs(tmp_path, capsys):
    mtat = str(tmp_path / "mtat")
    write_synthetic_dataset(mtat, num_tracks={"train": 16, "valid": 8, "test": 8},
                            seconds=0.5, dataset="mtat")
    fma = str(tmp_path / "fma")  # the pre-training data: only its manifest's name is read
    write_synthetic_dataset(fma, num_tracks={"train": 2}, seconds=0.2, dataset="fma")
    run_dir = str(tmp_path / "run")
    os.makedirs(os.path.join(run_dir, "snapshots"))
    encoder = build_sample_cnn(SPEC["rep_dim"], SPEC["crop_len"], widths=tuple(SPEC["widths"]))
    encoder.save_weights(os.path.join(run_dir, "snapshots", "encoder_latest.weights.h5"))
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump({"encoder": SPEC, "objective": "ntxent", "data_dir": fma, "global_batch": 8,
                   "epochs": 5, "latest_epoch": 5}, f)
    quick = ["--gin_param", "run_probe.max_epochs = 2"]
    for extra in ([], ["--head", "mlp"], ["--random_init"]):
        assert probe_cli.main(["--model_dir", run_dir, "--data_dir", mtat, *quick, *extra]) == 0
    results = {}
    for head in ("linear", "mlp"):
        with open(os.path.join(run_dir, "probes", "mtat-epoch00005", head, "results.json")) as f:
            results[head] = json.load(f)["metrics"]
    capsys.readouterr()

    out = str(tmp_path / "report")
    assert cli.main([run_dir, "--out", out]) == 0
    assert "3 probe result(s)" in capsys.readouterr().out
    with open(os.path.join(out, "report.md")) as f:
        md = f.read()
    roc = f"{results['linear']['roc_auc']:.2f} ({results['mlp']['roc_auc']:.2f})"
    assert f"| CLMR | FMA | 8 | 5 | {roc} |" in md  # our row of Table 4.1
    assert "| CLMR | FMA | 512 | - | - [87.52 (88.12)] |" in md  # the thesis' row
    assert "| random init | - | 8 | 0 |" in md
    for name in ("fig4_1_epochs.png", "fig4_2_rep_size.png", "figB_1_batch.png"):
        assert mpimg.imread(os.path.join(out, name)).shape[1] > 1000


def test_report_without_results_fails_clearly(tmp_path, capsys):
    os.makedirs(tmp_path / "empty_run")
    assert cli.main([str(tmp_path / "empty_run"), "--out", str(tmp_path / "r")]) == 2
    assert "mssl-report: error: no usable results.json" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")  # nothing written
    assert cli.main([str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_report_skips_a_truncated_results_file(tmp_path, capsys, caplog):
    good = tmp_path / "run" / "probes" / "mtat-epoch00001" / "linear"
    bad = tmp_path / "run" / "probes" / "mtat-epoch00002" / "linear"
    for folder in (good, bad):
        os.makedirs(folder)
    (good / "results.json").write_text(json.dumps({
        "metrics": {"roc_auc": 70.0, "pr_auc": 30.0}, "head": "linear", "dataset": "mtat",
        "checkpoint": {"epoch": 1}, "pretrain": {"objective": "vicreg", "rep_dim": 8}}))
    (bad / "results.json").write_text('{"metrics": {"roc_')
    assert cli.main([str(tmp_path / "run"), "--out", str(tmp_path / "r")]) == 0
    assert "1 probe result(s)" in capsys.readouterr().out
    assert str(bad / "results.json") in caplog.text and "not valid JSON" in caplog.text
