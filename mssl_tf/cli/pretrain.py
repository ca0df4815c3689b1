"""`mssl-pretrain`: parse gin in the fixed order, then run `mssl_tf.train.pretrain`."""

from __future__ import annotations

import argparse
import os
import sys

from mssl_tf.cli import common

PROG = "mssl-pretrain"


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags of mssl-pretrain."""
    p = common.make_parser(
        PROG, "Self-supervised pre-training (VICReg or CLMR) of a SampleCNN encoder.")
    p.add_argument("--model_dir", required=True,
                   help="run directory (local or gs://); an existing run is resumed")
    p.add_argument("--gin_file", action="append", default=[],
                   help="gin file, e.g. experiments/vicreg_fma.gin (repeatable)")
    p.add_argument("--gin_param", action="append", default=[],
                   help="gin binding, e.g. 'pretrain.epochs = 10' (repeatable)")
    p.add_argument("--tpu", default=None, help="Cloud TPU name, or 'local' on a TPU VM")
    p.add_argument("--allow_config_change", action="store_true",
                   help="resume a run even though the gin config differs from its config.gin")
    p.add_argument("--wait_for_lock", type=float, nargs="?", const=-1.0, default=0.0,
                   metavar="SECONDS",
                   help="if another process trains in --model_dir, wait for it (for SECONDS, or "
                        "without limit when no value is given) instead of refusing")
    return p


def resume_command(argv: list[str], params: list[str]) -> str:
    """The command line that resumes a stopped run with extra gin bindings."""
    import shlex  # noqa: PLC0415

    extra = [a for p in params for a in ("--gin_param", p)]
    flag = [] if "--allow_config_change" in argv else ["--allow_config_change"]
    return shlex.join(["mssl-pretrain", *argv, *extra, *flag])


def check_data_bound(gin_files: list[str]) -> None:
    """Raises ValueError naming the fixes when the parsed config binds no `pretrain.data_dir`.

    Model and objective files (experiments/*_base.gin, small_*.gin, demo_*.gin) leave the data
    to the user; without this check gin stops the call with a RuntimeError traceback.
    """
    import gin  # noqa: PLC0415

    from mssl_tf import gin_utils  # noqa: PLC0415

    try:
        gin.query_parameter("pretrain.data_dir")
    except ValueError:
        datasets = os.path.join(gin_utils.GIN_DIR, "datasets")
        names = sorted(f"datasets/{f}" for f in os.listdir(datasets)) \
            if os.path.isdir(datasets) else []
        raise ValueError(
            f"no pre-training data: pretrain.data_dir is not bound by "
            f"{', '.join(gin_files) or 'the config'}. Add --gin_param \"pretrain.data_dir = "
            "'DIR'\" (DIR: a folder written by mssl-prepare)"
            + (f", or a dataset's gin file ({', '.join(names)})" if names else "") + "."
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    common.setup(args)
    common.import_tensorflow()
    from mssl_tf import gin_utils  # noqa: PLC0415  (imports TF)
    from mssl_tf.distribute.runtime import Runtime  # noqa: PLC0415
    from mssl_tf.train import experiment  # noqa: PLC0415
    from mssl_tf.train.lock import RunLockedError  # noqa: PLC0415

    wait = None if args.wait_for_lock < 0 else args.wait_for_lock
    # Only an explicit "no progress" overrides a gin binding of TrainLoop.progress.
    quiet = {} if common.progress_enabled(args) else {"progress": False}
    try:
        gin_utils.parse(args.gin_file, args.gin_param, model_dir=args.model_dir,
                        allow_config_change=args.allow_config_change)
        check_data_bound(args.gin_file)
        result = experiment.pretrain(args.model_dir, runtime=Runtime(tpu=args.tpu),
                                     loop=experiment.TrainLoop(wait_for_lock=wait, **quiet))
    except experiment.NonFiniteLossError as e:
        common.error(PROG, f"{e}\nResume from the last good backup with:\n  "
                           f"{resume_command(argv, e.resume_params[:1])}")
        return 3
    except (ValueError, FileNotFoundError, RunLockedError) as e:
        return common.error(PROG, e)
    print(f"Finished at step {result['step']} ({result['epoch']:.2f} epochs); run in "
          f"{result['model_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
