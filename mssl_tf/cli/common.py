"""What every `mssl-*` console script shares: flags, logging, quiet TensorFlow, error style.

A command builds its parser with `make_parser` (which adds `--version`, `--verbosity` and
`--no_progress`), parses, calls `setup(args)` before anything imports TensorFlow or Keras, and
reports bad input with `error(prog, message)`:

    def main(argv=None):
        args = build_parser().parse_args(argv)
        common.setup(args)
        common.import_tensorflow()           # only commands that need it
        from mssl_tf.eval import probe       # TensorFlow, quietly
        try:
            ...
        except (ValueError, FileNotFoundError) as e:
            return common.error("mssl-probe", e)

This module imports neither TensorFlow nor Keras, so `--help` and `--version` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from mssl_tf.version import __version__

logger = logging.getLogger(__name__)

# Level names as absl spells them, and absl's integer verbosities for the same levels.
VERBOSITY = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
             "error": logging.ERROR}
_ABSL_INTS = {"1": "debug", "0": "info", "-1": "warning", "-2": "error"}

# Lines TensorFlow's C++ runtime writes to stderr while it loads, whatever TF_CPP_MIN_LOG_LEVEL
# says (absl logs them before its log level is initialised): the absl preamble, INFO/WARNING
# log lines (oneDNN, CPU features, CUDA factories) and the CPU-feature line's continuation.
_TF_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+\.cc:\d+\]"
    r"|To enable the following instructions:)")

# Set by `setup`: whether the user set TF_CPP_MIN_LOG_LEVEL themselves (then nothing is hidden).
_USER_TF_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL" in os.environ


class HelpFormatter(argparse.HelpFormatter):
    """Shows each flag's default (when it has a meaningful one) and hides old flag spellings."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" not in text and "default" not in text.lower()
                and action.default not in (None, False, True, argparse.SUPPRESS, [])
                and action.option_strings):
            text += " (default: %(default)s)"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "hidden_aliases", ())
        if not hidden:
            return super()._format_action_invocation(action)
        shown = argparse.Action(option_strings=[o for o in action.option_strings
                                                if o not in hidden],
                                dest=action.dest, nargs=action.nargs, metavar=action.metavar,
                                default=action.default, help=action.help)
        return super()._format_action_invocation(shown)


def _verbosity(value: str) -> str:
    """argparse type of --verbosity: a level name or absl's integer for it."""
    name = _ABSL_INTS.get(value.strip(), value.strip().lower())
    if name not in VERBOSITY:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a verbosity; use one of {', '.join(VERBOSITY)} (or absl's 1, 0, "
            "-1, -2)")
    return name


