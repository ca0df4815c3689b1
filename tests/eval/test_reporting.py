"""Report tables in the thesis' layouts and figures, from results.json files."""

import json
import os

import matplotlib.image as mpimg
import numpy as np
import pytest

from mssl_tf.eval import published, report


def _result(root, *, objective="vicreg", dataset="fma", rep=512, batch=768, epoch=300,
            head="linear", roc=80.0, pr=30.0, projector="vicreg", random_init=False,
            probe="mtat"):
    tag = "random_init" if random_init else f"epoch{epoch:05d}"
    name = f"{objective}-{dataset}-{rep}-{batch}-{projector}"
    out = os.path.join(root, name, "probes", f"{probe}-{tag}", head)
    os.makedirs(out, exist_ok=True)
    res = {"metrics": {"roc_auc": roc, "pr_auc": pr, "clip_roc_auc": roc + 1,
                       "clip_pr_auc": pr + 1},
           "head": head, "dataset": probe, "random_init": random_init,
           "checkpoint": {"epoch": 0 if random_init else epoch, "tag": tag},
           "pretrain": {"objective": objective, "dataset": dataset, "rep_dim": rep,
                        "global_batch": batch, "projector": projector},
           "created": f"2026-01-01T00:00:{epoch % 60:02d}"}
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f)
    return os.path.join(root, name)


@pytest.fixture
def runs(tmp_path):
    root = str(tmp_path / "runs")
    made = set()
    for objective, projector in (("vicreg", "vicreg"), ("ntxent", "clmr")):
        for epoch, base in ((300, 85.0), (1000, 86.0)):
            for head, bump in (("linear", 0.0), ("mlp", 1.0)):
                made.add(_result(root, objective=objective, projector=projector, epoch=epoch,
                                 head=head, roc=base + bump + (objective == "ntxent"),
                                 pr=30 + bump))
    for rep in (32, 128):
        made.add(_result(root, rep=rep, epoch=1000, roc=70.0 + rep / 32, pr=20.0))
    made.add(_result(root, batch=256, epoch=1000, roc=84.5, pr=29.5))
    made.add(_result(root, random_init=True, roc=71.25, pr=22.5))
    made.add(_result(root, objective="ntxent", projector="clmr", dataset="gtzan", epoch=3000,
                     probe="gtzan", roc=90.0, pr=60.0))
    return sorted(made)


def _row(table, first):
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in\n{table}")


def test_tables_put_our_numbers_beside_the_thesis(runs):
    records = report.load_records(runs)
    assert len(records) == 13
    a1 = report.table_epochs(records)
    # Epoch 300: CLMR ours 86.00 (87.00) beside the thesis' 87.52 (88.12), and so on.
    assert _row(a1, "300") == ["300", "86.00 (87.00) [87.52 (88.12)]",
                               "30.00 (31.00) [33.40 (33.83)]",
                               "85.00 (86.00) [87.08 (88.19)]",
                               "30.00 (31.00) [32.24 (33.55)]"]
    assert _row(a1, "8000")[1] == "- [86.22 (87.48)]"  # not run here
    assert _row(a1, "random init")[3] == "71.25"
    t41 = report.table_transfer(records)
    vicreg_fma = [line for line in t41.splitlines() if line.startswith("| VICReg | FMA")][0]
    assert "86.00 (87.00) [87.78 (89.15)]" in vicreg_fma and "| 1000 |" in vicreg_fma
    assert "| MusicCNN* | MTAT | - | - | - [89.00] | - [34.90] |" in t41
    assert "CLMR (probed on GTZAN) | GTZAN | 512 | 3000 | 90.00 | 60.00 |" in t41
    assert _row(t41, "random init")[4] == "71.25"
    a2 = report.table_rep_size(records)
    assert _row(a2, "32")[1] == "71.00 [77.19 (84.40)]"
    assert _row(a2, "512")[1] == "86.00 (87.00) [87.21 (88.37)]"  # latest epoch of the run
    b1 = report.table_batch(records)
    assert _row(b1, "256")[1] == "84.50 [87.21 (87.88)]"
    assert _row(b1, "1792")[1] == "- [86.58 (88.26)]"
    b2 = report.table_projectors(records)
    assert _row(b2, "CLMR")[1] == "87.00 (88.00) [87.07 (87.82)]"
    assert _row(b2, "VICReg")[1] == "- [85.70]"  # no MLP number in the thesis
    assert _row(b2, "VICReg")[3] == "86.00 (87.00) [86.97 (88.22)]"


