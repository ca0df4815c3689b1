"""`mssl-export`: a pre-training run's encoder (and a probe head) as a SavedModel + .keras file.

    mssl-export --model_dir RUN [--checkpoint latest|EPOCH|PATH] [--probe_dir PROBE_DIR] --out DIR
"""

from __future__ import annotations

import argparse
import os
import sys

from mssl_tf.cli import common

PROG = "mssl-export"


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-export."""
    p = common.make_parser(
        PROG, "Export a pre-trained encoder as a SavedModel with `embed`, `embed_track` and "
              "(with --probe_dir) `tag` signatures, plus the encoder as a .keras file.")
    p.add_argument("--model_dir", required=True, help="the `mssl-pretrain` run directory")
    p.add_argument("--checkpoint", default="latest",
                   help="'latest', a snapshot epoch, or a path to an encoder .weights.h5")
    common.add_alias(p, "--probe_dir", "--probe", default=None,
                     help="an `mssl-probe` output folder (RUN/probes/<dataset>-<ckpt>/<head>) "
                          "of this run; adds the `tag` signature and the tag names")
    common.add_alias(p, "--out", "--out_dir", required=True,
                     help="output folder (local or gs://)")
    p.add_argument("--overwrite", action="store_true", help="replace an export already in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    common.setup(args)
    if message := common.wrong_output_kind("--out", args.out, folder=True):
        return common.error(PROG, message)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # a SavedModel needs TensorFlow
    common.import_tensorflow()
    from mssl_tf.export import saved_model  # noqa: PLC0415  (imports TensorFlow)

    try:
        saved_model.export_run(args.model_dir, args.out, checkpoint=args.checkpoint,
                               probe_dir=args.probe_dir, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        return common.error(PROG, e)
    print(saved_model.describe(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
