"""The run directory: its layout, run.json, encoder snapshots and weight files.

One module owns where things live in a pre-training run (`--model_dir RUN`); training writes it,
probing and export read it, and none of them spells a path of its own:

  RUN/run.json                 what the run is (encoder, objective, projector, data, batch,
                               schedule) and how far it got (latest_epoch); written by
                               mssl-pretrain, read by mssl-probe, mssl-export, mssl-report
  RUN/config.gin               the gin config the run started with (a resume must match it)
  RUN/operative_config.gin     gin's operative config: every value the run used
  RUN/history.csv              one row per finished epoch (loss, terms, monitors, lr, step)
  RUN/train.log                the console's INFO lines of every start and resume
  RUN/logs/train/              TensorBoard: one event stream, scalars against the optimizer step
  RUN/snapshots/               encoder_latest.weights.h5 and encoder_epoch_NNNNN.weights.h5
  RUN/backup/                  state.json + step-NNNNNNNNN.{weights.h5,optimizer.npz} (resume)
  RUN/probes/<dataset>-<ckpt>/ cached features; <head>/ holds a probe's results and head
  RUN/lock.json                the owner of a running run (removed when it ends)

Every file is written atomically (`mssl_tf.fileio`), so a crash never leaves a half-written file
where a reader or a resume looks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mssl_tf import fileio

if TYPE_CHECKING:
    import keras

RUN_JSON = "run.json"
CONFIG_GIN = "config.gin"
OPERATIVE_GIN = "operative_config.gin"
HISTORY_CSV = "history.csv"
TRAIN_LOG = "train.log"
LOGS_DIR = "logs"
SNAPSHOT_DIR = "snapshots"
BACKUP_DIR = "backup"
PROBES_DIR = "probes"
LOCK_JSON = "lock.json"
LATEST = "encoder_latest.weights.h5"
# run.json's layout version: 1 had `projector: {"kind", "output_dim"}` and no `format` key;
# 2 records the projector's name and spec.
RUN_FORMAT = 2


def path(model_dir: str, *parts: str) -> str:
    """A path inside the run directory (local or gs://)."""
    return fileio.join(model_dir, *parts)


def snapshot_name(epoch: int) -> str:
    """File name of the encoder snapshot taken at the end of `epoch` (1-based)."""
    return f"encoder_epoch_{epoch:05d}.weights.h5"


def is_run(model_dir: str) -> bool:
    """True when `model_dir` holds a run.json."""
    return fileio.exists(path(model_dir, RUN_JSON))


def read_run(model_dir: str) -> dict:
    """Reads RUN/run.json.

    Raises:
      FileNotFoundError: the folder is not a run (names it and what to pass instead).
      ValueError: run.json is not a JSON object (truncated or edited by hand).
    """
    run_path = path(model_dir, RUN_JSON)
    try:
        run = fileio.read_json(run_path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{model_dir!r} is not a pre-training run (no {RUN_JSON}); pass the --model_dir "
            "of an `mssl-pretrain` run.") from None
    if not isinstance(run, dict) or "encoder" not in run:
        raise ValueError(f"{run_path} is not the run.json of an mssl-pretrain run (no 'encoder' "
                         "entry); it may have been edited by hand.")
    return run


def write_run(model_dir: str, run: dict) -> None:
    """Writes RUN/run.json atomically."""
    fileio.write_json(path(model_dir, RUN_JSON), {**run, "format": RUN_FORMAT})


def update_run(model_dir: str, **fields: Any) -> dict:
    """Sets fields of RUN/run.json (which must exist) and returns the new content."""
    run = read_run(model_dir)
    run.update(fields)
    write_run(model_dir, run)
    return run


def projector_name(run: dict) -> str:
    """The projector family of a run ("vicreg" or "clmr"), from any run.json format."""
    projector = run.get("projector")
    if isinstance(projector, dict):
        return str(projector.get("name") or projector.get("kind") or "vicreg")
    return str(projector or "vicreg")


def save_weights(model: keras.Model, weights_path: str) -> None:
    """`model.save_weights` to a local or gs:// `.weights.h5` path, atomically."""
    with fileio.atomic_output(weights_path) as local:
        model.save_weights(local)


def load_weights(model: keras.Model, weights_path: str) -> None:
    """Loads a `.weights.h5` file from a local or gs:// path into a built model."""
    with fileio.local_copy(weights_path) as local:
        model.load_weights(local)


def build_encoder_from_run(model_dir: str) -> keras.Model:
    """The run's encoder architecture with fresh (random) weights."""
    from mssl_tf.models.sample_cnn import build_sample_cnn  # noqa: PLC0415  (Keras, on demand)

    spec = read_run(model_dir)["encoder"]
    return build_sample_cnn(rep_dim=spec["rep_dim"], crop_len=spec["crop_len"],
                            widths=tuple(spec["widths"]))


def list_snapshots(model_dir: str) -> dict[int, str]:
    """Milestone snapshots of a run, {epoch: path}."""
    found = {}
    for snap in fileio.glob(path(model_dir, SNAPSHOT_DIR, "encoder_epoch_*.weights.h5")):
        stem = fileio.basename(snap)[len("encoder_epoch_"):-len(".weights.h5")]
        if stem.isdigit():
            found[int(stem)] = snap
    return dict(sorted(found.items()))


def resolve_checkpoint(model_dir: str, checkpoint: str | int = "latest"
                       ) -> tuple[str, int | None]:
    """Path and epoch of an encoder snapshot: "latest", an epoch number, or a file path."""
    run = read_run(model_dir)
    snaps_dir = path(model_dir, SNAPSHOT_DIR)
    if isinstance(checkpoint, str) and checkpoint != "latest" and not checkpoint.isdigit():
        if not fileio.exists(checkpoint):
            raise FileNotFoundError(f"Checkpoint file {checkpoint!r} does not exist.")
        return checkpoint, None
    if checkpoint == "latest":
        latest = path(snaps_dir, LATEST)
        if not fileio.exists(latest):
            raise FileNotFoundError(
                f"No encoder snapshot in {snaps_dir!r}: the run has not finished an epoch yet. "
                "Train longer, or probe with --random_init for the random-encoder floor.")
        return latest, run.get("latest_epoch")
    epoch = int(checkpoint)
    snaps = list_snapshots(model_dir)
    if epoch not in snaps:
        have = ", ".join(str(e) for e in snaps) or "none"
        raise FileNotFoundError(f"No snapshot of epoch {epoch} in {snaps_dir!r} (have: {have}; "
                                "or use --checkpoint latest).")
    return snaps[epoch], epoch


def load_encoder(model_dir: str, checkpoint: str | int = "latest") -> tuple[keras.Model, dict]:
    """Rebuilds a run's encoder and loads a snapshot.

    Args:
      model_dir: the run directory.
      checkpoint: "latest", an epoch number (int or digits), or a path to a .weights.h5 file.

    Returns:
      (encoder, info) with info = {"epoch": int | None, "path": str, "run": run.json dict}.

    Raises:
      FileNotFoundError: no run.json or no such snapshot.
      ValueError: the snapshot does not fit the run's encoder (e.g. another rep_dim).
    """
    weights, epoch = resolve_checkpoint(model_dir, checkpoint)
    encoder = build_encoder_from_run(model_dir)
    run = read_run(model_dir)
    try:
        load_weights(encoder, weights)
    except ValueError as e:
        raise ValueError(
            f"Snapshot {weights!r} does not fit the run's encoder (rep_dim "
            f"{run['encoder']['rep_dim']}, from {path(model_dir, RUN_JSON)}): {e}") from e
    return encoder, {"epoch": epoch, "path": weights, "run": run}
