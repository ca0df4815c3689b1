"""Pre-training step speed: clip pairs per second of the full step, Keras (TF/JAX) vs PyTorch.

    python bench/train_step.py [--backend tensorflow,jax] [--objective vicreg,ntxent]
        [--batch 16,256] [--precision float32|mixed_bfloat16] [--steps 10] [--warmup 3]
        [--no-augment | --augment-both] [--rep-dim 512] [--projector 8192-8192-8192]
        [--optimizer sgd|lars|adam] [--torch [eager,compile]] [--repeats 1] [--json-out F]

The full step is what `mssl_tf.train.pretrain` runs, minus the input pipeline: `SSLModel.fit` with
`AudioAugment` per view, the SampleCNN encoder, the projector, the objective and the optimizer.
The clips come from in-memory tracks held on the device (int16, like the shards): each step draws
a track and two crop offsets per pair with `keras.random` inside the compiled step and gathers the
two views there, so nothing crosses from the host but a dummy batch of zeros.

With `--torch` the same step is also run in PyTorch, written here from the reference code bases
(CLMR's SampleCNN, facebookresearch/vicreg's projector, loss and LARS, Spijkervet/SimCLR's
projector and NT-Xent): eager, and with `torch.compile` on the forward pass and loss. The torch
step has no augmentation (there is no on-device torch port of CLMR's chain); every Keras line is
compared with the torch lines of the same objective, batch and precision from the same round.

Each configuration runs in its own process (KERAS_BACKEND is set before Keras is imported, and
each process gets fresh thread pools and device memory). `--repeats R` runs the whole list R
times, so ratios are taken between runs minutes apart on a machine shared with other work.
Prints one JSON line per configuration with the keys impl, backend, objective, batch, augment,
precision, pairs_per_s, step_ms, device, ..., ratio_vs_torch_eager (and _compile) where measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

SAMPLE_RATE = 22050
CLMR_WIDTHS = (128, 128, 256, 256, 256, 256, 256, 256, 512)
DEFAULT_PROJECTORS = {"vicreg": "8192-8192-8192", "ntxent": "512-128"}
KERAS_BACKENDS = ("tensorflow", "jax")
TORCH_MODES = ("eager", "compile")
# Configuration keys a Keras line must share with a torch line to be compared with it.
MATCH_KEYS = ("objective", "batch", "precision", "rep_dim", "projector", "optimizer", "crop_len",
              "round")


def crop_len_for(widths) -> int:
    """Input length that the SampleCNN with these block widths reduces to one frame: 3**(n+1)."""
    return 3 ** (len(widths) + 1)


# Keras worker --------------------------------------------------------------------------------

def keras_parts():
    """Returns (DeviceCrops, CroppingSSLModel), built on the Keras backend already selected.

    Defined in a function so that importing this file imports no framework: the parent process
    stays framework-free and each worker sets KERAS_BACKEND before Keras is imported.
    """
    import keras

    from mssl_tf.models import SSLModel

    class DeviceCrops(keras.layers.Layer):
        """Two random crops of one random track per pair, gathered from tracks held on device.

        Args:
          tracks: int16 array (num_tracks, track_len), stored as a non-trainable variable.
          crop_len: samples per view.
          batch: pairs per call (static, so every shape in the step is static).
          seed: seed of the layer's SeedGenerator (threaded through compiled steps by Keras).
        """

        def __init__(self, tracks, crop_len: int, batch: int, seed: int | None = None, **kwargs):
            super().__init__(dtype="float32", **kwargs)
            self.num_tracks, self.track_len = tracks.shape
            if self.track_len < crop_len:
                raise ValueError(f"DeviceCrops: tracks of {self.track_len} samples are shorter "
                                 f"than crop_len={crop_len}; raise --track-seconds")
            self.crop_len, self.batch = int(crop_len), int(batch)
            self.tracks = self.add_weight(shape=tracks.shape, dtype="int16", trainable=False,
                                          initializer="zeros", name="tracks")
            self.tracks.assign(tracks)
            self.seed_generator = keras.random.SeedGenerator(seed, name="crop_seed")

        def call(self, inputs):
            """Returns (view_a, view_b), each (batch, crop_len) float32 in [-1, 1)."""
            track = keras.random.randint((1, self.batch), 0, self.num_tracks, dtype="int32",
                                         seed=self.seed_generator)
            offset = keras.random.randint((2, self.batch), 0, self.track_len - self.crop_len + 1,
                                          dtype="int32", seed=self.seed_generator)
            start = track * self.track_len + offset  # (2, batch) into the flattened tracks
            index = start[..., None] + keras.ops.arange(self.crop_len, dtype="int32")
            views = keras.ops.take(keras.ops.reshape(self.tracks, (-1,)), index)
            views = keras.ops.cast(views, "float32") * (1.0 / 32768.0)
            return views[0], views[1]

    class CroppingSSLModel(SSLModel):
        """SSLModel whose two views are cut on device by `crops` instead of fed as inputs."""

        def __init__(self, crops, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.crops = crops

        def call(self, inputs, training=False):
            view_a, view_b = self.crops(inputs)
            return super().call({"view_a": view_a, "view_b": view_b}, training=training)

    return DeviceCrops, CroppingSSLModel


def keras_optimizer(name: str):
    """SGD with momentum 0.9 (the issue's reference step), Adam (CLMR) or LARS (VICReg)."""
    import keras

    from mssl_tf.optim import LARS
    lr = common.LEARNING_RATES[name]
    return {"sgd": lambda: keras.optimizers.SGD(lr, momentum=0.9),
            "adam": lambda: keras.optimizers.Adam(lr),
            "lars": lambda: LARS(lr)}[name]()


def breakdown_tensorflow(cfg: dict) -> dict:
    """Median ms of the parts of the TensorFlow step on fixed views (no augmentation).

    encoder_fwd: both views through the encoder in training mode; encoder_fwd_bwd: plus the
    gradient of their sum; grads: encoder + projector + objective and all gradients; step: grads
    plus the optimizer update. Each part is one `tf.function` (XLA only with --jit-compile true).
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from mssl_tf.losses import get_loss
    from mssl_tf.models import build_projector, build_sample_cnn

    keras.mixed_precision.set_global_policy(cfg["precision"])
    keras.utils.set_random_seed(cfg["seed"])
    encoder = build_sample_cnn(rep_dim=cfg["rep_dim"], crop_len=cfg["crop_len"],
                               widths=tuple(cfg["widths"]))
    kind = "vicreg" if cfg["objective"] == "vicreg" else "clmr"
    projector = build_projector(kind, cfg["projector"], input_dim=cfg["rep_dim"])
    loss_fn = get_loss(cfg["objective"])
    optimizer = keras_optimizer(cfg["optimizer"])
    variables = encoder.trainable_variables + projector.trainable_variables
    optimizer.build(variables)
    rng = np.random.default_rng(cfg["seed"])
    va, vb = (tf.constant(0.1 * rng.standard_normal((cfg["batch"], cfg["crop_len"]),
                                                     dtype=np.float32)) for _ in range(2))
    compiled = tf.function(jit_compile=cfg["jit_compile"] == "true")

    def loss():
        return loss_fn(projector(encoder(va, training=True), training=True),
                       projector(encoder(vb, training=True), training=True))[0]

    def grads():
        with tf.GradientTape() as tape:
            total = loss()
        return tape.gradient(total, variables)

    def encoder_fwd_bwd():
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(encoder(va, training=True)) + tf.reduce_sum(
                encoder(vb, training=True))
        return tape.gradient(total, encoder.trainable_variables)

    def step():
        optimizer.apply_gradients(zip(grads(), variables))
        return optimizer.iterations

    parts = {"encoder_fwd": compiled(lambda: (encoder(va, training=True),
                                              encoder(vb, training=True))),
             "encoder_fwd_bwd": compiled(encoder_fwd_bwd), "grads": compiled(grads),
             "step": compiled(step)}
    sync = lambda out: tf.nest.map_structure(lambda t: t.numpy(), out)  # noqa: E731
    return {"impl": "mssl_tf", "backend": "tensorflow",
            "breakdown_ms": common.time_parts(parts, cfg["warmup"], cfg["steps"], sync),
            "device": common.keras_device_description("tensorflow"),
            "versions": common.package_versions(["keras", "tensorflow"])}


def run_keras(cfg: dict) -> dict:
    """Times `SSLModel.fit` on device-side crops for one configuration; returns the JSON row."""
    import keras
    import numpy as np

    from mssl_tf.augment import AudioAugment
    from mssl_tf.losses import get_loss
    from mssl_tf.models import build_projector, build_sample_cnn

    backend = keras.backend.backend()
    keras.mixed_precision.set_global_policy(cfg["precision"])
    keras.utils.set_random_seed(cfg["seed"])
    crop_len, batch = cfg["crop_len"], cfg["batch"]
    tracks = common.make_tracks(cfg["tracks"], cfg["track_len"], cfg["seed"])
    DeviceCrops, CroppingSSLModel = keras_parts()

    encoder = build_sample_cnn(rep_dim=cfg["rep_dim"], crop_len=crop_len,
                               widths=tuple(cfg["widths"]))
    kind = "vicreg" if cfg["objective"] == "vicreg" else "clmr"
    projector = build_projector(kind, cfg["projector"], input_dim=cfg["rep_dim"])
    augmenter = AudioAugment(sample_rate=SAMPLE_RATE, seed=cfg["seed"]) if cfg["augment"] else None
    crops = DeviceCrops(tracks, crop_len, batch, seed=cfg["seed"])
    model = CroppingSSLModel(crops, encoder, projector, get_loss(cfg["objective"]),
                             augmenter=augmenter, collapse_monitors=cfg["monitors"])
    optimizer = keras_optimizer(cfg["optimizer"])
    jit = {"auto": "auto", "true": True, "false": False}[cfg["jit_compile"]]
    model.compile(optimizer=optimizer, jit_compile=jit,
                  steps_per_execution=cfg["steps_per_execution"])
    dummy = np.zeros((batch, 1), "float32")
    model(dummy, training=False)  # creates every variable before the first compiled step

    class Timer(keras.callbacks.Callback):
        """Synchronises once after the warm-up steps and starts the clock there."""

        def __init__(self, warmup_steps: int, total_steps: int):
            super().__init__()
            self.warmup_steps, self.total_steps = warmup_steps, total_steps
            self.start = None
            self.loss = None
            self.last_loss = None

        def on_train_batch_end(self, step, logs=None):
            if self.start is None and step + 1 >= self.warmup_steps:
                self.loss = float(np.asarray(logs["loss"]))  # waits for the step to finish
                self.start = time.perf_counter()
            elif step + 1 >= self.total_steps:
                self.last_loss = float(np.asarray(logs["loss"]))  # the run ends here anyway

    spe = cfg["steps_per_execution"]
    warmup = -(-cfg["warmup"] // spe) * spe  # whole executions
    steps = -(-cfg["steps"] // spe) * spe
    timer = Timer(warmup, warmup + steps)
    x = np.zeros(((warmup + steps) * batch, 1), "float32")
    begin = time.perf_counter()
    model.fit(x, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
    seconds = time.perf_counter() - timer.start
    return {
        "impl": "mssl_tf", "backend": backend, "pairs_per_s": round(steps * batch / seconds, 2),
        "step_ms": round(1000.0 * seconds / steps, 2), "timed_steps": steps,
        "warmup_s": round(timer.start - begin, 2), "loss_after_warmup": timer.loss,
        "loss_last": timer.last_loss, "device": common.keras_device_description(backend),
        "peak_mem_gb": common.keras_peak_memory_gb(backend),
        "versions": common.package_versions(["keras", backend]),
    }


# Orchestration --------------------------------------------------------------------------------

def build_jobs(args) -> list[dict]:
    """Every configuration to run, torch references first within each (round, objective, batch)."""
    widths = tuple(common.comma_list(args.widths, int)) if args.widths else CLMR_WIDTHS
    crop_len = crop_len_for(widths)
    track_len = max(int(args.track_seconds * SAMPLE_RATE), crop_len)
    backends = [b for b in common.comma_list(args.backend) if b != "none"]
    for b in backends:
        if b not in KERAS_BACKENDS:
            raise SystemExit(f"--backend {b!r}: choose from {', '.join(KERAS_BACKENDS)} or none")
    if args.breakdown and "jax" in backends:
        raise SystemExit(
            "--breakdown times the TensorFlow and torch steps; drop jax from --backend")
    torch_modes = common.comma_list(args.torch) if args.torch else []
    for m in torch_modes:
        if m not in TORCH_MODES:
            raise SystemExit(f"--torch {m!r}: choose from {', '.join(TORCH_MODES)}")
    objectives = common.comma_list(args.objective)
    for o in objectives:
        if o not in DEFAULT_PROJECTORS:
            raise SystemExit(f"--objective {o!r}: choose vicreg or ntxent")
    if args.projector and len(objectives) > 1:
        raise SystemExit("--projector applies to one objective; run the objectives separately")
    augments = [True, False] if args.augment_both else [not args.no_augment]
    base = {"precision": args.precision, "steps": args.steps, "warmup": args.warmup,
            "rep_dim": args.rep_dim, "optimizer": args.optimizer, "widths": list(widths),
            "crop_len": crop_len, "tracks": args.tracks, "track_len": track_len,
            "seed": args.seed, "monitors": not args.no_monitors,
            "jit_compile": args.jit_compile, "steps_per_execution": args.steps_per_execution,
            "breakdown": args.breakdown}
    jobs = []
    for rnd in range(args.repeats):
        for batch in common.comma_list(args.batch, int):
            for objective in objectives:
                cfg = dict(base, round=rnd, batch=batch, objective=objective,
                           projector=args.projector or DEFAULT_PROJECTORS[objective])
                for mode in torch_modes:
                    jobs.append(dict(cfg, kind="torch", torch_mode=mode, augment=False))
                for backend in backends:
                    for aug in augments:
                        jobs.append(dict(cfg, kind="keras", backend=backend, augment=aug))
    return jobs


def run_jobs(jobs: list[dict], args) -> list[dict]:
    """Runs each job in its own process; prints and returns one row per finished job."""
    begin = time.monotonic()
    rows = []
    script = os.path.abspath(__file__)
    for job in jobs:
        if args.budget_s is not None and time.monotonic() - begin > args.budget_s:
            print(f"budget of {args.budget_s:.0f} s spent; skipping {job['kind']} "
                  f"{job.get('backend', job.get('torch_mode'))} {job['objective']} "
                  f"batch {job['batch']}", file=sys.stderr)
            continue
        env = {"KERAS_BACKEND": job["backend"]} if job["kind"] == "keras" else {}
        result, tail = common.run_worker([sys.executable, script, "--worker", json.dumps(job)],
                                         env, timeout_s=args.job_timeout_s)
        row = {k: v for k, v in job.items() if k not in ("kind", "torch_mode", "widths", "seed")}
        row.update({"date": common.utc_stamp(), "command": " ".join(sys.argv)})
        if result is None:
            row.update({"impl": "torch_" + job["torch_mode"] if job["kind"] == "torch"
                        else "mssl_tf", "error": tail[-2000:]})
            if job["kind"] == "torch":
                row["backend"] = "torch"
        else:
            row.update(result)
            common.add_ratios(row, rows, MATCH_KEYS)
        rows.append(row)
        print(json.dumps(row), flush=True)
        common.write_json_lines(args.json_out, [row])
    return rows


def worker_main(spec: str) -> None:
    """Runs one configuration in this process and emits its result line."""
    cfg = json.loads(spec)
    if cfg["kind"] == "torch":
        from bench import train_step_torch  # torch is imported in torch workers only
        result = train_step_torch.run_torch(cfg)
    elif cfg.get("breakdown"):
        result = breakdown_tensorflow(cfg)
    else:
        result = run_keras(cfg)
    common.emit_result(result)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="tensorflow",
                        help="comma list of Keras backends (tensorflow, jax) or none")
    parser.add_argument("--objective", default="vicreg", help="comma list: vicreg, ntxent")
    parser.add_argument("--batch", default="16", help="comma list of global batch sizes")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--steps", type=int, default=10, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    aug = parser.add_mutually_exclusive_group()
    aug.add_argument("--no-augment", action="store_true", help="step without AudioAugment")
    aug.add_argument("--augment-both", action="store_true", help="with and without AudioAugment")
    parser.add_argument("--rep-dim", type=int, default=512)
    parser.add_argument("--projector", default=None,
                        help="projector widths; default 8192-8192-8192 (vicreg), 512-128 (ntxent)")
    parser.add_argument("--optimizer", default="sgd", choices=sorted(common.LEARNING_RATES))
    parser.add_argument("--torch", nargs="?", const="eager,compile", default=None,
                        help="also run the PyTorch reference: eager, compile or both (default)")
    parser.add_argument("--widths", default=None,
                        help="SampleCNN block widths (comma list); crop = 3**(blocks+1). "
                             "Default CLMR's nine blocks, 59,049 samples")
    parser.add_argument("--tracks", type=int, default=8, help="in-memory tracks on the device")
    parser.add_argument("--track-seconds", type=float, default=30.0)
    parser.add_argument("--no-monitors", action="store_true",
                        help="drop the rep_std/rep_rank collapse monitors from the Keras step")
    parser.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"])
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true",
                        help="time the parts of the step (encoder fwd, fwd+bwd, grads, step) "
                             "on fixed views instead (TensorFlow and torch; no augmentation)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over all configurations")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start no new configuration after this many seconds")
    parser.add_argument("--job-timeout-s", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", default=None, help="append the JSON lines to this file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 1:
        parser.error("--steps and --warmup must be >= 1")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(args.worker)
        return
    rows = run_jobs(build_jobs(args), args)
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
