"""`mssl-probe`: linear/MLP probe of a pre-training run's encoder with CLMR's test protocol."""

from __future__ import annotations

import argparse
import sys

from mssl_tf.cli import common

PROG = "mssl-probe"


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-probe."""
    p = common.make_parser(
        PROG, "Train a linear or MLP probe on frozen-encoder features of a labelled dataset "
              "and test it with CLMR's chunk-averaged protocol. The encoder's architecture "
              "comes from RUN/run.json.")
    p.add_argument("--model_dir", required=True, help="pre-training run directory (RUN)")
    p.add_argument("--data_dir", required=True,
                   help="labelled shards from mssl-prepare (e.g. MTAT), with train/valid/test")
    p.add_argument("--head", choices=("linear", "mlp"), default=None,
                   help="probe head (default linear); selects gin/eval/probe_<head>.gin")
    p.add_argument("--checkpoint", default="latest",
                   help="'latest', a snapshot epoch, or a path to an encoder .weights.h5 "
                        "(overrides a run_probe.checkpoint binding)")
    p.add_argument("--random_init", action="store_true",
                   help="probe the run's architecture with random weights (the floor); its "
                        "BatchNorm statistics are first estimated on train crops "
                        "(run_probe.bn_crops, default 1024; 0 = keep mean 0 / variance 1)")
    p.add_argument("--standardize", action="store_true",
                   help="z-score the features with the train split's mean and std before the "
                        "head (stored in the saved head; off = CLMR's protocol)")
    p.add_argument("--gin_file", action="append", default=[],
                   help="more gin files, parsed after the head's file (repeatable)")
    p.add_argument("--gin_param", action="append", default=[],
                   help="gin binding, e.g. 'run_probe.max_epochs = 50' (repeatable)")
    common.add_alias(p, "--out", "--out_dir", default=None,
                     help="folder for results.json and the head (default "
                          "RUN/probes/<dataset>-<checkpoint>/<head>)")
    return p


def _format(results: dict) -> str:
    m = results["metrics"]
    parts = [f"ROC-AUC {m['roc_auc']:.2f}", f"PR-AUC {m['pr_auc']:.2f}",
             f"clip ROC-AUC {m['clip_roc_auc']:.2f}", f"clip PR-AUC {m['clip_pr_auc']:.2f}"]
    if "accuracy" in m:
        parts.append(f"accuracy {m['accuracy']:.2f}")
    counts = results["split_counts"]
    return (f"{results['head']} probe on {results['dataset']} ({results['checkpoint']['tag']}): "
            + ", ".join(parts) + f"; {counts['test']} test tracks, {counts['test_skipped']} "
            "skipped (shorter than two chunks)")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    common.setup(args)
    if message := common.wrong_output_kind("--out", args.out, folder=True):
        return common.error(PROG, message)
    common.import_tensorflow()
    from mssl_tf import gin_utils  # noqa: PLC0415  (imports TF)
    from mssl_tf.eval import probe  # noqa: PLC0415

    head = args.head or "linear"
    checkpoint = args.checkpoint
    overrides = {"random_init": args.random_init,
                 "checkpoint": int(checkpoint) if checkpoint.isdigit() else checkpoint}
    if args.standardize:
        overrides["standardize"] = True
    if args.head:
        overrides["head"] = args.head
    if args.out:
        overrides["out_dir"] = args.out
    try:
        gin_utils.parse([f"eval/probe_{head}.gin", *args.gin_file], args.gin_param)
        results = probe.run_probe(args.model_dir, args.data_dir, **overrides)
    except (ValueError, FileNotFoundError) as e:
        return common.error(PROG, e)
    print(_format(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
