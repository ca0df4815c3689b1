"""PNG figures in the style of the thesis' Figures 4.1, 4.2 and B.1 (matplotlib, Agg backend).

Each figure has a ROC-AUC and a PR-AUC panel; linear probes are solid lines, MLP probes dashed
(as in the thesis). The thesis' published curves are drawn faintly with hollow markers, our
results with filled markers on top, and a random-init probe as a dotted floor line.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

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


def _our_series(records: list[dict], key: str, method: str, **match) -> dict[str, dict]:
    out = {"roc_auc": {}, "pr_auc": {}}
    chosen: dict[tuple, dict] = {}
    for r in records:
        if r["random_init"] or r["method"] != method or r.get(key) is None:
            continue
        if not all(r.get(k) == v for k, v in match.items()):
            continue
        k = (r[key], r["head"])
        # Several probes at one x (e.g. several epochs of one rep size): keep the latest epoch.
        if k not in chosen or (r["epoch"] or 0, r["created"]) >= (chosen[k]["epoch"] or 0,
                                                                   chosen[k]["created"]):
            chosen[k] = r
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_all(records: list[dict], out_dir: str) -> dict[str, str]:
    """Draws Figures 4.1, 4.2 and B.1 into `out_dir`; returns {title: png path}."""
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
    return figs
