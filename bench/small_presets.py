"""Do the small-data presets learn? Pre-train on the demo corpus, probe, compare with the floor.

For each configuration (a gin file plus bindings) and each seed, this pre-trains on the demo
corpus (`mssl_tf.demo.corpus`) and probes the frozen encoder twice:

- `clmr`: the demo's CLMR-protocol linear probe (`mssl_tf.demo.run.PROBE`: Adam, plateau, early
  stop; chunk-averaged test probabilities, macro ROC-AUC);
- `std_lr`: a standardised logistic regression (scikit-learn, train-split z-score, C chosen on
  the valid split) on the same cached features, so that feature scale cannot decide the result.

The floor is the same architecture with random weights (seed for seed), probed both ways, once
with BatchNorm's initial moving statistics (mean 0, variance 1: what `--random_init` gives
without estimation) and once with BatchNorm statistics estimated on training crops (the
"honest" floor: `mssl_tf.eval.probe.estimate_bn_statistics`). Results go to
OUT/results.jsonl (one line per probe) and a Markdown summary (mean and spread over seeds) to
stdout and OUT/summary.md.

    python bench/small_presets.py --out /tmp/presets --seeds 0,1,2 \
        --config demo_vicreg --config floor --config demo_clmr
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

import numpy as np

# The repository's own package, not an installed copy of another checkout.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Train crops the estimated floor's BatchNorm statistics are averaged over.
BN_CROPS = 256
# Bindings on top of a gin file; `mssl-demo` adds pretrain.data_dir and the seeds.
CONFIGS = {
    "demo_vicreg": ("experiments/demo_vicreg.gin", []),
    "demo_clmr": ("experiments/demo_clmr.gin", []),
}


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=os.path.dirname(__file__)).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def std_logistic_regression(work_dir: str) -> float:
    """Macro ROC-AUC x100 of a standardised logistic regression on a probe's cached features.

    One binary logistic regression per tag on train features z-scored with the train split's
    statistics; C from {0.01, 0.1, 1, 10} by the valid split's macro ROC-AUC; test tracks
    scored by the mean of their chunks' probabilities (CLMR's test protocol).
    """
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415
    from sklearn.metrics import roc_auc_score  # noqa: PLC0415
    from sklearn.multiclass import OneVsRestClassifier  # noqa: PLC0415

    from mssl_tf.eval import metrics  # noqa: PLC0415

    f = {s: np.load(os.path.join(work_dir, f"features_{s}.npz")) for s in
         ("train", "valid", "test")}
    x_train = f["train"]["features"].astype(np.float64)
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1e-30), std, 1.0)

    def z(x):
        return (np.asarray(x, np.float64) - mean) / std

    best = None
    for c in (0.01, 0.1, 1.0, 10.0):
        clf = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000))
        clf.fit(z(x_train), f["train"]["labels"])
        y_valid = f["valid"]["labels"]
        keep = (y_valid.sum(0) > 0) & (y_valid.sum(0) < len(y_valid))
        score = roc_auc_score(y_valid[:, keep], clf.predict_proba(z(f["valid"]["features"]))[
            :, keep], average="macro")
        if best is None or score > best[0]:
            best = (score, clf)
    clf = best[1]
    test = f["test"]
    chunk_probs = clf.predict_proba(z(test["features"]))
    n_tracks = len(test["track_ids"])
    sums = np.zeros((n_tracks, chunk_probs.shape[1]))
    np.add.at(sums, test["owner"], chunk_probs)
    counts = np.bincount(test["owner"], minlength=n_tracks)[:, None]
    track_probs = sums / np.maximum(counts, 1)
    return float(metrics.probe_metrics(test["labels"], track_probs, multi_label=True)["roc_auc"])


def _probe_kwargs(probe_epochs: int) -> dict:
    from mssl_tf.demo import run  # noqa: PLC0415
    return {**run.PROBE, "max_epochs": probe_epochs}


def floor(run_dir: str, shards: str, seed: int, probe_epochs: int, out: str) -> list[dict]:
    """Random-init probes of `run_dir`'s architecture: BN initial and BN estimated."""
    from mssl_tf.eval import probe  # noqa: PLC0415

    rows = []
    # bn_crops 0: the initial moving statistics; 256: estimated on that many train crops.
    for config, name, bn_crops in (("floor_bn_initial", "bn0", 0),
                                   ("floor_bn_estimated", "bnest", BN_CROPS)):
        work = os.path.join(out, f"floor_{name}_s{seed}")
        res = probe.run_probe(run_dir, shards, head="linear", random_init=True, seed=seed,
                              bn_crops=bn_crops, out_dir=os.path.join(work, "linear"),
                              cache_dir=work, **_probe_kwargs(probe_epochs))
        rows.append({"config": config, "seed": seed, "bn_stats": res["bn_stats"],
                     "clmr": res["metrics"]["roc_auc"], "std_lr": std_logistic_regression(work)})
    return rows