def make_parser(prog: str, description: str, *, epilog: str | None = None
                ) -> argparse.ArgumentParser:
    """An argument parser with the flags every command has.

    Args:
      prog: the console script's name (`mssl-probe`); errors start with it.
      description: what the command does (shown by --help).
      epilog: optional text after the flags.

    Returns:
      A parser holding --version, --verbosity and --no_progress.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog,
                                     formatter_class=HelpFormatter)
    add_common_flags(parser)
    return parser


def add_common_flags(parser: argparse.ArgumentParser) -> None:
    """Adds --version, --verbosity and --no_progress to a parser (or a sub-command's parser)."""
    parser.add_argument("--version", action="version",
                        version=f"{parser.prog.split()[0]} (mssl_tf) {__version__}",
                        help="print the version and exit")
    parser.add_argument("--verbosity", type=_verbosity, default="info", metavar="LEVEL",
                        help="log level: debug, info, warning or error (absl's 1, 0, -1, -2 "
                             "too); error also turns progress output off (default: "
                             "%(default)s)")
    parser.add_argument("--no_progress", action="store_true",
                        help="no progress bars or progress lines (e.g. for logs of batch jobs)")


def add_alias(parser: argparse.ArgumentParser, canonical: str, *aliases: str,
              **kwargs) -> argparse.Action:
    """Adds a flag whose older spellings still work but are not shown by --help.

    Args:
      parser: the parser.
      canonical: the flag's name (`--out`); help and errors use it.
      *aliases: older spellings (`--out_dir`), accepted silently.
      **kwargs: as for `add_argument`.

    Returns:
      The argparse action.
    """
    action = parser.add_argument(canonical, *aliases, **kwargs)
    action.hidden_aliases = aliases
    return action


def progress_enabled(args: argparse.Namespace) -> bool:
    """Whether the command may show progress bars: not --no_progress nor --verbosity error."""
    return not getattr(args, "no_progress", False) and \
        VERBOSITY[getattr(args, "verbosity", "info")] < logging.ERROR


def keras_verbose(args: argparse.Namespace) -> int | str:
    """Keras' `verbose=` for fit/predict under these flags: "auto", or 0 for no progress."""
    return "auto" if progress_enabled(args) else 0


def setup(args: argparse.Namespace, *, log_format: str | None = None) -> None:
    """Applies the common flags; call it right after parsing, before TensorFlow is imported.

    Sets the logging level (and format), hides TensorFlow's C++ start-up lines unless the user
    set TF_CPP_MIN_LOG_LEVEL (or asked for --verbosity debug), and turns every tqdm bar off
    with --no_progress.

    Args:
      args: the parsed flags of a `make_parser` parser.
      log_format: logging format (default "%(asctime)s %(levelname)s %(message)s").
    """
    level = VERBOSITY[getattr(args, "verbosity", "info")]
    logging.basicConfig(level=level,
                        format=log_format or "%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(level)
    # TensorFlow reads this once, when it loads: 2 hides its C++ INFO and WARNING lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if level <= logging.DEBUG else "2")
    if not progress_enabled(args):
        os.environ["TQDM_DISABLE"] = "1"  # tqdm >= 4.66 reads TQDM_* as parameter defaults


@contextlib.contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Captures the process' stderr (file descriptor 2, where C++ writes) and replays it, less
    TensorFlow's start-up lines, when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True)
                    if not _TF_NOISE.match(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def import_tensorflow() -> None:
    """Imports TensorFlow (if installed) without its C++ start-up lines on the console.

    TensorFlow 2.21 prints "oneDNN custom operations are on" through absl before absl's log
    level is set, so TF_CPP_MIN_LOG_LEVEL cannot hide it; the lines are filtered from stderr
    while the module loads. Nothing is hidden when the user set TF_CPP_MIN_LOG_LEVEL, and every
    other line (errors, warnings of Python code) is passed through.
    """
    if "tensorflow" in sys.modules:
        return
    if _USER_TF_LOG_LEVEL or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        context: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:
        context = _filtered_stderr()
    with context, contextlib.suppress(ImportError):  # JAX-only installs have no TensorFlow
        import tensorflow  # noqa: F401,PLC0415


def wrong_output_kind(flag: str, path: str | None, *, folder: bool) -> str | None:
    """The message when an output path exists as the other kind, else None.

    Checked before any work, so the command stops with the flag's name instead of an OS error
    from deep inside (or, for a file output named like a folder, after embedding everything).

    Args:
      flag: the flag that named the path (`--out`).
      path: the path; None or a remote (`gs://`) path is not checked.
      folder: True when the command writes a folder there, False for a single file.
    """
    if not path or "://" in path:
        return None
    if folder and os.path.isfile(path):
        return (f"{flag} {path} is a file, not a folder; name a folder (a new one, or one this "
                "command wrote before).")
    if not folder and os.path.isdir(path):
        return (f"{flag} {path} is a folder; name the output file, e.g. "
                f"{os.path.join(path, 'embeddings.npz')}.")
    return None


def error(prog: str, message: object) -> int:
    """Prints `prog: error: message` (argparse's style) to stderr; returns exit status 2.

    gin adds "In call to configurable ..." lines to the messages of exceptions raised inside a
    configurable; they name our function, not the user's mistake, so they are left out.
    """
    text = "\n".join(line for line in str(message).splitlines()
                     if not line.strip().startswith("In call to configurable")).rstrip()
    print(f"{prog}: error: {text}", file=sys.stderr)
    return 2
