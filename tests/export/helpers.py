"""Helpers of the export tests: tiny pre-training run directories."""

import json
import os

import keras
import numpy as np

TINY = {"rep_dim": 8, "crop_len": 2187, "widths": [4, 4, 8, 8, 8, 8]}  # 3**7 samples


def make_run(run_dir, data_dir, *, spec=TINY, epochs=(1, 2), seed=0):
    """A run directory as `mssl-pretrain` writes it: run.json + encoder snapshots."""
    from mssl_tf.models import build_sample_cnn
    os.makedirs(os.path.join(run_dir, "snapshots"), exist_ok=True)
    for e in epochs:  # different weights per milestone, so a checkpoint mix-up shows
        keras.utils.set_random_seed(seed + e)
        encoder = build_sample_cnn(spec["rep_dim"], spec["crop_len"], widths=tuple(spec["widths"]))
        encoder.save_weights(os.path.join(run_dir, "snapshots",
                                          f"encoder_epoch_{e:05d}.weights.h5"))
    encoder.save_weights(os.path.join(run_dir, "snapshots", "encoder_latest.weights.h5"))
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump({"encoder": dict(spec), "objective": "vicreg", "data_dir": data_dir,
                   "global_batch": 8, "epochs": max(epochs), "latest_epoch": max(epochs)}, f)
    return run_dir


def make_probed_run(root):
    """(run_dir, probe_dir, shards) under `root`: a tiny run whose latest snapshot was probed
    for real by `run_probe` on synthetic shards."""
    from mssl_tf.data.synthetic import write_synthetic_dataset
    from mssl_tf.eval.probe import run_probe
    shards = os.path.join(str(root), "shards")
    write_synthetic_dataset(shards, seconds=0.5, num_tracks={"train": 16, "valid": 8, "test": 8})
    run_dir = make_run(os.path.join(str(root), "run"), shards)
    res = run_probe(run_dir, shards, checkpoint="latest", max_epochs=2, batch_size=16)
    probe_dir = os.path.join(run_dir, "probes", f"synthetic-{res['checkpoint']['tag']}", "linear")
    assert os.path.exists(os.path.join(probe_dir, "head.weights.h5"))
    return run_dir, probe_dir, shards


def set_nontrivial_bn_statistics(encoder) -> None:
    """Moving statistics away from (0, 1), so inference-mode BN is what gets checked."""
    for layer in encoder.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(np.linspace(-0.1, 0.1, n).astype(np.float32))
            layer.moving_variance.assign(np.linspace(0.5, 2.0, n).astype(np.float32))
