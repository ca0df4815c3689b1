"""The demo's comparison table (Markdown) and figures (PNG)."""

from __future__ import annotations

import os

import numpy as np

from mssl_tf import fileio

COLORS = ("#9e9e9e", "#1f77b4", "#d62728", "#2ca02c")
METRICS = (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("clip_roc_auc", "clip ROC-AUC"),
           ("clip_pr_auc", "clip PR-AUC"))


def _fmt(value) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"


def comparison_table(rows: list[dict]) -> str:
    """Markdown table of probe metrics, one row per encoder.

    Args:
      rows: dicts with "encoder", "pretraining" (text) and "metrics" (probe metrics x100).
    """
    head = "| encoder | pre-training | " + " | ".join(name for _, name in METRICS) + " |"
    sep = "|" + "---|" * (len(METRICS) + 2)
    lines = [head, sep]
    for row in rows:
        cells = [_fmt(row["metrics"].get(key)) for key, _ in METRICS]
        lines.append(f"| {row['encoder']} | {row['pretraining']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_tag_roc_auc(predictions_npz: str, tag_names: list[str]) -> dict[str, float]:
    """Tag-wise ROC-AUC x100 from a probe's test_predictions.npz (NaN for a one-class tag)."""
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415
    data = np.load(predictions_npz)
    labels, scores = data["labels"], data["scores"]
    out = {}
    for i, name in enumerate(tag_names):
        y = labels[:, i]
        out[name] = float(100 * roc_auc_score(y, scores[:, i])) if 0 < y.sum() < len(y) \
            else float("nan")
    return out


def _save(fig, path: str) -> str:
    import matplotlib.pyplot as plt  # noqa: PLC0415

    with fileio.atomic_output(path) as local:
        fig.savefig(local, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    return plt


def probe_metrics_figure(rows: list[dict]):
    """Grouped bars of the probe metrics per encoder; the legend sits right of the axes."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.2, 3.6))
    width = 0.8 / len(rows)
    x = np.arange(len(METRICS))
    for i, row in enumerate(rows):
        vals = [row["metrics"].get(k) or 0.0 for k, _ in METRICS]
        bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, vals, width, label=row["encoder"],
                      color=COLORS[i % len(COLORS)])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, [name for _, name in METRICS])
    ax.set_ylim(0, 105)
    ax.set_ylabel("score x100 (test split)")
    ax.set_title("Linear probe on frozen encoders (demo corpus)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def pretrain_figure(histories: dict[str, dict]):
    """Per run: the loss on its own axes; below it the objective terms (as weighted in the loss
    when the history has `<term>_weighted`, else raw) with rep_std on a second y axis, so a
    rising variance term beside a falling rep_std (a collapse sign) is visible."""
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415

    from mssl_tf.eval.figures import objective_terms  # noqa: PLC0415  (matplotlib only)

    plt = _pyplot()
    n = max(1, len(histories))
    fig, axes = plt.subplots(2, n, figsize=(4.6 * n, 6.4), squeeze=False, sharex="col")
    for col, (name, hist) in enumerate(histories.items()):
        top, bottom = axes[0][col], axes[1][col]
        loss = hist.get("loss", [])
        epochs = np.arange(1, len(loss) + 1)
        top.plot(epochs, loss, marker="o", ms=3, color="k", label="loss")
        top.set_title(f"{name} pre-training: loss")
        top.grid(True, alpha=0.3)
        terms, weighted = objective_terms({k: v for k, v in hist.items() if k != "epoch"})
        for i, term in enumerate(terms):
            label = term[:-len("_weighted")] if weighted else term
            bottom.plot(np.arange(1, len(hist[term]) + 1), hist[term], lw=1.2, marker="o",
                        ms=2, color=COLORS[1 + i % (len(COLORS) - 1)], label=label)
        bottom.set_ylabel("weighted term" if weighted else "term (raw)")
        bottom.set_xlabel("epoch")
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        bottom.grid(True, alpha=0.3)
        handles, labels = bottom.get_legend_handles_labels()
        if "rep_std" in hist:
            twin = bottom.twinx()
            twin.plot(np.arange(1, len(hist["rep_std"]) + 1), hist["rep_std"], "--", color="k",
                      lw=1.2, label="rep_std (right axis)")
            twin.set_ylabel("rep_std")
            more_h, more_l = twin.get_legend_handles_labels()
            handles, labels = handles + more_h, labels + more_l
        bottom.set_title("objective terms " + ("(as weighted in the loss)" if weighted
                                               else "(raw)") + " and rep_std", fontsize=9)
        bottom.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.22),
                      ncol=2, fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def per_tag_figure(per_tag: dict[str, dict[str, float]]):
    """Tag-wise ROC-AUC bars per encoder; chance dashed; the legend right of the axes."""
    plt = _pyplot()
    tags = list(next(iter(per_tag.values())).keys()) if per_tag else []
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(tags) + 3), 3.4))
    width = 0.8 / max(1, len(per_tag))
    x = np.arange(len(tags))
    for i, (name, scores) in enumerate(per_tag.items()):
        ax.bar(x + (i - (len(per_tag) - 1) / 2) * width,
               [np.nan_to_num(scores[t], nan=0.0) for t in tags], width, label=name,
               color=COLORS[i % len(COLORS)])
    ax.axhline(50, color="k", lw=0.7, ls="--")
    ax.set_xticks(x, tags, rotation=30)
    ax.set_ylim(0, 105)
    ax.set_ylabel("ROC-AUC x100")
    ax.set_title("Tag-wise ROC-AUC (dashed: chance)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def write_figures(out_dir: str, rows: list[dict], histories: dict[str, dict],
                  per_tag: dict[str, dict[str, float]]) -> list[str]:
    """Writes probe_metrics.png, pretrain_loss.png and per_tag_roc_auc.png; returns the paths."""
    fileio.makedirs(out_dir)
    return [_save(probe_metrics_figure(rows), os.path.join(out_dir, "probe_metrics.png")),
            _save(pretrain_figure(histories), os.path.join(out_dir, "pretrain_loss.png")),
            _save(per_tag_figure(per_tag), os.path.join(out_dir, "per_tag_roc_auc.png"))]


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def seed_summary(per_seed: list[dict], *, floor: str) -> list[dict]:
    """Mean and spread over seeds of every encoder's probe scores and its gain over the floor.

    Args:
      per_seed: dicts with "encoder", "seed", "probe" (variant) and "metrics" (x100).
      floor: the encoder name of the random-init floor; an encoder's gain in one seed is its
        ROC-AUC minus the floor's ROC-AUC of the same seed and probe variant.

    Returns:
      One dict per (encoder, probe) in first-seen order: "encoder", "probe", "seeds",
      "roc_auc" / "pr_auc" / "gain_roc_auc" as {"mean", "std", "values"} ("gain_roc_auc" is
      None for the floor itself).

    Raises:
      ValueError: an encoder's seed has no floor result for the same probe variant.
    """
    floors = {(r["seed"], r["probe"]): r["metrics"]["roc_auc"] for r in per_seed
              if r["encoder"] == floor}
    out = []
    for encoder, probe in dict.fromkeys((r["encoder"], r["probe"]) for r in per_seed):
        sel = [r for r in per_seed if r["encoder"] == encoder and r["probe"] == probe]
        entry = {"encoder": encoder, "probe": probe, "seeds": [r["seed"] for r in sel]}
        for key in ("roc_auc", "pr_auc"):
            values = [float(r["metrics"][key]) for r in sel]
            mean, std = _mean_std(values)
            entry[key] = {"mean": mean, "std": std, "values": values}
        entry["gain_roc_auc"] = None
        if encoder != floor:
            missing = [r["seed"] for r in sel if (r["seed"], probe) not in floors]
            if missing:
                raise ValueError(f"no {floor!r} result for seed(s) {missing} with the {probe!r} "
                                 "probe, so the gain over the floor is undefined")
            values = [float(r["metrics"]["roc_auc"]) - floors[(r["seed"], probe)] for r in sel]
            mean, std = _mean_std(values)
            entry["gain_roc_auc"] = {"mean": mean, "std": std, "values": values}
        out.append(entry)
    return out


def _pm(stat: dict, signed: bool = False) -> str:
    text = f"{stat['mean']:+.2f}" if signed else f"{stat['mean']:.2f}"
    return text + (f" +- {stat['std']:.2f}" if len(stat["values"]) > 1 else "")


def gains_table(summary_rows: list[dict], probe_names: list[str] | None = None) -> str:
    """Markdown table of `seed_summary`: ROC-AUC, PR-AUC and the gain over the floor.

    Args:
      summary_rows: `seed_summary` output.
      probe_names: display names of the probe variants in order of first appearance.
    """
    variants = list(dict.fromkeys(r["probe"] for r in summary_rows))
    names = dict(zip(variants, probe_names or variants))
    lines = ["| encoder | probe | seeds | ROC-AUC | PR-AUC | gain over floor (ROC-AUC) |",
             "|---|---|---|---|---|---|"]
    for r in summary_rows:
        gain = "(the floor)" if r["gain_roc_auc"] is None else _pm(r["gain_roc_auc"], True)
        lines.append(f"| {r['encoder']} | {names[r['probe']]} | {len(r['seeds'])} | "
                     f"{_pm(r['roc_auc'])} | {_pm(r['pr_auc'])} | {gain} |")
    return "\n".join(lines)
