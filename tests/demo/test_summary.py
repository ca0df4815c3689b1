"""The demo's figures: terms on their own axis beside rep_std, legends clear of the bars."""

import os

import matplotlib.image as mpimg
import numpy as np

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
