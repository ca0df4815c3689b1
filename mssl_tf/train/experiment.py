"""gin entry point of pre-training: a run assembled from injected parts.

`pretrain(model_dir)` is what `mssl-pretrain` runs after parsing gin. Every part is a gin
reference, as in magenta/ddsp:

    pretrain.encoder = @build_sample_cnn          # build_sample_cnn.rep_dim = 512
    pretrain.projector = @vicreg_projector        # vicreg_projector.spec = "8192-8192-8192"
    pretrain.loss_fn = @vicreg_loss               # vicreg_loss.sim_weight = 25.0
    pretrain.optimizer = @LARS                    # LARS.momentum = 0.9
    pretrain.learning_rate = @WarmupCosine        # WarmupCosine.base_lr = 0.2 (or a number)
    pretrain.augmenter = @AudioAugment            # AudioAugment.pitch_p = 0.6

The machine side (strategy, precision, statistics scope) is `Runtime`, the input pipeline's
settings `TwoViewInput`, and the loop's (backups, snapshots, logging) `TrainLoop`; each is bound
in gin by its own name. The function itself does four things: build the model, record the run,
restore its state, fit until done.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass

import gin
import keras

from mssl_tf import configurables, constants, fileio, rundir
from mssl_tf.data import pipeline
from mssl_tf.distribute.runtime import Runtime
from mssl_tf.models import SSLModel
from mssl_tf.train import callbacks as cb
from mssl_tf.train import checkpoints
from mssl_tf.train.lock import RunLock
from mssl_tf.train.runlog import RunLog
from mssl_tf.version import __version__

logger = logging.getLogger(__name__)

DEFAULT_MILESTONES = (300, 1000, 3000, 5000, 8000)  # thesis Table A.1


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss (or a term, or the weights) became NaN/Inf or diverged.

    Attributes:
      step: the step where it happened.
      last_good_step: the step of the backup kept (None when there is none).
      resume_params: gin bindings that a resume should add (e.g. a lower learning rate).
    """

    def __init__(self, message: str, step: int, last_good_step: int | None,
                 resume_params: list[str]):
        super().__init__(message)
        self.step = step
        self.last_good_step = last_good_step
        self.resume_params = resume_params


@gin.configurable
@dataclass
class TwoViewInput:
    """Settings of the two-view input pipeline (see `mssl_tf.data.two_view_dataset`)."""

    shuffle_buffer: int = 1000
    cache: bool = False
    crops_per_track: int = 1
    seed: int | None = None


@gin.configurable
@dataclass
class TrainLoop:
    """Settings of the loop: backups, snapshots, logging, stopping.

    Attributes:
      backup_every_steps: steps between resumable backups (and one at every epoch end).
      milestones: epochs whose encoder snapshot is kept (thesis Table A.1).
      max_steps: stop after this many optimizer steps in total (smoke runs).
      log_every_steps: steps between TensorBoard scalars and plain progress lines.
      collapse_monitors: log rep_std and rep_rank (the collapse signals) every step.
      divergence_factor: a loss above this many times the best so far stops the run like a NaN
        (None: only NaN/Inf do).
      callbacks: more Keras callbacks (e.g. `[@ProbeMonitor()]`); what they add to the epoch
        logs reaches history.csv and TensorBoard.
      progress: show the progress display.
      wait_for_lock: seconds to wait for a run directory another process holds (0: refuse;
        None: wait forever).
    """

    backup_every_steps: int = 500
    milestones: tuple[int, ...] = DEFAULT_MILESTONES
    max_steps: int | None = None
    log_every_steps: int = 50
    collapse_monitors: bool = True
    divergence_factor: float | None = 1e4
    callbacks: tuple = ()
    progress: bool = True
    wait_for_lock: float | None = 0


def _check_positive(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"pretrain.{name} must be a positive whole number, got {value!r}.")


def _sample_rate(data_dir: str) -> int:
    try:
        return int(fileio.read_manifest(data_dir).get("sample_rate", constants.SAMPLE_RATE))
    except FileNotFoundError:
        return constants.SAMPLE_RATE


def _projector_name(projector: Callable) -> str:
    name = getattr(projector, "__name__", "projector")
    return name.removeprefix("build_").removesuffix("_projector")


def _objective_name(loss_fn: Callable) -> str:
    """run.json's short objective name ("vicreg", "ntxent"; another function's own name)."""
    name = getattr(loss_fn, "__name__", "objective")
    return {"vicreg_loss": "vicreg", "nt_xent_loss": "ntxent"}.get(name, name)


