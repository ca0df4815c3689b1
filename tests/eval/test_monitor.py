"""ProbeMonitor: quick probe scores in the epoch logs and in TensorBoard during fit()."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf

from mssl_tf.data import pipeline
from mssl_tf.eval.monitor import ProbeMonitor, quick_probe_scores
from tests.eval.helpers import BandEnergies, noise, write_shards

CROP = 6561


class Wrapped(keras.Model):
    """Stands in for SSLModel: a trained model exposing its encoder as `.encoder`."""

    def __init__(self, encoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.out = keras.layers.Dense(1)

    def call(self, x, training=False):
        return self.out(self.encoder(x, training=training))


def _read_scalars(log_dir):
    values = {}
    for path in glob.glob(f"{log_dir}/events.out.tfevents.*"):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for v in event.summary.value:
                values.setdefault(v.tag, {})[event.step] = float(
                    tf.make_ndarray(v.tensor)) if v.HasField("tensor") else v.simple_value
    return values


def test_monitor_logs_quick_probe_scores(synthetic_shards, tmp_path):
    inputs = keras.Input((CROP,))
    encoder = keras.Model(inputs, BandEnergies()(inputs), name="encoder")
    model = Wrapped(encoder)
    model.compile(optimizer="sgd", loss="mse")
    log_dir = str(tmp_path / "tb")
    monitor = ProbeMonitor(synthetic_shards, every_n_epochs=2, split="train", max_tracks=40,
                           log_dir=log_dir)
    x = np.zeros((4, CROP), np.float32)
    history = model.fit(x, np.zeros((4, 1)), epochs=4, verbose=0, callbacks=[monitor])
    # Probed after epoch 1 (baseline), 2 and 4; the keys are in those epochs' logs.
    assert [e for e, _ in monitor.results] == [0, 1, 3]
    roc = history.history["probe_roc_auc"]
    assert len(roc) == 3 and min(roc) > 90  # this encoder hears the tags
    # The number equals a logistic-regression probe on the same features, halves fit/scored.
    crops, labels = [], []
    for b in pipeline.single_crop_dataset(synthetic_shards, "train", 32, crop_len=CROP, seed=0):
        crops.append(b["audio"].numpy())
        labels.append(b["labels"].numpy())
    crops, labels = np.concatenate(crops)[:40], np.concatenate(labels)[:40]
    feats = keras.ops.convert_to_numpy(encoder(crops)).astype(np.float64)
    want = quick_probe_scores(feats[0::2], labels[0::2], feats[1::2], labels[1::2])
    assert monitor.results[-1][1]["roc_auc"] == pytest.approx(want["roc_auc"])
    assert monitor.results[-1][1]["pr_auc"] == pytest.approx(want["pr_auc"])
    scalars = _read_scalars(log_dir)
    assert sorted(scalars["probe/roc_auc"]) == [1, 2, 4]
    assert scalars["probe/pr_auc"][4] == pytest.approx(want["pr_auc"], rel=1e-5)


def test_monitor_sees_a_collapsed_encoder(synthetic_shards):
    inputs = keras.Input((CROP,))
    collapsed = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, :4] * 0.0 + 1.0)(inputs))
    monitor = ProbeMonitor(synthetic_shards, split="train", max_tracks=40)
    monitor.set_model(Wrapped(collapsed))
    logs = {}
    monitor.on_epoch_end(0, logs)
    assert logs["probe_roc_auc"] == pytest.approx(50.0)


def test_monitor_refuses_unlabelled_shards(tmp_path):
    rng = np.random.default_rng(0)
    data = write_shards(str(tmp_path / "d"), {"train": [("a", noise(rng, 3000), [])]},
                        num_labels=0)
    with pytest.raises(ValueError, match="labelled"):
        ProbeMonitor(data)
    with pytest.raises(ValueError, match="every_n_epochs"):
        ProbeMonitor(data, every_n_epochs=0)
