"""PNG figures in the style of the thesis' Figures 4.1, 4.2, B.1 and B.3 (matplotlib, Agg backend).

Figures 4.1, 4.2 and B.1 have a ROC-AUC and a PR-AUC panel; linear probes are solid lines, MLP
probes dashed (as in the thesis). The thesis' published curves are drawn faintly with hollow
markers, our results with filled markers on top, and a random-init probe as a dotted floor line.
Figure B.3 is a batch size x representation size heatmap of VICReg's MTAT PR-AUC, one panel per
probe head (the thesis publishes it as an image only, so there is no reference layer).
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from mssl_tf import fileio
from mssl_tf.eval import published  # noqa: E402

COLORS = {"CLMR": "tab:blue", "VICReg": "tab:orange"}
STYLES = {"linear": "-", "mlp": "--"}


def _thesis_series(table: dict, method: str | None) -> dict[str, dict]:
    """{metric: {head: (xs, ys)}} from a published table keyed by x."""
    out = {"roc_auc": {"linear": ([], []), "mlp": ([], [])},
           "pr_auc": {"linear": ([], []), "mlp": ([], [])}}
    for x in sorted(table):
        scores = table[x] if method is None else table[x].get(method)
        if scores is None:
            continue
        for metric, pair in zip(("roc_auc", "pr_auc"), scores):
            for head, value in zip(("linear", "mlp"), pair):
                if value is not None:
                    out[metric][head][0].append(x)
                    out[metric][head][1].append(value)
    return out


def _keep_latest(chosen: dict, key, record: dict) -> None:
    """Several probes at one point (e.g. several epochs of one run): the latest epoch counts."""
    old = chosen.get(key)
    if old is None or (record["epoch"] or 0, record["created"]) >= (old["epoch"] or 0,
                                                                   old["created"]):
        chosen[key] = record


def _our_series(records: list[dict], key: str, method: str, **match) -> dict[str, dict]:
    out = {"roc_auc": {}, "pr_auc": {}}
    chosen: dict[tuple, dict] = {}
    for r in records:
        if r["random_init"] or r["method"] != method or r.get(key) is None:
            continue
        if not all(r.get(k) == v for k, v in match.items()):
            continue
        _keep_latest(chosen, (r[key], r["head"]), r)
    for (x, head), r in sorted(chosen.items(), key=lambda kv: kv[0]):
        for metric in out:
            if r[metric] is not None:
                xs, ys = out[metric].setdefault(head, ([], []))
                xs.append(x)
                ys.append(r[metric])
    return out


def _figure(records: list[dict], key: str, thesis: dict, methods: tuple[str, ...], xlabel: str,
            title: str, path: str, log_x: bool = False, thesis_by_method: bool = True,
            **match) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, name in zip(axes, ("roc_auc", "pr_auc"), ("ROC-AUC", "PR-AUC")):
        for method in methods:
            color = COLORS.get(method, "tab:green")
            ref = _thesis_series(thesis, method if thesis_by_method else None)
            for head, (xs, ys) in ref[metric].items():
                if xs:
                    ax.plot(xs, ys, STYLES[head], color=color, alpha=0.35, marker="o",
                            markerfacecolor="none", label=f"{method} {head} (thesis)")
            ours = _our_series(records, key, method, **match)
            for head, (xs, ys) in ours[metric].items():
                ax.plot(xs, ys, STYLES.get(head, "-"), color=color, marker="o", linewidth=2,
                        label=f"{method} {head} (ours)")
        floor = [r for r in records if r["random_init"] and r[metric] is not None
                 and r.get("probe") == match.get("probe", r.get("probe"))]
        for r in floor:
            ax.axhline(r[metric], color="gray", linestyle=":", linewidth=1)
        if floor:
            ax.plot([], [], ":", color="gray", label="random init")
        if log_x:
            ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.set_title(name)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    with fileio.atomic_output(path) as local:
        fig.savefig(local, dpi=120)
    plt.close(fig)
    return path


def batch_rep_grid(records: list[dict], head: str, method: str = "VICReg", probe: str = "MTAT"
                   ) -> tuple[list[int], list[int], list[list[float]], list[list[float]]]:
    """PR-AUC of every (batch size, representation size) pair, as in Figure B.3.

    Several probes of one pair (several epochs): the latest epoch counts. Columns (representation
    sizes) are normalized by their best batch size, as the thesis normalizes "column-wise, by the
    representation layer": 1.0 marks the best batch size of each representation size.

    Returns:
      (batches, reps, pr_auc, normalized): sorted axes and row-per-batch matrices, NaN where a
      pair has no probe.
    """
    cells: dict[tuple[int, int], dict] = {}
    for r in records:
        if (r["random_init"] or r["method"] != method or r.get("probe") != probe
                or r["head"] != head or r.get("pr_auc") is None
                or r.get("batch") is None or r.get("rep_dim") is None):
            continue
        _keep_latest(cells, (r["batch"], r["rep_dim"]), r)
    batches = sorted({b for b, _ in cells})
    reps = sorted({d for _, d in cells})
    raw = [[cells[(b, d)]["pr_auc"] if (b, d) in cells else math.nan for d in reps]
           for b in batches]
    best = [max((row[j] for row in raw if not math.isnan(row[j])), default=math.nan)
            for j in range(len(reps))]
    norm = [[v / best[j] if best[j] else math.nan for j, v in enumerate(row)] for row in raw]
    return batches, reps, raw, norm


def _heatmap(records: list[dict], path: str) -> str | None:
    """Figure B.3, or None when the runs hold fewer than 2 batch sizes or 2 representation sizes."""
    grids = {head: batch_rep_grid(records, head) for head in ("linear", "mlp")}
    grids = {h: g for h, g in grids.items() if len(g[0]) >= 2 and len(g[1]) >= 2}
    if not grids:
        return None
    fig, axes = plt.subplots(1, len(grids), figsize=(5.5 * len(grids), 4.6), squeeze=False)
    for ax, (head, (batches, reps, raw, norm)) in zip(axes[0], grids.items()):
        image = ax.imshow(norm, cmap="viridis", origin="lower", aspect="auto")
        for i, row in enumerate(raw):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(j, i, f"{norm[i][j]:.3f}\n({value:.2f})", ha="center",
                            va="center", fontsize=7, color="white" if norm[i][j] < 0.99 else "k")
        ax.set_xticks(range(len(reps)), [str(d) for d in reps])
        ax.set_yticks(range(len(batches)), [str(b) for b in batches])
        ax.set_xlabel("representation size")
        ax.set_ylabel("global batch size")
        ax.set_title(f"{'linear' if head == 'linear' else 'two-layer'} head")
        fig.colorbar(image, ax=ax, label="PR-AUC / best of column")
    fig.suptitle("VICReg MTAT PR-AUC, normalized per representation size (Figure B.3)")
    fig.tight_layout()
    with fileio.atomic_output(path) as local:
        fig.savefig(local, dpi=120)
    plt.close(fig)
    return path


def draw_all(records: list[dict], out_dir: str) -> dict[str, str]:
    """Draws Figures 4.1, 4.2, B.1 (and B.3 when the runs span a batch x rep grid) into
    `out_dir`; returns {title: png path}."""
    os.makedirs(out_dir, exist_ok=True)
    figs = {
        "Figure 4.1: convergence": _figure(
            records, "epoch", published.TABLE_A_1, ("CLMR", "VICReg"), "pre-training epochs",
            "MTAT probe vs pre-training epochs (Figure 4.1)",
            os.path.join(out_dir, "fig4_1_epochs.png"), rep_dim=512, probe="MTAT"),
        "Figure 4.2: representation size": _figure(
            records, "rep_dim", published.TABLE_A_2, ("CLMR", "VICReg"), "representation size",
            "MTAT probe vs representation size (Figure 4.2)",
            os.path.join(out_dir, "fig4_2_rep_size.png"), log_x=True, probe="MTAT"),
        "Figure B.1: VICReg batch size": _figure(
            records, "batch", published.TABLE_B_1, ("VICReg",), "global batch size",
            "VICReg MTAT probe vs batch size (Figure B.1)",
            os.path.join(out_dir, "figB_1_batch.png"), log_x=True, thesis_by_method=False,
            rep_dim=512, probe="MTAT"),
    }
    heatmap = _heatmap(records, os.path.join(out_dir, "figB_3_batch_rep_heatmap.png"))
    if heatmap is not None:
        figs["Figure B.3: batch size x representation size"] = heatmap
    return figs
