"""PNG figures in the style of the thesis' Figures 4.1, 4.2, B.1 and B.3 (matplotlib, Agg backend),
and, for any set of runs, their pre-training curves and probe scores over snapshot epochs.

Figures 4.1, 4.2 and B.1 have a ROC-AUC and a PR-AUC panel; linear probes are solid lines, MLP
probes dashed (as in the thesis). The thesis' published curves are drawn faintly with hollow
markers, our results with filled markers on top, and a random-init probe as a dotted floor line.
Figure B.3 is a batch size x representation size heatmap of VICReg's MTAT PR-AUC, one panel per
probe head (the thesis publishes it as an image only, so there is no reference layer).

The run figures need no thesis counterpart: `training_curves` draws each run's loss, objective
terms (as weighted in the total where history.csv has them) and collapse monitors (rep_std,
rep_rank) against the optimizer step; `probe_over_epochs` draws every probe score against the
snapshot epoch it probed, for any probe dataset, with the random-init floor dotted.
"""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

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


# history.csv columns that are not objective terms.
_NOT_TERMS = frozenset({"epoch", "step", "loss", "rep_std", "rep_rank", "lr", "learning_rate",
                        "pairs_per_sec"})
_DASHES = ("-", "--", ":", "-.")


def _run_label(run: str, runs: list[str]) -> str:
    """The shortest tail of a run's path that tells it from the other runs."""
    parts = os.path.normpath(run).split(os.sep)
    for n in range(1, len(parts) + 1):
        tails = {os.sep.join(os.path.normpath(r).split(os.sep)[-n:]) for r in runs}
        if len(tails) == len(runs):
            return os.sep.join(parts[-n:])
    return run


def objective_terms(history: dict[str, list[float]]) -> tuple[list[str], bool]:
    """The columns to draw as objective terms, and whether they are the weighted ones.

    The weighted columns (`<term>_weighted`, what the total adds up) when history.csv has them,
    else the raw terms (older runs, objectives without weights such as NT-Xent).
    """
    weighted = [k for k in history if k.endswith("_weighted")]
    if weighted:
        return weighted, True
    raw = [k for k in history if k not in _NOT_TERMS and not k.startswith(("probe", "val_"))]
    return raw, False