def pretrain_and_probe(name: str, gin_file: str, params: list[str], shards: str, seed: int,
                       epochs: int | None, probe_epochs: int, out: str) -> dict:
    """One pre-training run and its two probes."""
    import keras  # noqa: PLC0415

    from mssl_tf import gin_utils  # noqa: PLC0415
    from mssl_tf.eval import probe  # noqa: PLC0415
    from mssl_tf.train import experiment  # noqa: PLC0415

    run_dir = os.path.join(out, "runs", f"{name}_s{seed}")
    bindings = [f"pretrain.data_dir = '{shards}'", f"TwoViewInput.seed = {seed}", *params]
    if epochs is not None:
        bindings.append(f"pretrain.epochs = {epochs}")
    keras.utils.set_random_seed(seed)
    gin_utils.parse([gin_file], bindings, model_dir=run_dir)
    t = time.time()
    result = experiment.pretrain(run_dir, loop=experiment.TrainLoop(progress=False))
    seconds = time.time() - t
    hist = result["history"]
    res = probe.run_probe(run_dir, shards, head="linear", seed=seed,
                          **_probe_kwargs(probe_epochs))
    work = os.path.join(run_dir, "probes", f"{res['dataset']}-{res['checkpoint']['tag']}")
    return {"config": name, "seed": seed, "steps": int(result["step"]),
            "pretrain_s": round(seconds, 1), "clmr": res["metrics"]["roc_auc"],
            "std_lr": std_logistic_regression(work), "bindings": params,
            "loss_first": float(hist["loss"][0]) if hist.get("loss") else None,
            "loss_last": float(hist["loss"][-1]) if hist.get("loss") else None,
            "run_dir": run_dir}


