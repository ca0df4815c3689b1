"""`mssl-prepare`: FMA, GTZAN, MagnaTagATune or any audio folder -> sharded TFRecords.

    mssl-prepare fma --audio_dir fma_medium --tracks_csv fma_metadata/tracks.csv --subset medium \\
        --out OUT
    mssl-prepare gtzan --audio_dir genres --out OUT [--split filtered|all] [--split_dir DIR]
    mssl-prepare mtat --audio_dir mp3 --annotations annotations_final.csv --out OUT \\
        [--split pons2017|DIR] [--top_n 50]
    mssl-prepare folder --audio_dir DIR [--labels labels.csv] --out OUT
    mssl-prepare verify --out OUT

A thin CLI: the work is done by data_tools.datasets (listing), audio_io (decoding) and
tfrecord_lib (sharded writing). TensorFlow is imported inside `main` only, once the arguments
are parsed (`--help` and argument errors stay fast): decode workers are spawned processes that
re-import this module, and must stay small. `--out_dir` is kept as a hidden alias of `--out`.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from collections.abc import Sequence

from mssl_tf import fileio
from mssl_tf.cli import common

PROG = "mssl-prepare"


def _add_out_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    common.add_alias(parser, "--out", "--out_dir", metavar="DIR", default=None, help=help_text)


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    _add_out_flag(parser, "output folder, local or gs:// (required; created when missing)")
    from data_tools.audio_io import available_cores  # noqa: PLC0415  TensorFlow-free
    parser.add_argument("--workers", type=int, default=available_cores(),
                        help="decode processes (default: all %(default)s cores)")
    parser.add_argument("--shard_size_mb", type=float, default=200.0,
                        help="target shard size in MB of audio (default: %(default)s)")
    parser.add_argument("--tracks_per_shard", type=int, default=None,
                        help="fixed number of tracks per shard instead of --shard_size_mb")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace another conversion found in --out")
    parser.add_argument("--runner", default=None,
                        help="run as an Apache Beam pipeline with this runner (DirectRunner, "
                             "DataflowRunner; needs the `beam` extra); further Beam options "
                             "(--project, --region, --temp_location, ...) are passed to it; "
                             "default: local worker processes")


class _Subcommands:
    """Sub-command parsers with the shared help style and flags (--version, --verbosity,
    --no_progress), so that they can follow the sub-command as every other flag does."""

    def __init__(self, subparsers: argparse._SubParsersAction):
        self._subparsers = subparsers

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        parser = self._subparsers.add_parser(name, formatter_class=common.HelpFormatter,
                                             description=kwargs.get("help"), **kwargs)
        common.add_common_flags(parser)
        return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `mssl-prepare` (one sub-command per dataset, plus verify)."""
    parser = common.make_parser(PROG, __doc__.split("\n\n")[0])
    sub = _Subcommands(parser.add_subparsers(dest="dataset", required=True))

    fma = sub.add_parser("fma", help="Free Music Archive (fma_small/medium/large/full)")
    fma.add_argument("--audio_dir", required=True, help="e.g. fma_medium/ (holding 000/ ...)")
    fma.add_argument("--tracks_csv", required=True, help="fma_metadata/tracks.csv")
    fma.add_argument("--genres_csv", default=None, help="genres.csv (default: next to tracks.csv)")
    fma.add_argument("--subset", default="medium", choices=["small", "medium", "large", "full"],
                     help="FMA subset: its tracks and official train/valid/test split "
                          "(default: %(default)s)")
    fma.add_argument("--label", default="top_genre", choices=["top_genre", "genres_all"],
                     help="top_genre: one-hot over the 16 top-level genres; genres_all: "
                          "multi-hot over every genre a track lists (default: %(default)s)")
    _add_output_flags(fma)

    gtzan = sub.add_parser("gtzan", help="GTZAN genres/<genre>/<genre>.000NN.wav")
    gtzan.add_argument("--audio_dir", required=True, help="the `genres` folder")
    gtzan.add_argument("--split", default="filtered", choices=["filtered", "all"],
                       help="filtered: the fault-filtered lists of Kereliuk, Sturm & Larsen "
                            "(443/197/290 tracks); all: every file of the tree, in train "
                            "(default: %(default)s)")
    gtzan.add_argument("--split_dir", default=None,
                       help="folder with other {train,valid,test}_filtered.txt lists")
    _add_output_flags(gtzan)

    mtat = sub.add_parser("mtat", help="MagnaTagATune mp3/ + annotations_final.csv")
    mtat.add_argument("--audio_dir", required=True, help="folder holding 0/ ... f/")
    mtat.add_argument("--annotations", required=True, help="annotations_final.csv")
    mtat.add_argument("--split", default="pons2017",
                      help="'pons2017' (default) or a folder of split files")
    mtat.add_argument("--top_n", type=int, default=50,
                      help="most frequent tags kept as labels (default: %(default)s)")
    _add_output_flags(mtat)

    folder = sub.add_parser("folder", help="any folder of wav/mp3/flac/ogg/au files")
    folder.add_argument("--audio_dir", required=True,
                        help="folder searched recursively for wav/mp3/flac/ogg/au files")
    folder.add_argument("--labels", default=None,
                        help="CSV with path,labels[,split] columns (labels ';'-separated, paths "
                             "relative to --audio_dir); default: unlabelled")
    folder.add_argument("--name", default=None, help="dataset name (default: the folder name)")
    folder.add_argument("--valid_fraction", type=float, default=0.0,
                        help="share of files without a split in the CSV placed in valid, by a "
                             "stable hash of the path (default: %(default)s)")
    folder.add_argument("--test_fraction", type=float, default=0.0,
                        help="share placed in test, likewise (default: %(default)s)")
    _add_output_flags(folder)

    verify = sub.add_parser("verify", help="re-read every shard and check it against the manifest")
    verify.add_argument("folder", nargs="?", metavar="DIR",
                        help="output folder of a conversion (the same as --out)")
    _add_out_flag(verify, "output folder of a conversion, local or gs://")
    return parser


