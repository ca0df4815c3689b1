"""`mssl-demo --quick` end to end: corpus, prepare, two pre-trainings, three probes, export."""

import csv
import json
import os

import numpy as np
import pytest

from mssl_tf.cli import demo as cli
from mssl_tf.train.tensorboard import read_scalars


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys):
    out = str(tmp_path / "demo")
    assert cli.main(["--out", out, "--quick", "--no_progress", "--seeds", "2"]) == 0
    printed = capsys.readouterr().out
    assert "REDUCED SampleCNN" in printed and "Done in" in printed

    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert [r["encoder"] for r in results["rows"]] == ["random init", "VICReg", "CLMR"]
    # Two seeds: every encoder probed per seed, and its gain over the floor of the same seed.
    assert results["seeds"] == [0, 1]
    variants = results["settings"]["probe_variants"]
    assert len(results["per_seed"]) == 2 * 3 * len(variants)
    # Stage timings per encoder and seed, under JSON keys without spaces.
    assert {f"probe_{e}_seed{s}" for e in ("random_init", "vicreg", "clmr") for s in (0, 1)} \
        <= set(results["timings"])
    assert not any(" " in k for k in results["timings"])
    floor = {(r["seed"], r["probe"]): r["metrics"]["roc_auc"] for r in results["per_seed"]
             if r["encoder"] == "random init"}
    for g in results["gains"]:
        own = [r["metrics"]["roc_auc"] for r in results["per_seed"]
               if r["encoder"] == g["encoder"] and r["probe"] == g["probe"]]
        np.testing.assert_allclose(g["roc_auc"]["values"], own)
        if g["encoder"] != "random init":
            np.testing.assert_allclose(g["gain_roc_auc"]["values"],
                                       [v - floor[(s, g["probe"])] for v, s in zip(own, [0, 1])])
            assert f"{g['gain_roc_auc']['mean']:+.2f} +- {g['gain_roc_auc']['std']:.2f}" in printed
    floor_rows = [r for r in results["per_seed"] if r["encoder"] == "random init"]
    # Without BatchNorm estimation the floor is understated, and results.md says so.
    assert ("gains above are overstated" in printed) == (
        not all(r["bn_stats"] for r in floor_rows))
    for path in ("runs/vicreg_seed1/run.json", "runs/clmr_seed1/run.json"):
        assert os.path.exists(os.path.join(out, path)), path
    with open(os.path.join(out, "results.md")) as f:
        table = f.read()
    for row in results["rows"]:
        for key in ("roc_auc", "pr_auc", "clip_roc_auc", "clip_pr_auc"):
            value = row["metrics"][key]
            assert np.isfinite(value) and 0.0 <= value <= 100.0
        # The printed table shows exactly the numbers of results.json.
        cells = f"| {row['metrics']['roc_auc']:.2f} | {row['metrics']['pr_auc']:.2f} |"
        assert cells in table and cells in printed
    assert results["dataset"]["splits"] == {"train": 16, "valid": 8, "test": 8}
    assert sorted(results["dataset"]["tag_names"]) == sorted(
        ["keys", "plucked", "bowed", "wind", "slow", "fast", "major", "minor", "drums", "bass"])

    # Everything a user looks at is in the output folder.
    for path in ("audio/labels.csv", "shards/manifest.json", "runs/vicreg/run.json",
                 "runs/clmr/run.json", "runs/vicreg/snapshots/encoder_latest.weights.h5",
                 "runs/clmr/history.csv", "export/saved_model/saved_model.pb",
                 "export/encoder.keras", "export/export.json"):
        assert os.path.getsize(os.path.join(out, path)) > 0, path
    for name in ("probe_metrics.png", "pretrain_loss.png", "per_tag_roc_auc.png"):
        with open(os.path.join(out, "figures", name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(out, "runs", "clmr", "run.json")) as f:
        run = json.load(f)
    assert run["objective"] == "ntxent" and run["encoder"]["crop_len"] == 19683
    assert run["encoder"]["rep_dim"] == 64
    for row in results["rows"]:
        assert os.path.exists(os.path.join(row["probe_dir"], "results.json"))
    # Each run's TensorBoard stream holds the scalars of history.csv, epoch by epoch.
    for name in ("vicreg", "clmr"):
        run_dir = os.path.join(out, "runs", name)
        scalars = read_scalars(os.path.join(run_dir, "logs", "train"))
        rows = list(csv.DictReader(open(os.path.join(run_dir, "history.csv"))))
        assert rows and {"epoch/loss", "epoch/rep_std", "epoch/rep_rank", "epoch/lr",
                         "epoch/pairs_per_sec"} <= set(scalars)
        epoch_loss = dict(scalars["epoch/loss"])
        for r in rows:
            np.testing.assert_allclose(epoch_loss[int(r["step"])], float(r["loss"]), rtol=1e-6)
    example = results["export"]["example_probabilities"]
    assert set(example) == set(results["dataset"]["tag_names"])
    assert all(0.0 <= p <= 1.0 for p in example.values())

    # A second run into the same folder is refused rather than mixing two demos.
    assert cli.main(["--out", out, "--quick"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_demo_rejects_bad_epochs_and_seeds(capsys):
    assert cli.main(["--epochs", "0"]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert cli.main(["--seeds", "0"]) == 2
    assert "--seeds must be at least 1" in capsys.readouterr().err