def _schedule(learning_rate, global_batch: int, steps_per_epoch: int, epochs: int):
    """A number is a constant rate; a callable (e.g. WarmupCosine) builds the schedule."""
    if callable(learning_rate):
        return learning_rate(global_batch=global_batch, steps_per_epoch=steps_per_epoch,
                             total_epochs=epochs)
    if not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
        raise ValueError(f"pretrain.learning_rate must be a positive number or a schedule such "
                         f"as @WarmupCosine, got {learning_rate!r}.")
    return float(learning_rate)


def build_model(runtime: Runtime, encoder: Callable, projector: Callable, loss_fn: Callable,
                optimizer: Callable, learning_rate, augmenter: Callable | None, *,
                crop_len: int, sample_rate: int, collapse_monitors: bool) -> SSLModel:
    """Builds, compiles and materialises the model and optimizer in the runtime's scope."""
    with runtime.scope():
        enc = encoder(crop_len=crop_len)
        proj = projector(input_dim=int(enc.output_shape[-1]))
        aug = augmenter(sample_rate=sample_rate) if augmenter is not None else None
        model = SSLModel(enc, proj, loss_fn, augmenter=aug, collapse_monitors=collapse_monitors,
                         **runtime.model_kwargs())
        model.compile(optimizer=optimizer(learning_rate=learning_rate),
                      **runtime.compile_kwargs())
        model.build_from_views(crop_len)
        model.optimizer.build(model.trainable_variables)
    return model


def _encoder_spec(encoder: keras.Model, crop_len: int) -> dict:
    from mssl_tf.models.sample_cnn import DEFAULT_WIDTHS  # noqa: PLC0415

    widths = [layer.filters for layer in encoder.layers
              if layer.name.startswith("block") and layer.name.endswith("_conv")]
    return {"rep_dim": int(encoder.output_shape[-1]), "crop_len": crop_len,
            "widths": widths or list(DEFAULT_WIDTHS)}


def record_run(model_dir: str, model: SSLModel, *, loss_fn: Callable, projector: Callable,
               data_dir: str, splits: tuple[str, ...], global_batch: int, epochs: int,
               steps_per_epoch: int, crop_len: int, runtime: Runtime) -> dict:
    """Writes RUN/run.json (and config.gin, the config the run trains with)."""
    run = rundir.read_run(model_dir) if rundir.is_run(model_dir) else {}
    run.update({
        "encoder": _encoder_spec(model.encoder, crop_len),
        "objective": _objective_name(loss_fn),
        "projector": {"name": _projector_name(projector),
                      "output_dim": int(model.projector.output_shape[-1])},
        "data_dir": data_dir, "splits": list(splits), "global_batch": global_batch,
        "epochs": epochs, "steps_per_epoch": steps_per_epoch, "replicas": runtime.replicas,
        "precision": runtime.policy, "global_stats": runtime.global_stats,
        "backend": keras.backend.backend(), "mssl_tf_version": __version__})
    rundir.write_run(model_dir, run)
    config_path = rundir.path(model_dir, rundir.CONFIG_GIN)
    if not fileio.exists(config_path):
        fileio.write_text(config_path, gin.config_str())
    return run


def _check_run_format(model_dir: str) -> None:
    if rundir.is_run(model_dir) and "format" not in rundir.read_run(model_dir):
        raise ValueError(
            f"{model_dir!r} holds a run written by mssl_tf < 0.2, whose backups this version "
            "cannot resume (the gin names of its config changed: pretrain.objective -> "
            "pretrain.loss_fn, ...). Its snapshots still work with mssl-probe and mssl-export; "
            "start a new --model_dir to train.")


def _prepare_model_dir(model_dir: str) -> None:
    try:
        fileio.makedirs(model_dir)
        probe = rundir.path(model_dir, ".write_test")
        fileio.write_text(probe, "")
        fileio.remove(probe)
    except (PermissionError, OSError) as e:
        raise ValueError(f"Cannot write the run directory {model_dir!r} ({e}); choose a "
                         "--model_dir you can write to.") from None
    except Exception as e:  # noqa: BLE001  tf.errors.PermissionDeniedError and friends (gs://)
        raise ValueError(f"Cannot write the run directory {model_dir!r} "
                         f"({type(e).__name__}: {e}); choose a --model_dir you can write "
                         "to.") from None


def _dataset(runtime: Runtime, data_dir: str, global_batch: int, crop_len: int,
             splits: tuple[str, ...], inputs: TwoViewInput):
    spe = pipeline.steps_per_epoch(data_dir, global_batch, splits=splits,
                                   crops_per_track=inputs.crops_per_track)

    def make_dataset(input_context=None):
        return pipeline.two_view_dataset(
            data_dir, global_batch, crop_len=crop_len, splits=splits,
            shuffle_buffer=inputs.shuffle_buffer, cache=inputs.cache,
            crops_per_track=inputs.crops_per_track, seed=inputs.seed,
            input_context=input_context)

    return runtime.distribute_dataset(make_dataset, global_batch), spe