# The input files each dataset's reader opens: (flag, argument, what the flag should name).
INPUT_FILES = {
    "fma": (("--tracks_csv", "tracks_csv", "FMA's fma_metadata/tracks.csv"),
            ("--genres_csv", "genres_csv", "FMA's fma_metadata/genres.csv")),
    "mtat": (("--annotations", "annotations", "MagnaTagATune's annotations_final.csv"),),
    "folder": (("--labels", "labels", "a CSV with 'path' and 'labels' columns"),),
}


def check_input_files(args: argparse.Namespace) -> None:
    """Raises FileNotFoundError naming the flag and what it should name, for a missing file."""
    for flag, dest, what in INPUT_FILES.get(args.dataset, ()):
        path = getattr(args, dest, None)
        if path and not fileio.isfile(path):
            state = "a folder" if fileio.isdir(path) else "not found"
            raise FileNotFoundError(f"{flag} {path}: {state}; pass {what}.")


def list_dataset(args: argparse.Namespace):
    """Runs the dataset's reader for parsed arguments; returns its Listing."""
    from data_tools.datasets import fma, folder, gtzan, mtat  # noqa: PLC0415
    check_input_files(args)
    if args.dataset == "fma":
        return fma.list_tracks(args.audio_dir, args.tracks_csv, args.subset, args.label,
                               args.genres_csv)
    if args.dataset == "gtzan":
        return gtzan.list_tracks(args.audio_dir, args.split, args.split_dir)
    if args.dataset == "mtat":
        return mtat.list_tracks(args.audio_dir, args.annotations, args.split, args.top_n)
    return folder.list_tracks(args.audio_dir, args.labels, args.name, args.valid_fraction,
                              args.test_fraction)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `timeout`, `kill`) received during a conversion."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _stop_on_sigterm() -> object:
    """Makes SIGTERM stop a conversion as Ctrl-C does: the current shard's temporary file is
    removed, the decode workers are stopped, finished shards are kept. Returns the old handler
    (None when this is not the main thread, where handlers cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _restore_sigterm(previous: object) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mssl-prepare`; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and not getattr(args, "runner", None):
        parser.error(f"unrecognized arguments: {' '.join(beam_args)} (Beam pipeline options are "
                     "accepted only with --runner)")
    out = args.out or getattr(args, "folder", None)
    if getattr(args, "folder", None) and args.out and args.folder != args.out:
        parser.error(f"two output folders given: {args.folder} and --out {args.out}")
    if not out:
        parser.error(f"the following arguments are required: --out (mssl-prepare {args.dataset} "
                     "--help shows them all)")
    if getattr(args, "workers", 1) < 1:
        parser.error(f"--workers must be at least 1 (1 decodes in this process), got "
                     f"{args.workers}")
    common.setup(args, log_format="mssl-prepare: %(message)s")
    common.import_tensorflow()  # without its C++ start-up lines
    if args.dataset == "verify":
        return _verify(out)
    from data_tools import tfrecord_lib  # noqa: PLC0415

    try:
        listing = list_dataset(args)
    except (FileNotFoundError, ValueError) as error:
        return common.error(PROG, error)
    command = "mssl-prepare " + shlex.join(argv)
    options = dict(shard_bytes=int(args.shard_size_mb * 2**20),
                   tracks_per_shard=args.tracks_per_shard, command=command,
                   overwrite=args.overwrite)
    previous = _stop_on_sigterm()
    try:
        if args.runner:
            from data_tools import beam_pipeline  # noqa: PLC0415
            manifest = beam_pipeline.convert(listing, out, runner=args.runner,
                                             pipeline_args=beam_args, **options)
        else:
            manifest = tfrecord_lib.convert(listing, out, workers=args.workers,
                                            progress=common.progress_enabled(args), **options)
    except ValueError as error:
        return common.error(PROG, error)
    except KeyboardInterrupt as stop:
        what = "terminated" if isinstance(stop, Terminated) else "interrupted"
        print(f"\nmssl-prepare: {what}. Finished shards are kept in {out}; run the "
              "same command again to convert the rest.", file=sys.stderr)
        return 143 if isinstance(stop, Terminated) else 130
    finally:
        _restore_sigterm(previous)
    counts = ", ".join(f"{s} {e['num_tracks']}" for s, e in manifest["splits"].items())
    print(f"wrote {out}: {counts} tracks; {len(manifest['skipped'])} skipped, "
          f"{len(manifest['flagged'])} flagged, {manifest['clipped_samples']} clipped samples")
    if manifest["skipped"]:
        print("skipped:\n" + tfrecord_lib.describe_skipped(manifest["skipped"]))
    return 0


def _verify(out: str) -> int:
    from data_tools import manifest as manifest_lib  # noqa: PLC0415

    problems = manifest_lib.verify(out)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    if problems:
        return 1
    m = fileio.read_manifest(out)
    counts = ", ".join(f"{s} {e['num_tracks']}" for s, e in m["splits"].items())
    print(f"OK {out}: {m['dataset']}, {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
