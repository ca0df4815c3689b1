"""gin plumbing: search path, the fixed parse order, resume checks and helpful errors.

Parse order (always the same): the run's own config.gin when resuming, then the user's gin files
in the order given, then the user's bindings. A resumed run must end up with the same config,
or the user says `--allow_config_change`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import io
import os
import re
import sys

import gin

from mssl_tf import fileio, rundir

CONFIG_NAME = rundir.CONFIG_GIN


def _gin_dir() -> str:
    """The repository's gin/ (editable install, clone) or its installed copy under share/."""
    repo = os.path.normpath(os.path.join(os.path.dirname(__file__), os.pardir, "gin"))
    installed = os.path.join(sys.prefix, "share", "mssl_tf", "gin")
    return repo if os.path.isdir(repo) or not os.path.isdir(installed) else installed


GIN_DIR = _gin_dir()

# Modules whose import registers gin configurables (the Keras-only core first; the TensorFlow
# side only where TensorFlow is installed).
_CORE_MODULES = ("mssl_tf.configurables",)
_TF_MODULES = ("mssl_tf.train.experiment", "mssl_tf.eval.probe", "mssl_tf.eval.monitor")


def register_configurables() -> None:
    """Imports every module that registers gin configurables (idempotent)."""
    import mssl_tf  # noqa: PLC0415  (the package itself is light: subpackages load lazily)

    for name in _CORE_MODULES + (_TF_MODULES if mssl_tf.HAS_TENSORFLOW else ()):
        importlib.import_module(name)


# gin reads gin files with open(); files on gs:// go through mssl_tf.fileio instead.
gin.config.register_file_reader(lambda p: io.StringIO(fileio.read_text(p)),
                                lambda p: fileio.is_remote(p) and fileio.isfile(p))