def test_every_published_row_is_in_the_tables():
    md = report.markdown([])
    for epochs in published.TABLE_A_1:
        assert f"| {epochs} |" in md
    for batch in published.TABLE_B_1:
        assert f"| {batch} |" in md
    assert md.count("[87.21 (88.37)]") == 2  # A.2 at 512 and B.1 at 768 are the same run


def _series_pixels(png, rgb):
    img = mpimg.imread(png)[..., :3]
    return int(np.sum(np.all(np.abs(img - np.asarray(rgb)) < 0.06, axis=-1)))


def test_report_writes_markdown_and_figures(runs, tmp_path):
    out = report.write_report(runs, str(tmp_path / "report"))
    assert out["records"] == 13 and len(out["figures"]) == 5
    assert "Probe scores over snapshot epochs" in out["figures"]
    with open(out["markdown"]) as f:
        md = f.read()
    assert "## Table A.1" in md and "![Figure 4.1: convergence](fig4_1_epochs.png)" in md
    orange = (1.0, 0.498, 0.055)  # tab:orange, VICReg, drawn at full strength for ours
    blue = (0.122, 0.467, 0.706)
    for title, png in out["figures"].items():
        if "B.3" in title or "over snapshot" in title:
            continue  # the heatmap has no line series; the run figure colours by run
        img = mpimg.imread(png)
        assert img.shape[0] > 400 and img.shape[1] > 1000
        assert _series_pixels(png, orange) > 50, title
    assert _series_pixels(out["figures"]["Figure 4.1: convergence"], blue) > 50
    with open(os.path.join(tmp_path, "report", "records.json")) as f:
        assert len(json.load(f)) == 13


def test_batch_by_rep_heatmap_is_normalized_per_representation_size(runs, tmp_path):
    from mssl_tf.eval import figures
    records = report.load_records(runs)
    batches, reps, raw, norm = figures.batch_rep_grid(records, "linear")
    # The fixture's VICReg MTAT probes: reps 32 and 128 at batch 768 (PR 20.0), rep 512 at
    # batch 768 (latest epoch 1000: PR 30.0) and batch 256 (PR 29.5).
    assert batches == [256, 768] and reps == [32, 128, 512]
    assert np.isnan(raw[0][0]) and np.isnan(raw[0][1])
    np.testing.assert_allclose(raw[1], [20.0, 20.0, 30.0])
    np.testing.assert_allclose(raw[0][2], 29.5)
    np.testing.assert_allclose(norm[1], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(norm[0][2], 29.5 / 30.0)
    png = report.write_report(runs, str(tmp_path / "r"))["figures"][
        "Figure B.3: batch size x representation size"]
    # One panel per head whose probes span a grid: here only the linear ones (the fixture's MLP
    # probes are all at rep 512).
    assert 500 < mpimg.imread(png).shape[1] < 1000
    _result(runs[0].rsplit("/", 1)[0], rep=32, batch=256, epoch=1000, head="mlp", pr=21.0)
    _result(runs[0].rsplit("/", 1)[0], rep=32, batch=768, epoch=1000, head="mlp", pr=25.0)
    png = report.write_report(runs + [os.path.join(runs[0].rsplit("/", 1)[0], n) for n in (
        "vicreg-fma-32-256-vicreg",)], str(tmp_path / "r2"))["figures"][
        "Figure B.3: batch size x representation size"]
    assert mpimg.imread(png).shape[1] > 1000  # linear and MLP panels
    # One batch size or one representation size: no grid, no figure.
    assert figures._heatmap([r for r in records if r["batch"] == 768],
                            str(tmp_path / "none.png")) is None


def test_missing_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        report.load_records([str(tmp_path / "nope")])


# --- robustness: one bad results.json never sinks the report --------------------------------

def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


@pytest.mark.parametrize("text, why", [
    ('{"metrics": {"roc_auc": 80', "not valid JSON"),
    ('[1, 2, 3]', "JSON list"),
    ('{"head": "linear", "dataset": "mtat", "metrics": {}}', "metrics.roc_auc, pretrain.objective"),
])
def test_a_bad_results_file_is_skipped_with_a_warning_naming_it(runs, tmp_path, caplog, text,
                                                                 why):
    bad = os.path.join(runs[0], "probes", "mtat-epoch00007", "linear", "results.json")
    _write(bad, text)
    with caplog.at_level("WARNING", logger="mssl_tf.eval.report"):
        out = report.write_report(runs, str(tmp_path / "report"))
    assert out["records"] == 13  # every good record is still reported
    warning = "\n".join(r.getMessage() for r in caplog.records)
    assert bad in warning and why in warning
    with open(out["markdown"]) as f:
        assert "None" not in f.read()


def test_an_empty_folder_writes_nothing(tmp_path):
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ValueError, match="no usable results.json"):
        report.write_report([str(tmp_path / "empty")], str(tmp_path / "report"))
    assert not os.path.exists(tmp_path / "report")


