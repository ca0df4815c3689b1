"""gin entry point of pre-training: all the wiring between data, model, objective and optimizer.

`pretrain(...)` is what `mssl-pretrain` runs after parsing gin; every argument can be bound in a
gin file (`pretrain.global_batch = 768`), and the pieces are configured on their own builders
(`build_sample_cnn.rep_dim`, `build_projector.spec`, `vicreg_loss.sim_weight`, `LARS.momentum`,
`AudioAugment.pitch_p`, ...).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable

import gin
import keras
import tensorflow as tf

from mssl_tf import configurables, distribute, fileio, rundir
from mssl_tf.data import pipeline
from mssl_tf.models.sample_cnn import DEFAULT_WIDTHS
from mssl_tf.optim import WarmupCosine, scaled_learning_rate
from mssl_tf.train import callbacks as cb
from mssl_tf.train import checkpoints
from mssl_tf.version import __version__

DEFAULT_MILESTONES = (300, 1000, 3000, 5000, 8000)  # thesis Table A.1


def _resolve_precision(precision: str, strategy) -> str:
    if precision != "auto":
        return precision
    if keras.backend.backend() == "tensorflow":
        on_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
        has_gpu = bool(tf.config.list_logical_devices("GPU"))
        return "mixed_bfloat16" if on_tpu or has_gpu else "float32"
    import jax  # noqa: PLC0415  (JAX backend only)
    return "float32" if jax.default_backend() == "cpu" else "mixed_bfloat16"


def _encoder_spec(encoder: keras.Model, crop_len: int) -> dict:
    widths = [layer.filters for layer in encoder.layers
              if layer.name.startswith("block") and layer.name.endswith("_conv")]
    return {"rep_dim": int(encoder.output_shape[-1]), "crop_len": crop_len,
            "widths": widths or list(DEFAULT_WIDTHS)}


def _learning_rate(lr_schedule: str, base_lr: float, global_batch: int, steps_per_epoch: int,
                   epochs: int, warmup_epochs: int, scale_lr_with_batch: bool):
    if lr_schedule == "constant":
        return scaled_learning_rate(base_lr, global_batch) if scale_lr_with_batch else base_lr
    if lr_schedule == "warmup_cosine":
        return WarmupCosine(base_lr, global_batch if scale_lr_with_batch else 256,
                            steps_per_epoch, epochs, warmup_epochs=warmup_epochs)
    raise ValueError(f"pretrain.lr_schedule must be 'warmup_cosine' or 'constant', "
                     f"got {lr_schedule!r}")


def _sample_rate(data_dir: str) -> int:
    try:
        return int(fileio.read_manifest(data_dir).get("sample_rate", 22050))
    except FileNotFoundError:
        return 22050


def _scope(strategy):
    if strategy is not None and hasattr(strategy, "scope"):
        return strategy.scope()
    return contextlib.nullcontext()


class NonFiniteLossError(FloatingPointError):
    """Training stopped because the loss became NaN or infinite."""


@gin.configurable(denylist=["model_dir", "tpu"])
def pretrain(model_dir: str, data_dir: str = gin.REQUIRED, *, tpu: str | None = None,
             objective: str = "vicreg", epochs: int = 100, global_batch: int = 768,
             crop_len: int = 59049, optimizer: Callable = configurables.LARS,
             base_lr: float = 0.2, lr_schedule: str = "warmup_cosine", warmup_epochs: int = 10,
             scale_lr_with_batch: bool = True, projector: str = "vicreg",
             augmenter: Callable | None = None, global_stats: bool = True,
             collapse_monitors: bool = True, precision: str = "auto",
             steps_per_execution: int = 1, jit_compile: str | bool = "auto",
             backup_every_steps: int = 500, milestones: tuple[int, ...] = DEFAULT_MILESTONES,
             shuffle_buffer: int = 1000, cache: bool = False, crops_per_track: int = 1,
             seed: int | None = None, max_steps: int | None = None,
             devices: list[str] | None = None, extra_callbacks: tuple = (),
             verbose: int | str = "auto") -> dict:
    """Pre-trains an encoder with a two-view objective and writes the run directory.

    Args:
      model_dir: run directory (local or gs://); an existing run there is resumed.
      data_dir: folder of `mssl-prepare` shards (its train split is used).
      tpu: Cloud TPU name or "local" (TensorFlow backend), None for GPU/CPU.
      objective: "vicreg" or "ntxent"; its weights/temperature are bound on
        `vicreg_loss` / `nt_xent_loss`.
      epochs: passes over the training tracks.
      global_batch: two-view pairs per step over all replicas.
      crop_len: samples per view (59,049 for the SampleCNN).
      optimizer: optimizer class called with `learning_rate=` (gin: `@LARS`, `@Adam`).
      base_lr: learning rate at batch 256 when `scale_lr_with_batch`, else the learning rate.
      lr_schedule: "warmup_cosine" (per step) or "constant".
      warmup_epochs: linear warm-up length of "warmup_cosine".
      scale_lr_with_batch: multiply base_lr by global_batch / 256 (VICReg, SimCLR).
      projector: "vicreg" (Dense+BN+ReLU) or "clmr" (no BN, no biases); widths are bound on
        `build_projector.spec`.
      augmenter: layer class applied to each view in the step (gin: `@AudioAugment`), or None.
      global_stats: objective statistics / negatives over the global batch (False: per replica).
      collapse_monitors: log rep_std / rep_rank.
      precision: "auto" (bf16 on TPU/GPU, float32 on CPU), "float32" or "mixed_bfloat16".
      steps_per_execution: steps per compiled call (use 50-200 on TPU).
      jit_compile: XLA ("auto" lets Keras decide; it is off under MirroredStrategy).
      backup_every_steps: steps between resumable backups.
      milestones: epochs at which an encoder snapshot is kept.
      shuffle_buffer / cache / crops_per_track / seed: input pipeline, see
        `mssl_tf.data.two_view_dataset`.
      max_steps: stop after this many optimizer steps in total (smoke runs).
      devices: explicit devices for MirroredStrategy (tests).
      extra_callbacks: more Keras callbacks (e.g. `@ProbeMonitor()`).
      verbose: Keras progress output.

    Returns:
      {"step", "epoch", "history", "model_dir"} of the finished run.
    """
    strategy = distribute.get_strategy(tpu, devices)
    replicas = distribute.num_replicas(strategy)
    distribute.check_global_batch(global_batch, replicas)
    policy = _resolve_precision(precision, strategy)
    keras.mixed_precision.set_global_policy(policy)
    tf.io.gfile.makedirs(model_dir)

    spe = pipeline.steps_per_epoch(data_dir, global_batch, crops_per_track=crops_per_track)
    dataset = pipeline.two_view_dataset(
        data_dir, global_batch, crop_len=crop_len, shuffle_buffer=shuffle_buffer, cache=cache,
        crops_per_track=crops_per_track, seed=seed)
    total_steps = epochs * spe if max_steps is None else min(max_steps, epochs * spe)
    loss_fn = configurables.get_objective(objective)

    with _scope(strategy):
        encoder = configurables.build_sample_cnn(crop_len=crop_len)
        rep_dim = int(encoder.output_shape[-1])
        proj = configurables.build_projector(kind=projector, input_dim=rep_dim)
        aug = augmenter(sample_rate=_sample_rate(data_dir)) if augmenter is not None else None
        on_tf = keras.backend.backend() == "tensorflow"
        model = configurables.SSLModel(
            encoder, proj, loss_fn, augmenter=aug,
            collectives=distribute.TFCollectives() if on_tf else None,
            global_stats=global_stats, stats_groups=1 if on_tf else replicas,
            collapse_monitors=collapse_monitors)
        lr = _learning_rate(lr_schedule, base_lr, global_batch, spe, epochs, warmup_epochs,
                            scale_lr_with_batch)
        model.compile(optimizer=optimizer(learning_rate=lr), jit_compile=jit_compile,
                      steps_per_execution=steps_per_execution)
        model.build_from_views(crop_len)
        model.optimizer.build(model.trainable_variables)

    backup = checkpoints.TrainingBackup(model_dir)
    state = backup.restore(model)
    step = state["step"] if state else 0
    run_path = os.path.join(model_dir, rundir.RUN_JSON)
    run = fileio.read_json(run_path) if tf.io.gfile.exists(run_path) else {}
    run.update({"encoder": _encoder_spec(encoder, crop_len), "objective": objective,
                "projector": {"kind": projector, "output_dim": int(proj.output_shape[-1])},
                "data_dir": data_dir, "global_batch": global_batch, "epochs": epochs,
                "steps_per_epoch": spe, "replicas": replicas, "precision": policy,
                "backend": keras.backend.backend(), "mssl_tf_version": __version__})
    fileio.write_json(run_path, run)
    if step:
        logging.info("Resuming %s at step %d (epoch %d, step %d of it)", model_dir, step,
                     step // spe + 1, step % spe)
    logging.info("Pre-training %s: %d replicas, global batch %d, %d steps/epoch, %s",
                 objective, replicas, global_batch, spe, policy)

    guard = cb.BackupAndNaNGuard(backup, backup_every_steps, spe)
    guard.set_model(model)
    callbacks = [
        guard,
        cb.EncoderSnapshots(model_dir, milestones),
        cb.OperativeConfigWriter(model_dir),
        # Before the loggers, so what they add to the epoch logs (e.g. ProbeMonitor's scores)
        # reaches history.csv and TensorBoard.
        *extra_callbacks,
        keras.callbacks.CSVLogger(os.path.join(model_dir, "history.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), update_freq=50),
    ]
    history = {}
    while step < total_steps and guard.nan_step is None:
        epoch, within = divmod(step, spe)
        # A resumed epoch runs only its remaining steps, so the run ends at the same step count.
        steps = min(spe - within, total_steps - step)
        h = model.fit(dataset, initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps,
                      callbacks=callbacks, verbose=verbose, shuffle=False)
        for k, v in h.history.items():
            history.setdefault(k, []).extend(float(x) for x in v)
        step = cb.current_step(model)
    if guard.nan_step is not None:
        last = backup.state()
        where = (f"the last good backup is step {last['step']} in {backup.dir}" if last
                 else "no backup was written before it")
        raise NonFiniteLossError(
            f"The loss became NaN/Inf at step {guard.nan_step}; training stopped and {where} "
            "(snapshots in snapshots/ are unaffected). Lower the learning rate (pretrain.base_lr) "
            "or use precision='float32', then rerun the same command to resume.")
    guard._save(step)  # noqa: SLF001  final state, so rerunning a finished run is a no-op
    return {"step": step, "epoch": step / spe, "history": history, "model_dir": model_dir}
