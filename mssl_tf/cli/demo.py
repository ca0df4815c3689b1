"""`mssl-demo`: the whole pipeline on a generated music corpus, in minutes on a CPU.

    mssl-demo [--out demo_out] [--quick] [--epochs N] [--overwrite]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-demo."""
    p = argparse.ArgumentParser(
        prog="mssl-demo",
        description="Generate a small labelled music corpus, convert it with mssl-prepare, "
                    "pre-train VICReg and CLMR briefly, probe both and a random-init encoder, "
                    "export the VICReg encoder, and write a comparison table and figures.")
    p.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="a reduced run (16 training clips of 4 s, 1 epoch) for smoke tests")
    p.add_argument("--epochs", type=int, default=None,
                   help="pre-training epochs per objective (default 12; --quick: 1)")
    p.add_argument("--no_export", action="store_true", help="skip the SavedModel export")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--overwrite", action="store_true", help="replace earlier demo output in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        print("mssl-demo: error: --epochs must be at least 1", file=sys.stderr)
        return 2
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from mssl_tf.demo import run_demo  # noqa: PLC0415  (imports TensorFlow)

    try:
        results = run_demo(args.out, quick=args.quick, epochs=args.epochs,
                           overwrite=args.overwrite, progress=not args.no_progress,
                           export=not args.no_export)
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"mssl-demo: error: {e}", file=sys.stderr)
        return 2
    print(f"Done in {results['timings']['total']:.0f} s. Everything is in {args.out}/ "
          "(results.md, figures/, runs/, export/).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
