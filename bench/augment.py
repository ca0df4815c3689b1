"""Augmentation speed: clips per second through CLMR's whole chain, AudioAugment vs pedalboard.

    python bench/augment.py [--cores 1] [--batch 16] [--batches 4] [--ops] [--xla] [--json F]
    KERAS_BACKEND=jax python bench/augment.py ...
    KERAS_BACKEND=jax python bench/augment.py --cores 0 --step --batch 256   # on a GPU

Both run in the same process on the same `--cores` cores (pinned before the backend starts, so its
thread pools match) on 59,049-sample clips (2.68 s at 22,050 Hz) of pink-ish noise:
  * mssl_tf: `AudioAugment` with CLMR's probabilities, compiled (`tf.function`, or `jax.jit` with
    the RNG state threaded through `stateless_call`), one call per batch. Every op with a non-zero
    probability is computed for every clip and selected by mask, so its cost does not shrink with
    the probabilities; `--ops` also times each op alone at p = 1 to show where the time goes.
  * pedalboard (Spotify's C++ effects, the usual CPU choice): the same chain clip by clip with the
    same probabilities and ranges (numpy polarity/noise, Gain + clip, High/LowpassFilter, Delay,
    PitchShift, Reverb), as a host-side data loader would run it.
Prints one JSON line per measurement and a final line with the ratio mssl_tf / pedalboard.

`--step` instead times what the layer adds to a training step: SampleCNN (rep 512) forward and
backward on two views of a batch, with SGD, compiled (`jit_compile=True`), with and without
`AudioAugment` applied to each view, and prints the ratio (issue target on a GPU at batch 256:
at most 1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SR = 22050
LENGTH = 59049


def _clips(batch: int, seed: int = 0):
    import numpy as np
    rng = np.random.default_rng(seed)
    white = rng.standard_normal((batch, LENGTH))
    pink = np.cumsum(white, axis=1)
    pink -= np.linspace(pink[:, :1], pink[:, -1:], LENGTH, axis=1).squeeze(-1)
    return (0.3 * pink / np.abs(pink).max(axis=1, keepdims=True)).astype(np.float32)


def _compiled(layer, xla: bool):
    """A function batch -> augmented batch that advances the layer's RNG state on every call."""
    import keras
    if keras.backend.backend() == "jax":
        import jax
        layer.build((None, LENGTH))
        state = [v.value for v in layer.non_trainable_variables]

        @jax.jit
        def step(state, x):
            return layer.stateless_call([], state, x, training=True)

        def run(x):
            nonlocal state
            y, state = step(state, x)
            return y.block_until_ready()
        return run
    import tensorflow as tf
    fn = tf.function(lambda x: layer(x, training=True), jit_compile=xla)
    return lambda x: fn(x).numpy()


def time_layer(batch: int, batches: int, xla: bool, **kwargs) -> dict:
    """Median clips/s of AudioAugment over `batches` calls after one warm-up (compile) call."""
    import keras

    from mssl_tf.augment import AudioAugment
    layer = AudioAugment(seed=0, **kwargs)
    run = _compiled(layer, xla)
    x = keras.ops.convert_to_tensor(_clips(batch))
    start = time.perf_counter()
    run(x)
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    per_batch = statistics.median(times)
    return {"clips_per_s": batch / per_batch, "ms_per_clip": 1000 * per_batch / batch,
            "first_call_s": compile_s}