def _nan_error(stop: cb.Stop, backup: checkpoints.TrainingBackup, learning_rate,
               runtime: Runtime) -> NonFiniteLossError:
    last = backup.state()
    where = (f"the last good backup is step {last['step']} in {backup.dir}" if last
             else "no backup was written before it")
    if callable(learning_rate) and hasattr(learning_rate, "base_lr"):
        setting, value = "WarmupCosine.base_lr", learning_rate.base_lr
    elif callable(learning_rate):
        setting, value = None, None
    else:
        setting, value = "pretrain.learning_rate", float(learning_rate)
    fixes, params = [], []
    if setting is not None:
        params.append(f"{setting} = {value / 10:g}")
        fixes.append(f"lower the learning rate ({setting} = {value:g} now; try {value / 10:g})")
    else:
        fixes.append("lower the learning rate of the schedule bound to pretrain.learning_rate")
    if runtime.policy != "float32":
        params.append("Runtime.precision = 'float32'")
        fixes.append(f"or train in float32 (Runtime.precision = 'float32'; now {runtime.policy})")
    values = ", ".join(f"{k} = {v:.4g}" for k, v in stop.values.items())
    message = (f"Training stopped at step {stop.step}: {stop.reason} ({values}); {where} "
               f"(encoder snapshots are unaffected). To go on, {' '.join(fixes)}, and resume "
               f"from the backup with --allow_config_change, e.g. --gin_param "
               f"{shlex.quote(params[0]) if params else '...'} --allow_config_change.")
    return NonFiniteLossError(message, stop.step, last["step"] if last else None, params)


