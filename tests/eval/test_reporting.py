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
    assert out["records"] == 13 and len(out["figures"]) == 4
    with open(out["markdown"]) as f:
        md = f.read()
    assert "## Table A.1" in md and "![Figure 4.1: convergence](fig4_1_epochs.png)" in md
    orange = (1.0, 0.498, 0.055)  # tab:orange, VICReg, drawn at full strength for ours
    blue = (0.122, 0.467, 0.706)
    for title, png in out["figures"].items():
        if "B.3" in title:
            continue  # the heatmap has no line series
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