def summarise(rows: list[dict], floor: str = "floor_bn_estimated") -> str:
    """Markdown: per configuration and probe, ROC-AUC and its gain over `floor`, seed for seed
    (mean +- sample std over seeds, `mssl_tf.demo.summary.seed_summary`)."""
    from mssl_tf.demo import summary  # noqa: PLC0415
    per_seed = [{"encoder": r["config"], "seed": r["seed"], "probe": probe,
                 "metrics": {"roc_auc": r[probe], "pr_auc": float("nan")}}
                for r in rows for probe in ("clmr", "std_lr")]
    has_floor = any(r["config"] == floor for r in rows)
    if has_floor:
        seeds = {r["seed"] for r in rows if r["config"] == floor}
        per_seed = [r for r in per_seed if r["seed"] in seeds]
    else:
        floor = "(none)"
    lines = ["| configuration | probe | seeds | ROC-AUC | gain over floor | steps | pre-train s |",
             "|---|---|---|---|---|---|---|"]
    for e in summary.seed_summary(per_seed, floor=floor) if has_floor else []:
        sel = [r for r in rows if r["config"] == e["encoder"]]
        gain = "(floor)" if e["gain_roc_auc"] is None else \
            f"{e['gain_roc_auc']['mean']:+.2f} +- {e['gain_roc_auc']['std']:.2f}"
        secs = [r["pretrain_s"] for r in sel if "pretrain_s" in r]
        timing = f"{sel[0].get('steps', '')} | {np.mean(secs):.0f}" if secs else " | "
        lines.append(f"| {e['encoder']} | {e['probe']} | {len(e['seeds'])} | "
                     f"{e['roc_auc']['mean']:.2f} +- {e['roc_auc']['std']:.2f} | {gain} | "
                     f"{timing} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--counts", default=None,
                   help="clips per split of the demo corpus, e.g. train=64,valid=32,test=64 "
                        "(default: the demo's, mssl_tf.demo.corpus.DEFAULT_COUNTS)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--seeds", default="0")
    p.add_argument("--config", action="append", dest="configs",
                   help="a name from CONFIGS, 'floor', or NAME=GIN_FILE[;BINDING;...]; repeat "
                        "(default: demo_vicreg, floor, demo_clmr)")
    p.add_argument("--bind", action="append", default=[],
                   help="a gin binding added to every pre-training configuration")
    p.add_argument("--epochs", type=int, default=None, help="override pretrain.epochs")
    p.add_argument("--probe_epochs", type=int, default=150)
    p.add_argument("--inter_op_threads", type=int, default=1,
                   help="TensorFlow inter-op threads (0: TensorFlow's default). With more than "
                        "one, VICReg's pre-training on CPU is not bit-for-bit repeatable (CLMR's "
                        "is); with 1, two runs of a seed give the same loss to the last digit")
    p.add_argument("--summarise", action="store_true",
                   help="only print the table of OUT/results.jsonl (every run so far)")
    args = p.parse_args(argv)
    results_path = os.path.join(args.out, "results.jsonl")
    if args.summarise:
        with open(results_path, encoding="utf-8") as f:
            print(summarise([json.loads(line) for line in f if line.strip()]))
        return 0
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    logging.basicConfig(level=logging.WARNING)
    import tensorflow as tf  # noqa: PLC0415

    # Before any TensorFlow op runs: the thread pools are fixed at the first op.
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    from mssl_tf.demo import corpus, run  # noqa: PLC0415

    counts = ({k: int(v) for k, v in (x.split("=") for x in args.counts.split(","))}
              if args.counts else dict(corpus.DEFAULT_COUNTS))
    shards = os.path.join(args.out, "shards")
    if not os.path.exists(os.path.join(shards, "manifest.json")):
        made = corpus.write_corpus(os.path.join(args.out, "audio"), counts=counts,
                                   seconds=args.seconds, seed=0, progress=False)
        run.prepare(os.path.join(args.out, "audio"), made["labels_csv"], shards, False)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for spec in args.configs or ["demo_vicreg", "floor", "demo_clmr"]:
        for seed in seeds:
            t = time.time()
            if spec == "floor":
                ref = os.path.join(args.out, "runs", f"demo_vicreg_s{seed}")
                if not os.path.exists(os.path.join(ref, "run.json")):
                    raise SystemExit("run demo_vicreg before floor (its run.json names the "
                                     "architecture)")
                new = floor(ref, shards, seed, args.probe_epochs, args.out)
            else:
                if "=" in spec:
                    name, rest = spec.split("=", 1)
                    gin_file, *params = rest.split(";")
                else:
                    name, (gin_file, params) = spec, CONFIGS[spec]
                new = [pretrain_and_probe(name, gin_file, [*args.bind, *params], shards, seed,
                                          args.epochs, args.probe_epochs, args.out)]
            for r in new:
                r.update(commit=_git_commit(), seconds=round(time.time() - t, 1),
                         counts=counts, inter_op_threads=args.inter_op_threads)
                print(json.dumps(r), flush=True)
                with open(results_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(r) + "\n")
            rows += new
    text = summarise(rows)
    print(text)
    with open(os.path.join(args.out, "summary.md"), "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