# --- floor and epoch-source notes ------------------------------------------------------------

def test_report_says_which_floor_it_shows(runs, tmp_path):
    records = report.load_records(runs)
    note = report.floor_note(records)
    assert "mean 0, variance 1" in note and "unscaled features" in note
    res_path = os.path.join(runs[0].rsplit("/", 1)[0], "vicreg-fma-512-768-vicreg", "probes",
                            "mtat-random_init", "linear", "results.json")
    with open(res_path) as f:
        res = json.load(f)
    res.update(bn_stats="estimated on 512 crops", standardize=True)
    with open(res_path, "w") as f:
        json.dump(res, f)
    note = report.floor_note(report.load_records(runs))
    assert "BatchNorm statistics estimated on 512 crops" in note and "standardized" in note
    assert "Random-init floor rows: VICReg" in report.markdown(report.load_records(runs))
    assert "no floor row" in report.floor_note([r for r in records if not r["random_init"]])


def test_epochs_table_says_snapshots_or_separate_runs(tmp_path):
    root = str(tmp_path / "runs")
    run = _result(root, epoch=300)  # snapshot 300 of the run below (schedule length 1000)
    _result(root, epoch=1000)
    for path in report.find_results([run]):
        with open(path) as f:
            res = json.load(f)
        res["pretrain"]["epochs"] = 1000
        with open(path, "w") as f:
            json.dump(res, f)
    separate = _result(root, objective="ntxent", projector="clmr", epoch=300)
    path = report.find_results([separate])[0]
    with open(path) as f:
        res = json.load(f)
    res["pretrain"]["epochs"] = 300
    with open(path, "w") as f:
        json.dump(res, f)
    note = report.epochs_note(report.load_records([root]))
    assert "VICReg: epochs 300 are snapshots of a run scheduled for 1000 epochs" in note
    assert "epochs 1000 are separate runs" in note
    assert "CLMR: epochs 300 are separate runs" in note
    assert note in report.markdown(report.load_records([root]))


# --- training curves and probe scores over epochs ---------------------------------------------

NEW_HISTORY = ("epoch,step,loss,invariance,variance,covariance,invariance_weighted,"
               "variance_weighted,covariance_weighted,rep_std,rep_rank,lr,pairs_per_sec\n"
               "1,10,30.0,0.5,0.42,2.0,12.5,10.5,2.0,0.9,40.0,0.1,5.0\n"
               "2,20,28.0,0.4,0.60,1.0,10.0,15.0,1.0,0.6,30.0,0.1,5.0\n"
               "3,30,26.0,0.3,0.81,0.5,7.5,20.25,0.5,0.3,20.0,0.1,5.0\n")
