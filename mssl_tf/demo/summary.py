"""The demo's comparison table (Markdown) and figures (PNG)."""

from __future__ import annotations

import os

import numpy as np

from mssl_tf import fileio

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


def write_figures(out_dir: str, rows: list[dict], histories: dict[str, dict],
                  per_tag: dict[str, dict[str, float]]) -> list[str]:
    """Writes probe_metrics.png, pretrain_loss.png and per_tag_roc_auc.png; returns the paths."""
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    colors = ["#9e9e9e", "#1f77b4", "#d62728", "#2ca02c"]

    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(rows)
    x = np.arange(len(METRICS))
    for i, row in enumerate(rows):
        vals = [row["metrics"].get(k) or 0.0 for k, _ in METRICS]
        bars = ax.bar(x + (i - (len(rows) - 1) / 2) * width, vals, width, label=row["encoder"],
                      color=colors[i % len(colors)])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(x, [name for _, name in METRICS])
    ax.set_ylim(0, 105)
    ax.set_ylabel("score x100 (test split)")
    ax.set_title("Linear probe on frozen encoders (demo corpus)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "probe_metrics.png"))
    with fileio.atomic_output(paths[-1]) as local:
        fig.savefig(local, dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, max(1, len(histories)), figsize=(4.2 * len(histories), 3.2),
                             squeeze=False)
    for ax, (name, hist) in zip(axes[0], histories.items()):
        loss = hist.get("loss", [])
        ax.plot(np.arange(1, len(loss) + 1), loss, marker="o", ms=3, label="loss")
        for term in ("invariance", "variance", "covariance"):
            if term in hist:
                ax.plot(np.arange(1, len(hist[term]) + 1), hist[term], lw=1, label=term)
        ax.set_xlabel("epoch")
        ax.set_title(f"{name} pre-training")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "pretrain_loss.png"))
    with fileio.atomic_output(paths[-1]) as local:
        fig.savefig(local, dpi=120)
    plt.close(fig)

    tags = list(next(iter(per_tag.values())).keys()) if per_tag else []
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(tags) + 2), 3.4))
    width = 0.8 / max(1, len(per_tag))
    x = np.arange(len(tags))
    for i, (name, scores) in enumerate(per_tag.items()):
        ax.bar(x + (i - (len(per_tag) - 1) / 2) * width,
               [np.nan_to_num(scores[t], nan=0.0) for t in tags], width, label=name,
               color=colors[i % len(colors)])
    ax.axhline(50, color="k", lw=0.7, ls="--")
    ax.set_xticks(x, tags, rotation=30)
    ax.set_ylim(0, 105)
    ax.set_ylabel("ROC-AUC x100")
    ax.set_title("Tag-wise ROC-AUC (dashed: chance)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "per_tag_roc_auc.png"))
    with fileio.atomic_output(paths[-1]) as local:
        fig.savefig(local, dpi=120)
    plt.close(fig)
    return paths
