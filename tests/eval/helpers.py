"""Helpers of the evaluation tests: hand-made shards and pre-training run directories."""

import json
import os

import keras
import numpy as np

from mssl_tf.data import features
from mssl_tf.models import build_sample_cnn

TINY_ENCODER = {"rep_dim": 8, "crop_len": 2187, "widths": [4] * 6}  # 3**7 samples


def write_shards(out_dir, tracks, *, num_labels, multi_label=True, tag_names=None,
                 dataset="handmade", sample_rate=features.SAMPLE_RATE):
    """Writes one shard per split from {split: [(track_id, int16 audio, labels), ...]}."""
    import tensorflow as tf
    os.makedirs(out_dir, exist_ok=True)
    splits = {}
    for split, items in tracks.items():
        name = features.shard_name(dataset, split, 0, 1)
        with tf.io.TFRecordWriter(os.path.join(out_dir, name)) as w:
            for track_id, audio, labels in items:
                w.write(features.serialize_example(audio, track_id=track_id, split=split,
                                                   labels=labels, sample_rate=sample_rate))
        splits[split] = {"num_tracks": len(items), "shards": [{"file": name}]}
    manifest = {"dataset": dataset, "schema_version": features.SCHEMA_VERSION,
                "sample_rate": sample_rate, "multi_label": multi_label,
                "tag_names": tag_names if tag_names is not None else
                [f"t{i}" for i in range(num_labels)],
                "num_labels": num_labels, "splits": splits, "skipped": [], "created": "test"}
    with open(os.path.join(out_dir, features.MANIFEST_NAME), "w") as f:
        json.dump(manifest, f)
    return out_dir


def noise(rng, n):
    return (rng.standard_normal(n) * 3000).astype(np.int16)


def make_run(run_dir, data_dir, *, spec=None, objective="vicreg", epochs=(1,), seed=0,
             global_batch=8, save=True):
    """A pre-training run directory as `mssl-pretrain` writes it (run.json + snapshots)."""
    spec = dict(spec or TINY_ENCODER)
    os.makedirs(os.path.join(run_dir, "snapshots"), exist_ok=True)
    keras.utils.set_random_seed(seed)
    encoder = build_sample_cnn(spec["rep_dim"], spec["crop_len"], widths=tuple(spec["widths"]))
    if save:
        for e in epochs:
            encoder.save_weights(os.path.join(run_dir, "snapshots",
                                              f"encoder_epoch_{e:05d}.weights.h5"))
        encoder.save_weights(os.path.join(run_dir, "snapshots", "encoder_latest.weights.h5"))
    run = {"encoder": spec, "objective": objective, "data_dir": data_dir,
           "global_batch": global_batch, "epochs": max(epochs), "latest_epoch": max(epochs),
           "mssl_tf_version": "test"}
    with open(os.path.join(run_dir, "run.json"), "w") as f:
        json.dump(run, f)
    return encoder


class BandEnergies(keras.layers.Layer):
    """A fixed spectral encoder: log energy at the synthetic tags' tone frequencies and the
    spread of the frame energy (the 4 Hz pulse), scaled to O(1)."""

    def __init__(self, sample_rate=22050, freqs=(110.0, 440.0, 1760.0), frame=512, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate, self.freqs, self.frame = sample_rate, freqs, frame

    def call(self, x):
        re, im = keras.ops.stft(x, self.frame, self.frame // 2, self.frame, window="hann",
                                center=False)
        power = re * re + im * im
        feats = []
        for f in self.freqs:
            b = int(round(f * self.frame / self.sample_rate))
            band = keras.ops.sum(power[..., b - 1:b + 2], axis=-1)
            feats.append((keras.ops.mean(keras.ops.log(band + 1e-6), axis=1) - 1.5) / 5.0)
        energy = keras.ops.log(keras.ops.sum(power, axis=-1) + 1e-6)
        feats.append((keras.ops.std(energy, axis=1) - 0.35) * 3.0)
        return keras.ops.stack(feats, axis=-1)