OLD_HISTORY = ("epoch,covariance,invariance,loss,rep_rank,rep_std,variance\n"
               "0,2.0,0.5,30.0,40.0,0.9,0.42\n1,1.0,0.4,28.0,30.0,0.6,0.6\n")


def _run_with_history(root, name, history, steps_per_epoch=7):
    run = os.path.join(root, name)
    _write(os.path.join(run, "history.csv"), history)
    _write(os.path.join(run, "run.json"), json.dumps({"encoder": {}, "steps_per_epoch":
                                                      steps_per_epoch, "epochs": 3}))
    return run


def test_history_in_both_layouts(tmp_path):
    new = _run_with_history(str(tmp_path), "new", NEW_HISTORY)
    old = _run_with_history(str(tmp_path), "old", OLD_HISTORY)
    h = report.load_history(new)
    assert h["step"] == [10, 20, 30] and h["variance_weighted"] == [10.5, 15.0, 20.25]
    h = report.load_history(old)  # Keras CSVLogger: 0-based epochs, no step column
    assert h["step"] == [7, 14] and h["rep_std"] == [0.9, 0.6]
    from mssl_tf.eval import figures
    assert figures.objective_terms(report.load_history(new)) == (
        ["invariance_weighted", "variance_weighted", "covariance_weighted"], True)
    assert figures.objective_terms(h) == (["covariance", "invariance", "variance"], False)
    _write(os.path.join(new, "history.csv"), "epoch,step\n")
    assert report.load_history(new) is None


def test_report_draws_training_curves_and_probe_scores_of_any_runs(tmp_path):
    root = str(tmp_path / "runs")
    run = _run_with_history(root, "my-run", NEW_HISTORY)
    other = _run_with_history(root, "legacy", OLD_HISTORY)
    for epoch, roc in ((1, 60.0), (2, 65.0), (3, 70.0)):  # a non-thesis probe dataset
        path = os.path.join(run, "probes", f"gtzan-epoch{epoch:05d}", "linear", "results.json")
        _write(path, json.dumps({"metrics": {"roc_auc": roc, "pr_auc": roc / 2}, "head": "linear",
                                 "dataset": "gtzan", "checkpoint": {"epoch": epoch},
                                 "pretrain": {"objective": "vicreg", "dataset": "mine",
                                              "rep_dim": 64, "epochs": 3}}))
    _write(os.path.join(run, "probes", "gtzan-random_init", "linear", "results.json"),
           json.dumps({"metrics": {"roc_auc": 55.0, "pr_auc": 20.0}, "head": "linear",
                       "dataset": "gtzan", "random_init": True, "checkpoint": {"epoch": 0},
                       "pretrain": {"objective": "vicreg", "dataset": "mine", "rep_dim": 64}}))
    out = report.write_report([root], str(tmp_path / "report"))
    assert out["runs"] == [other, run]
    from mssl_tf.eval import figures
    records = report.load_records([root])
    series = figures.probe_series(records)
    assert series[(run, "GTZAN", "linear")]["roc_auc"] == ([1, 2, 3], [60.0, 65.0, 70.0])
    curves = out["figures"]["Pre-training curves"]
    probes = out["figures"]["Probe scores over snapshot epochs"]
    with open(out["markdown"]) as f:
        md = f.read()
    assert "(training_curves.png)" in md and "(probe_over_epochs.png)" in md
    blue, orange = (0.122, 0.467, 0.706), (1.0, 0.498, 0.055)  # tab10: first and second run
    for png in (curves, probes):
        assert mpimg.imread(png).shape[1] > 1000
    assert _series_pixels(curves, blue) > 200 and _series_pixels(curves, orange) > 200
    assert _series_pixels(probes, blue) > 100
    if os.environ.get("MSSL_KEEP_FIGURES"):  # for looking at the figures by eye
        import shutil
        for png in (curves, probes):
            shutil.copy(png, os.environ["MSSL_KEEP_FIGURES"])