@gin.configurable(denylist=["model_dir", "runtime"])
def pretrain(model_dir: str, data_dir: str = gin.REQUIRED, *,
             encoder: Callable = configurables.build_sample_cnn,
             projector: Callable = configurables.vicreg_projector,
             loss_fn: Callable = configurables.vicreg_loss,
             optimizer: Callable = configurables.LARS,
             learning_rate: Callable | float = configurables.WarmupCosine,
             augmenter: Callable | None = None, global_batch: int = 768, epochs: int = 100,
             crop_len: int = constants.CROP_LEN, splits: tuple[str, ...] = ("train",),
             runtime: Runtime | None = None, inputs: TwoViewInput | None = None,
             loop: TrainLoop | None = None) -> dict:
    """Pre-trains an encoder with a two-view objective and writes the run directory.

    Args:
      model_dir: run directory (local or gs://); an existing run there is resumed.
      data_dir: folder of `mssl-prepare` shards.
      encoder: builds the encoder, called with `crop_len=` (gin: `@build_sample_cnn`).
      projector: builds the projector, called with `input_dim=` (`@vicreg_projector`,
        `@clmr_projector`).
      loss_fn: the objective (`@vicreg_loss`, `@nt_xent_loss`).
      optimizer: optimizer class called with `learning_rate=` (`@LARS`, `@Adam`).
      learning_rate: a constant, or a schedule class called with `global_batch=`,
        `steps_per_epoch=` and `total_epochs=` (`@WarmupCosine`).
      augmenter: layer class applied to each view in the step (`@AudioAugment`), or None.
      global_batch: two-view pairs per step over all replicas.
      epochs: passes over the training tracks.
      crop_len: samples per view (59,049 for the SampleCNN).
      splits: manifest splits to pre-train on (GTZAN: all three, as the thesis).
      runtime: the machine side (default: `Runtime()` with its gin bindings).
      inputs: input pipeline settings (default: `TwoViewInput()`).
      loop: loop settings (default: `TrainLoop()`).

    Returns:
      {"step", "epoch", "history", "model_dir"} of the finished run.

    Raises:
      ValueError: bad settings or data (the message names the setting or file and the fix).
      NonFiniteLossError: the loss became NaN/Inf or diverged; the last good backup is kept.
      RunLockedError: another process is training in `model_dir`.
    """
    runtime = (runtime or Runtime()).start()
    inputs = inputs or TwoViewInput()
    loop = loop or TrainLoop()
    _check_positive("global_batch", global_batch)
    _check_positive("epochs", epochs)
    runtime.per_replica_batch(global_batch)
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    dataset, spe = _dataset(runtime, data_dir, global_batch, crop_len, splits, inputs)
    total_steps = epochs * spe if loop.max_steps is None else min(loop.max_steps, epochs * spe)
    schedule = _schedule(learning_rate, global_batch, spe, epochs)
    write = runtime.is_chief
    if write:
        _prepare_model_dir(model_dir)
        _check_run_format(model_dir)
    lock = RunLock(model_dir, shlex.join(sys.argv) if sys.argv else "pretrain",
                   wait=loop.wait_for_lock)
    with (lock if write else contextlib.nullcontext()), RunLog(model_dir, enabled=write) as log:
        model = build_model(runtime, encoder, projector, loss_fn, optimizer, schedule, augmenter,
                            crop_len=crop_len, sample_rate=_sample_rate(data_dir),
                            collapse_monitors=loop.collapse_monitors)
        backup = checkpoints.TrainingBackup(model_dir)
        state = backup.restore(model)
        step = state["step"] if state else 0
        if write:
            record_run(model_dir, model, loss_fn=loss_fn, projector=projector,
                       data_dir=data_dir, splits=splits, global_batch=global_batch,
                       epochs=epochs, steps_per_epoch=spe, crop_len=crop_len, runtime=runtime)
        logger.info("mssl_tf %s, %s", __version__, runtime.summary())
        logger.info("Pre-training %s on %s (%s): global batch %d, %d steps/epoch, %d epochs, "
                    "%d steps in all", getattr(loss_fn, "__name__", "objective"), data_dir,
                    "+".join(splits), global_batch, spe, epochs, total_steps)
        log.note("Resolved gin config", gin.config_str())
        if step >= total_steps:
            # Nothing to train; a longer run is a new run, since the schedule spans the run's
            # length and a longer one would change the learning rate of every step.
            logger.info("%s already finished its %d steps (%d epochs); nothing to train. To "
                        "train longer, start a new --model_dir with more pretrain.epochs.",
                        model_dir, total_steps, epochs)
        elif step:
            logger.info("Resuming %s at step %d (epoch %d, step %d of it)", model_dir, step,
                        step // spe + 1, step % spe)
        recorder = cb.RunRecorder(
            model_dir, backup, spe, step, backup_every_steps=loop.backup_every_steps,
            milestones=loop.milestones, log_every_steps=loop.log_every_steps,
            divergence_factor=loop.divergence_factor, global_batch=global_batch, write=write,
            heartbeat=lock.heartbeat)
        recorder.set_model(model)
        if write and step and step % spe == 0 and \
                rundir.read_run(model_dir).get("latest_epoch", 0) < step // spe:
            recorder.snapshot(step // spe)  # killed between the backup and the snapshot
        try:
            with pipeline.explain_data_errors(data_dir, splits):
                history = fit_until_done(model, dataset, recorder, loop, spe, step, total_steps,
                                         global_batch, log)
        finally:
            recorder.close()
        if recorder.stopped is not None:
            raise _nan_error(recorder.stopped, backup, schedule, runtime)
        step = recorder.step
        recorder.save(step)  # the final state, so rerunning a finished run is a no-op
    return {"step": step, "epoch": step / spe, "history": history, "model_dir": model_dir}


def fit_until_done(model: SSLModel, dataset, recorder: cb.RunRecorder, loop: TrainLoop,
                   spe: int, step: int, total_steps: int, global_batch: int,
                   log: RunLog) -> dict[str, list[float]]:
    """Runs `fit` until `total_steps`: the rest of a resumed epoch, then whole epochs.

    Returns:
      The epoch logs ({name: [value per epoch]}) of this invocation.
    """
    progress = cb.Progress(total_steps, spe, step, global_batch, loop.log_every_steps,
                           enabled=loop.progress)

    class _FlushLog(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            log.flush()

    callbacks = [*loop.callbacks, recorder, cb.OperativeConfigWriter(
        recorder.model_dir, write=recorder.write), progress, _FlushLog()]
    history: dict[str, list[float]] = {}
    while step < total_steps and recorder.stopped is None:
        epoch, within = divmod(step, spe)
        if within:
            # A resumed epoch runs only its remaining steps, so the run ends at the same step.
            segment = {"initial_epoch": epoch, "epochs": epoch + 1,
                       "steps_per_epoch": min(spe - within, total_steps - step)}
        else:
            last = -(-total_steps // spe)
            segment = {"initial_epoch": epoch, "epochs": last, "steps_per_epoch": spe}
            recorder_stop = _StopAt(total_steps, recorder)
            callbacks = [c for c in callbacks if not isinstance(c, _StopAt)] + [recorder_stop]
        h = model.fit(dataset, callbacks=callbacks, verbose=0, shuffle=False, **segment)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)
        step = recorder.step
    return history


class _StopAt(keras.callbacks.Callback):
    """Stops `fit` at a step inside an epoch (TrainLoop.max_steps)."""

    def __init__(self, total_steps: int, recorder: cb.RunRecorder):
        super().__init__()
        self.total_steps = total_steps
        self.recorder = recorder

    def on_train_batch_end(self, batch, logs=None):
        if self.recorder.step >= self.total_steps:
            self.model.stop_training = True
