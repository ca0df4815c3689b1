"""`mssl-demo`: the whole pipeline on a generated music corpus, in minutes on a CPU.

    mssl-demo [--out demo_out] [--quick] [--epochs N] [--seeds N] [--overwrite]
"""

from __future__ import annotations

import argparse
import os
import sys

from mssl_tf.cli import common

PROG = "mssl-demo"


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-demo."""
    p = common.make_parser(
        PROG, "Generate a small labelled music corpus, convert it with mssl-prepare, pre-train "
              "VICReg and CLMR briefly, probe both and a random-init encoder, export the VICReg "
              "encoder, and write a comparison table and figures.")
    common.add_alias(p, "--out", "--out_dir", default="demo_out", help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="a reduced run (16 training clips of 4 s, 1 epoch) for smoke tests")
    p.add_argument("--epochs", type=int, default=None,
                   help="pre-training epochs per objective (default: each preset's own, "
                        "20; --quick: 1)")
    p.add_argument("--seeds", type=int, default=1,
                   help="pre-train and probe with N training seeds (0..N-1) and report the "
                        "mean +- std over seeds of every score and of each encoder's gain over "
                        "the random-init floor (default 1; the README's numbers use 3)")
    p.add_argument("--no_export", action="store_true", help="skip the SavedModel export")
    p.add_argument("--overwrite", action="store_true", help="replace earlier demo output in --out")
    # The demo prints its own stage lines and table; --verbosity info adds the library's logs.
    p.set_defaults(verbosity="warning")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        return common.error(PROG, "--epochs must be at least 1")
    if args.seeds < 1:
        return common.error(PROG, "--seeds must be at least 1")
    if message := common.wrong_output_kind("--out", args.out, folder=True):
        return common.error(PROG, message)
    common.setup(args, log_format="%(levelname)s %(message)s")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    common.import_tensorflow()
    from mssl_tf.demo import run_demo  # noqa: PLC0415  (imports TensorFlow)

    try:
        results = run_demo(args.out, quick=args.quick, epochs=args.epochs,
                           overwrite=args.overwrite, progress=common.progress_enabled(args),
                           export=not args.no_export, seeds=args.seeds)
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as e:
        return common.error(PROG, e)
    print(f"Done in {results['timings']['total']:.0f} s. Everything is in {args.out}/ "
          "(results.md, figures/, runs/, export/).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