def search_paths(extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Folders searched for relative gin file names: the working directory, `extra`, gin/."""
    paths = [os.getcwd(), *extra]
    if os.path.isdir(GIN_DIR):
        paths.append(GIN_DIR)
    return paths


def resolve_gin_file(path: str, extra: list[str] | tuple[str, ...] = ()) -> str:
    """The first existing match of a gin file name on the search path (or the name as given)."""
    if os.path.isabs(path) or "://" in path:
        return path
    for folder in search_paths(extra):
        candidate = os.path.join(folder, path)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"gin file {path!r} not found; looked in: "
                            f"{', '.join(search_paths(extra))}")


def _known_names() -> dict[str, list[str]]:
    """Every registered configurable's short name -> its parameter names."""
    registry = gin.config._REGISTRY._selector_map  # noqa: SLF001  (gin has no public listing)
    known = {}
    for selector, configurable in registry.items():
        try:
            params = list(inspect.signature(configurable.wrapped).parameters)
        except (TypeError, ValueError):
            params = []
        known[selector.split(".")[-1]] = params
        known[selector] = params
    return known


def explain_gin_error(error: Exception) -> str:
    """Adds "did you mean" suggestions to gin's unknown-name errors."""
    text = str(error)
    known = _known_names()
    m = re.search(r"No configurable matching '([^']+)'", text)
    if m and m.group(1) in RENAMED:
        return f"{text}\n'{m.group(1)}' was renamed: use {RENAMED[m.group(1)]}."
    if m:
        close = difflib.get_close_matches(m.group(1), list(known), n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        return (f"{text}\nUnknown gin configurable {m.group(1)!r}.{hint} Registered names are "
                "listed in mssl_tf/configurables.py and gin/README.md.")
    m = re.search(r"Configurable '([^']+)' doesn't have a parameter named '([^']+)'", text)
    if m and f"{m.group(1)}.{m.group(2)}" in RENAMED:
        return (f"{text}\n'{m.group(1)}.{m.group(2)}' was renamed: use "
                f"{RENAMED[m.group(1) + '.' + m.group(2)]} (see gin/README.md).")
    if m:
        params = known.get(m.group(1), [])
        close = difflib.get_close_matches(m.group(2), params, n=5, cutoff=0.5)
        hint = f" Close names: {', '.join(close)}." if close else ""
        return (f"{text}\nUnknown parameter {m.group(2)!r} of {m.group(1)!r}.{hint} Its "
                f"parameters: {', '.join(params)}.")
    return text


def _has_trained(model_dir: str) -> bool:
    return fileio.exists(rundir.path(model_dir, rundir.BACKUP_DIR, "state.json"))


# Bindings of mssl_tf < 0.2 and what replaced them (pretrain takes injected parts).
RENAMED = {
    "pretrain.objective": "pretrain.loss_fn = @vicreg_loss (or @nt_xent_loss)",
    "pretrain.projector": "pretrain.projector = @vicreg_projector (or @clmr_projector)",
    "build_projector": "vicreg_projector.spec / clmr_projector.spec",
    "pretrain.base_lr": "WarmupCosine.base_lr (or pretrain.learning_rate = 3e-4, a constant)",
    "pretrain.lr_schedule": "pretrain.learning_rate = @WarmupCosine (or a number: constant)",
    "pretrain.warmup_epochs": "WarmupCosine.warmup_epochs",
    "pretrain.scale_lr_with_batch": "WarmupCosine.batch_reference (a constant is not scaled)",
    "pretrain.global_stats": "Runtime.global_stats",
    "pretrain.precision": "Runtime.precision",
    "pretrain.steps_per_execution": "Runtime.steps_per_execution",
    "pretrain.jit_compile": "Runtime.jit_compile",
    "pretrain.devices": "Runtime.devices",
    "pretrain.collapse_monitors": "TrainLoop.collapse_monitors",
    "pretrain.backup_every_steps": "TrainLoop.backup_every_steps",
    "pretrain.milestones": "TrainLoop.milestones",
    "pretrain.max_steps": "TrainLoop.max_steps",
    "pretrain.extra_callbacks": "TrainLoop.callbacks",
    "pretrain.verbose": "TrainLoop.progress",
    "pretrain.shuffle_buffer": "TwoViewInput.shuffle_buffer",
    "pretrain.cache": "TwoViewInput.cache",
    "pretrain.crops_per_track": "TwoViewInput.crops_per_track",
    "pretrain.seed": "TwoViewInput.seed",
}


def parse(gin_files: list[str] = (), gin_params: list[str] = (), *, model_dir: str | None = None,
          allow_config_change: bool = False, extra_search_paths: list[str] = ()) -> str:
    """Parses gin in the fixed order and checks a resumed run's config.

    Args:
      gin_files: gin files (paths, or names relative to the search path, e.g.
        "experiments/vicreg_fma.gin").
      gin_params: bindings, e.g. ["pretrain.epochs = 3"].
      model_dir: run directory; the config.gin of a run that has trained (it has a backup) is
        parsed first and compared.
      allow_config_change: accept a resumed run whose config differs.
      extra_search_paths: more folders for gin files.

    Returns:
      The parsed config string.

    Raises:
      ValueError: unknown names (with close matches), or a resumed run whose config changed.
    """
    register_configurables()
    gin.clear_config()
    # `include` lines inside gin files name files relative to gin/ (checked first, so gin does
    # not log misses for the common case) or to the working directory and `extra` folders.
    prefixes = gin.config._LOCATION_PREFIXES  # noqa: SLF001  (gin only appends; reset per parse)
    prefixes[:] = ([GIN_DIR] if os.path.isdir(GIN_DIR) else []) + ["", *extra_search_paths]
    gin_files = [os.path.abspath(resolve_gin_file(f, extra_search_paths))
                 if "://" not in f else f for f in gin_files]
    saved_path = os.path.join(model_dir, CONFIG_NAME) if model_dir else None
    saved = None
    if saved_path and fileio.exists(saved_path) and _has_trained(model_dir):
        saved = fileio.read_text(saved_path)
    try:
        if saved is not None:
            gin.parse_config(saved)
        for path in gin_files:
            gin.parse_config_file(path)
        gin.parse_config(list(gin_params))
    except (ValueError, KeyError) as e:
        raise ValueError(explain_gin_error(e)) from None
    except OSError as e:
        raise FileNotFoundError(f"{e}. Gin files are looked up in: "
                                f"{', '.join(search_paths(extra_search_paths))}") from None
    config = gin.config_str()
    if saved is not None and saved != config and not allow_config_change:
        diff = "\n".join(difflib.unified_diff(saved.splitlines(), config.splitlines(),
                                              "saved config.gin", "this command", lineterm="", n=0))
        raise ValueError(
            f"{model_dir!r} holds a run with another config; resuming it with this one would mix "
            f"two experiments:\n{diff}\nUse a new --model_dir, or pass --allow_config_change to "
            "resume with the new values.")
    # config.gin is written by pretrain when training starts (a start that failed before that,
    # e.g. on a wrong data_dir, leaves nothing that would block its corrected rerun).
    return config
