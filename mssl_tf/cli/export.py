"""`mssl-export`: a pre-training run's encoder (and a probe head) as a SavedModel + .keras file.

    mssl-export --model_dir RUN [--checkpoint latest|EPOCH|PATH] [--probe PROBE_DIR] --out DIR
"""

from __future__ import annotations

import argparse
import logging
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-export."""
    p = argparse.ArgumentParser(
        prog="mssl-export",
        description="Export a pre-trained encoder as a SavedModel with `embed`, `embed_track` "
                    "and (with --probe) `tag` signatures, plus the encoder as a .keras file.")
    p.add_argument("--model_dir", required=True, help="the `mssl-pretrain` run directory")
    p.add_argument("--checkpoint", default="latest",
                   help="'latest' (default), a milestone epoch, or a .weights.h5 path")
    p.add_argument("--probe", default=None,
                   help="an `mssl-probe` output folder (RUN/probes/<dataset>-<ckpt>/<head>); "
                        "adds the `tag` signature and the tag names")
    p.add_argument("--out", required=True, help="output folder (local or gs://)")
    p.add_argument("--overwrite", action="store_true", help="replace an export already in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from mssl_tf.export import saved_model  # noqa: PLC0415  (imports TensorFlow)

    try:
        saved_model.export_run(args.model_dir, args.out, checkpoint=args.checkpoint,
                               probe_dir=args.probe, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        print(f"mssl-export: error: {e}", file=sys.stderr)
        return 2
    print(saved_model.describe(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
