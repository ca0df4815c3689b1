"""The demo's figures: terms on their own axis beside rep_std, legends clear of the bars."""

import os

import matplotlib.image as mpimg
import numpy as np
import pytest

from mssl_tf.demo import summary

ROWS = [{"encoder": name, "metrics": {"roc_auc": v, "pr_auc": v / 2, "clip_roc_auc": v,
                                      "clip_pr_auc": v / 2}}
        for name, v in (("random init", 50.0), ("VICReg", 98.0), ("CLMR", 97.0))]
HISTORY = {"loss": [30.0, 28.0, 26.0], "invariance": [0.5, 0.4, 0.3],
           "variance": [0.42, 0.6, 0.81], "covariance": [2.0, 1.0, 0.5],
           "invariance_weighted": [12.5, 10.0, 7.5], "variance_weighted": [10.5, 15.0, 20.25],
           "covariance_weighted": [2.0, 1.0, 0.5], "rep_std": [0.9, 0.6, 0.3],
           "rep_rank": [40.0, 30.0, 20.0]}


def _lines(ax):
    return {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}


def test_weighted_terms_and_rep_std_are_off_the_loss_axis():
    fig = summary.pretrain_figure({"VICReg": HISTORY, "CLMR": {"loss": [5.0, 4.0],
                                                               "rep_std": [0.5, 0.4]}})
    loss_ax, terms_ax = fig.axes[0], fig.axes[2]  # column 0: loss above, terms below
    assert _lines(loss_ax) == {"loss": HISTORY["loss"]}
    assert _lines(terms_ax) == {"invariance": HISTORY["invariance_weighted"],
                                "variance": HISTORY["variance_weighted"],
                                "covariance": HISTORY["covariance_weighted"]}
    twin = [ax for ax in fig.axes if ax is not terms_ax and ax.bbox.bounds == terms_ax.bbox.bounds]
    assert _lines(twin[0]) == {"rep_std (right axis)": HISTORY["rep_std"]}
    # Without weighted columns the raw terms are drawn and said to be raw.
    raw = {k: v for k, v in HISTORY.items() if not k.endswith("_weighted")}
    fig = summary.pretrain_figure({"VICReg": raw})
    assert set(_lines(fig.axes[1])) == {"invariance", "variance", "covariance"}
    assert "(raw)" in fig.axes[1].get_title()


def _overlap(a, b):
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_legends_do_not_cover_bars(tmp_path):
    per_tag = {r["encoder"]: {"keys": 99.0, "drums": 98.0, "bass": float("nan")} for r in ROWS}
    for fig in (summary.probe_metrics_figure(ROWS), summary.per_tag_figure(per_tag)):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent(renderer)
        for bar in ax.patches:
            assert not _overlap(legend, bar.get_window_extent(renderer))
        assert legend.x0 >= ax.get_window_extent(renderer).x1  # right of the axes
    paths = summary.write_figures(str(tmp_path), ROWS, {"VICReg": HISTORY}, per_tag)
    assert [os.path.basename(p) for p in paths] == ["probe_metrics.png", "pretrain_loss.png",
                                                     "per_tag_roc_auc.png"]
    for path in paths:
        image = mpimg.imread(path)
        assert image.shape[0] > 300 and np.std(image) > 0.05
    if os.environ.get("MSSL_KEEP_FIGURES"):
        import shutil
        for path in paths:
            shutil.copy(path, os.environ["MSSL_KEEP_FIGURES"])


def _result(encoder, seed, probe, roc, pr=30.0):
    return {"encoder": encoder, "seed": seed, "probe": probe,
            "metrics": {"roc_auc": roc, "pr_auc": pr}}


def test_seed_summary_gains_are_seed_for_seed_against_the_floor():
    per_seed = [_result("random init", 0, "clmr", 60.0), _result("VICReg", 0, "clmr", 70.0),
                _result("random init", 1, "clmr", 64.0), _result("VICReg", 1, "clmr", 66.0),
                _result("random init", 0, "std", 65.0), _result("VICReg", 0, "std", 75.0),
                _result("random init", 1, "std", 66.0), _result("VICReg", 1, "std", 72.0)]
    rows = summary.seed_summary(per_seed, floor="random init")
    by = {(r["encoder"], r["probe"]): r for r in rows}
    vicreg = by[("VICReg", "clmr")]
    assert vicreg["seeds"] == [0, 1] and vicreg["roc_auc"]["values"] == [70.0, 66.0]
    assert vicreg["roc_auc"]["mean"] == 68.0
    np.testing.assert_allclose(vicreg["roc_auc"]["std"], np.std([70.0, 66.0], ddof=1))
    # Gains pair each seed with the floor of the same seed and probe: (70-60, 66-64).
    assert vicreg["gain_roc_auc"]["values"] == [10.0, 2.0]
    assert vicreg["gain_roc_auc"]["mean"] == 6.0
    np.testing.assert_allclose(vicreg["gain_roc_auc"]["std"], np.sqrt(32.0))
    assert by[("VICReg", "std")]["gain_roc_auc"]["values"] == [10.0, 6.0]
    assert by[("random init", "clmr")]["gain_roc_auc"] is None
    table = summary.gains_table(rows, ["CLMR-protocol probe", "standardised-feature probe"])
    assert "| VICReg | CLMR-protocol probe | 2 | 68.00 +- 2.83 | 30.00 +- 0.00 | +6.00 +- 5.66 |" \
        in table
    assert "| random init | standardised-feature probe | 2 | 65.50 +- 0.71 |" in table
    assert "(the floor)" in table


def test_seed_summary_one_seed_has_no_spread_and_a_missing_floor_is_named():
    rows = summary.seed_summary([_result("random init", 0, "clmr", 50.0),
                                 _result("CLMR", 0, "clmr", 58.5)], floor="random init")
    assert rows[1]["gain_roc_auc"] == {"mean": 8.5, "std": 0.0, "values": [8.5]}
    assert "| CLMR | clmr | 1 | 58.50 | 30.00 | +8.50 |" in summary.gains_table(rows)
    with pytest.raises(ValueError, match="seed\\(s\\) \\[1\\]"):
        summary.seed_summary([_result("random init", 0, "clmr", 50.0),
                              _result("CLMR", 1, "clmr", 58.5)], floor="random init")