def training_curves(histories: dict[str, dict[str, list[float]]], path: str) -> str | None:
    """Loss, objective terms, rep_std and rep_rank of every run against the optimizer step.

    Args:
      histories: {run directory: history columns (see `report.load_history`)}.
      path: the PNG to write.

    Returns:
      `path`, or None when there is no history to draw.
    """
    if not histories:
        return None
    runs = list(histories)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = {"loss": axes[0][0], "terms": axes[0][1], "rep_std": axes[1][0],
              "rep_rank": axes[1][1]}
    kinds = set()
    for i, (run, hist) in enumerate(histories.items()):
        color = plt.get_cmap("tab10")(i % 10)
        label = _run_label(run, runs)
        steps = hist["step"]
        panels["loss"].plot(steps, hist["loss"], color=color, marker="o", ms=3, label=label)
        terms, weighted = objective_terms(hist)
        kinds.add(weighted)
        for j, term in enumerate(terms):
            name = term[:-len("_weighted")] if weighted else f"{term} (raw)"
            panels["terms"].plot(steps, hist[term], _DASHES[j % len(_DASHES)], color=color,
                                 marker="o", ms=2, label=f"{label}: {name}")
        for key in ("rep_std", "rep_rank"):
            if key in hist:
                panels[key].plot(steps, hist[key], color=color, marker="o", ms=3, label=label)
    titles = {"loss": "loss (the objective's total)",
              "terms": "objective terms " + {frozenset({True}): "(as weighted in the total)",
                                             frozenset({False}): "(raw)"}.get(
                  frozenset(kinds), "(weighted in the total where recorded, else raw)"),
              "rep_std": "rep_std: std of the representation (falls at collapse)",
              "rep_rank": "rep_rank: effective rank (falls at dimensional collapse)"}
    for key, ax in panels.items():
        ax.set_title(titles[key], fontsize=10)
        ax.set_xlabel("optimizer step")
        ax.grid(True, alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle("Pre-training curves (history.csv)")
    fig.tight_layout()
    with fileio.atomic_output(path) as local:
        fig.savefig(local, dpi=120)
    plt.close(fig)
    return path


def probe_series(records: list[dict]) -> dict[tuple[str, str, str], dict[str, tuple]]:
    """{(run, probe dataset, head): {metric: (epochs, scores)}} of the snapshot probes."""
    chosen: dict[tuple, dict] = {}
    for r in records:
        if r["random_init"] or r.get("epoch") is None:
            continue
        _keep_latest(chosen, (r["run"], r["probe"], r["head"], r["epoch"]), r)
    out: dict[tuple, dict] = {}
    for (run, probe, head, epoch), r in sorted(chosen.items(), key=lambda kv: str(kv[0])):
        series = out.setdefault((run, probe, head), {"roc_auc": ([], []), "pr_auc": ([], [])})
        for metric, (xs, ys) in series.items():
            if r.get(metric) is not None:
                xs.append(epoch)
                ys.append(r[metric])
    for series in out.values():
        for metric, (xs, ys) in series.items():
            order = sorted(range(len(xs)), key=xs.__getitem__)
            series[metric] = ([xs[i] for i in order], [ys[i] for i in order])
    return out


def probe_over_epochs(records: list[dict], path: str) -> str | None:
    """ROC-AUC and PR-AUC of every run's probes against the snapshot epoch, any dataset.

    One line per (run, probe dataset, head); linear solid, MLP dashed; a run's random-init
    probe on the same dataset is its dotted floor. Returns None when no snapshot was probed.
    """
    series = probe_series(records)
    if not series:
        return None
    runs = sorted({run for run, _, _ in series})
    keys = sorted({(run, probe) for run, probe, _ in series})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    for ax, metric, name in zip(axes, ("roc_auc", "pr_auc"), ("ROC-AUC", "PR-AUC")):
        for (run, probe, head), data in series.items():
            color = plt.get_cmap("tab10")(keys.index((run, probe)) % 10)
            xs, ys = data[metric]
            ax.plot(xs, ys, STYLES.get(head, "-"), color=color, marker="o",
                    label=f"{_run_label(run, runs)} on {probe}, {head}")
        for r in records:
            if r["random_init"] and (r["run"], r["probe"]) in keys and r.get(metric) is not None:
                color = plt.get_cmap("tab10")(keys.index((r["run"], r["probe"])) % 10)
                ax.axhline(r[metric], color=color, linestyle=":", linewidth=1)
        ax.set_xlabel("snapshot epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.set_title(f"{name} (dotted: random-init floor)", fontsize=10)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8,
               frameon=False)
    rows = -(-len(labels) // 3)
    fig.suptitle("Probe scores over pre-training (every run, every probe dataset)")
    fig.tight_layout(rect=(0, min(0.4, 0.03 + 0.045 * rows), 1, 0.95))
    with fileio.atomic_output(path) as local:
        fig.savefig(local, dpi=120)
    plt.close(fig)
    return path


def draw_all(records: list[dict], out_dir: str,
             histories: dict[str, dict[str, list[float]]] | None = None) -> dict[str, str]:
    """Draws Figures 4.1, 4.2, B.1 (and B.3 when the runs span a batch x rep grid), the runs'
    pre-training curves and their probe scores over epochs into `out_dir`.

    Returns:
      {title: png path}.
    """
    fileio.makedirs(out_dir)
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
    curves = training_curves(histories or {}, os.path.join(out_dir, "training_curves.png"))
    if curves is not None:
        figs["Pre-training curves"] = curves
    probes = probe_over_epochs(records, os.path.join(out_dir, "probe_over_epochs.png"))
    if probes is not None:
        figs["Probe scores over snapshot epochs"] = probes
    return figs
