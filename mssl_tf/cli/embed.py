"""`mssl-embed`: embeddings (and tag probabilities) of your own audio files, in one output file.

    mssl-embed --model EXPORT_DIR|RUN_DIR [--checkpoint latest|EPOCH|PATH] [--probe_dir PROBE]
               --out embeddings.npz|.parquet [--chunks] [--hop SAMPLES] [--workers 2]
               INPUT [INPUT ...]

INPUT: a folder (searched recursively), a list file (.txt: one path per line), a glob, or audio
files; local or gs://. Failed files are listed in the output and on the console; a rerun of an
interrupted command resumes it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from mssl_tf.cli import common

PROG = "mssl-embed"


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-embed."""
    p = common.make_parser(
        PROG, "Embed audio files with a pre-trained encoder (an `mssl-export` folder or an "
              "`mssl-pretrain` run): one .npz (default) or .parquet file with each track's mean "
              "embedding, optionally per-chunk embeddings, and tag probabilities when the model "
              "has a probe head.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files, folders (recursive), list files (.txt) or globs")
    common.add_alias(p, "--model", "--model_dir", "--export_dir", required=True,
                     help="an `mssl-export` output folder, or an `mssl-pretrain` run directory")
    p.add_argument("--checkpoint", default="latest",
                   help="with a run directory: 'latest', a snapshot epoch, or a .weights.h5")
    common.add_alias(p, "--probe_dir", "--probe", default=None,
                     help="with a run directory: an `mssl-probe` folder of that checkpoint, "
                          "for tag probabilities")
    common.add_alias(p, "--out", "--output", "-o", default="embeddings.npz",
                     help="output file: .npz, or .parquet (needs pyarrow)")
    p.add_argument("--chunks", action="store_true",
                   help="also store per-chunk embeddings (and probabilities) with start times")
    p.add_argument("--hop", type=int, default=None,
                   help="chunk hop in samples for overlapping chunks (default: the test "
                        "protocol's non-overlapping chunks, the last one dropped)")
    p.add_argument("--workers", type=int, default=2,
                   help="decode processes (0: decode in the main process)")
    p.add_argument("--batch_size", type=int, default=32, help="chunks per encoder call")
    p.add_argument("--save_every", type=int, default=64,
                   help="finished tracks between two resumable partial saves")
    p.add_argument("--xla", action="store_true",
                   help="compile the batch function with XLA (no gain measured on CPU, where it "
                        "only adds compile time; try it on a GPU)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (and its unfinished partial results)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status.

    0 when at least one file is embedded (failed files are listed, on the console and in the
    output); 1 when files failed and none could be embedded; 2 for bad flags; 130 when stopped.
    """
    args = build_parser().parse_args(argv)
    common.setup(args)
    if message := common.wrong_output_kind("--out", args.out, folder=False):
        return common.error(PROG, message)
    if args.hop is not None and args.hop <= 0:
        return common.error(PROG, f"--hop must be a positive number of samples, got {args.hop}")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    common.import_tensorflow()
    from mssl_tf.embed import runner  # noqa: PLC0415  (imports TensorFlow)

    def _terminated(signum, _frame):  # SIGTERM (a scheduler, `timeout`): save, then stop
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminated)
    try:
        model = runner.load_model(args.model, args.checkpoint, args.probe_dir)
        summary = runner.embed_files(
            args.inputs, args.out, model, hop=args.hop, chunks=args.chunks,
            workers=args.workers, batch_size=args.batch_size, save_every=args.save_every,
            xla=args.xla, overwrite=args.overwrite, progress=common.progress_enabled(args))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        return common.error(PROG, e)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; finished tracks are kept, rerun the same command to "
              "resume.", file=sys.stderr)
        return 130
    failed = summary["failed"]
    print(f"{PROG}: {summary['embedded']} tracks embedded, {len(failed)} failed -> "
          f"{summary['output']} ({summary['tracks_per_s']:.2f} tracks/s"
          + (f"; {summary['resumed']} from an earlier run" if summary["resumed"] else "") + ")")
    for path, reason in failed[:20]:
        print(f"  failed: {path}: {reason}")
    if len(failed) > 20:
        print(f"  ... and {len(failed) - 20} more (failed_path / failed_reason in the output)")
    if failed and not summary["embedded"]:
        print(f"{PROG}: no file could be embedded (see the reasons above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