def time_pedalboard(clips: int, seed: int = 0) -> dict:
    """Clips/s of the same chain with pedalboard, one clip at a time (median of 3 passes)."""
    import numpy as np
    import pedalboard as pb
    rng = np.random.default_rng(seed)
    x = _clips(clips, seed=1)

    def chain(clip):
        if rng.random() < 0.8:
            clip = -clip
        if rng.random() < 0.01:
            clip = clip + rng.normal(0, rng.uniform(1e-4, 1e-2) * clip.std(), clip.shape)
            clip = clip.astype(np.float32)
        effects = []
        if rng.random() < 0.3:
            effects.append(pb.Gain(gain_db=rng.uniform(-20, -1)))
        board = pb.Pedalboard(effects)
        clip = np.clip(board(clip, SR), -1, 1) if effects else clip
        effects = []
        if rng.random() < 0.8:
            if rng.random() < 0.5:
                effects.append(pb.HighpassFilter(cutoff_frequency_hz=rng.uniform(200, 1200)))
            else:
                effects.append(pb.LowpassFilter(cutoff_frequency_hz=rng.uniform(2200, 4000)))
        if rng.random() < 0.3:
            # (x + 0.5 delayed) / 2 = 0.75 * ((2/3) x + (1/3) delayed)
            effects.append(pb.Delay(delay_seconds=rng.choice(np.arange(200, 500, 50)) / 1000,
                                    feedback=0.0, mix=1 / 3))
            effects.append(pb.Gain(gain_db=20 * np.log10(0.75)))
        if rng.random() < 0.6:
            effects.append(pb.PitchShift(semitones=rng.integers(-700, 701) / 100))
        if rng.random() < 0.6:
            effects.append(pb.Reverb(room_size=rng.integers(0, 100) / 100,
                                     damping=rng.integers(0, 100) / 100))
        return pb.Pedalboard(effects)(clip, SR) if effects else clip

    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for clip in x:
            out = chain(clip)
            assert out.shape[-1] == LENGTH
        rates.append(clips / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {"clips_per_s": rate, "ms_per_clip": 1000 / rate}


def time_step(batch: int, batches: int) -> dict:
    """Median train-step time of SampleCNN on two views, with and without the augmenter."""
    import keras
    import numpy as np

    from mssl_tf.augment import AudioAugment
    from mssl_tf.models import build_sample_cnn

    class TwoViews(keras.Model):
        def __init__(self, augmenter):
            super().__init__()
            self.encoder = build_sample_cnn(512, LENGTH)
            self.augmenter = augmenter

        def call(self, x, training=False):
            views = [x[:, 0], x[:, 1]]
            if self.augmenter is not None:
                views = [self.augmenter(v, training=True) for v in views]
            return keras.ops.concatenate([self.encoder(v, training=training) for v in views], -1)

    x = np.stack([_clips(batch, 0), _clips(batch, 1)], axis=1)
    y = np.zeros((batch, 1024), np.float32)
    result = {}
    for name, augmenter in (("without", None), ("with", AudioAugment(seed=0))):
        model = TwoViews(augmenter)
        model.compile(optimizer=keras.optimizers.SGD(1e-3), loss="mse", jit_compile=True)
        start = time.perf_counter()
        model.train_on_batch(x, y)
        result[f"first_step_s_{name}"] = time.perf_counter() - start
        times = []
        for _ in range(batches):
            start = time.perf_counter()
            float(model.train_on_batch(x, y))  # a host value: waits for the step
            times.append(time.perf_counter() - start)
        result[f"step_s_{name}_augment"] = statistics.median(times)
    result["step_ratio_with_over_without"] = (result["step_s_with_augment"]
                                              / result["step_s_without_augment"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=1, help="pin to this many cores (0: all)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=4, help="timed calls after the warm-up")
    parser.add_argument("--pedalboard_clips", type=int, default=48)
    parser.add_argument("--ops", action="store_true", help="also time each op alone at p = 1")
    parser.add_argument("--xla", action="store_true", help="TF backend: jit_compile=True")
    parser.add_argument("--step", action="store_true",
                        help="time a SampleCNN train step with and without the augmenter")
    parser.add_argument("--json", default=None, help="also append the JSON lines to this file")
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:args.cores]))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    from mssl_tf.augment import OPS
    common = {"cores": len(os.sched_getaffinity(0)), "length": LENGTH,
              "backend": keras.backend.backend(),
              "xla": bool(args.xla) or keras.backend.backend() == "jax"}

    def emit(record):
        record = {**record, **common}
        print(json.dumps(record), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(record) + "\n")

    if args.step:
        emit({"impl": "mssl_tf.AudioAugment", "chain": "clmr", "measure": "train step overhead",
              "batch": args.batch, **time_step(args.batch, args.batches)})
        return
    ours = time_layer(args.batch, args.batches, args.xla)
    emit({"impl": "mssl_tf.AudioAugment", "chain": "clmr", "batch": args.batch, **ours})
    if args.ops:
        for op in OPS:
            probabilities = {f"{o}_p": (1.0 if o == op else 0.0) for o in OPS}
            emit({"impl": "mssl_tf.AudioAugment", "chain": f"{op} only (p=1)", "batch": args.batch,
                  **time_layer(args.batch, args.batches, args.xla, **probabilities)})
    try:
        theirs = time_pedalboard(args.pedalboard_clips)
    except ImportError:
        emit({"impl": "pedalboard", "error": "not installed: pip install pedalboard"})
    else:
        emit({"impl": "pedalboard", "chain": "clmr", "batch": 1, **theirs})
        emit({"ratio_mssl_tf_over_pedalboard": ours["clips_per_s"] / theirs["clips_per_s"]})


if __name__ == "__main__":
    main()
