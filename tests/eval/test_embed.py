"""Frozen-encoder features: inference-mode BN, test chunks, skipped tracks, the cache."""

import os

import keras
import numpy as np
import pytest

from mssl_tf.data import features
from mssl_tf.eval import embed
from mssl_tf.models import build_sample_cnn
from tests.eval.helpers import noise, write_shards


def _moved_bn(encoder):
    """Gives every BN layer non-trivial moving statistics, as a trained encoder has."""
    x = np.random.default_rng(0).standard_normal((8, encoder.input_shape[-1])).astype("float32")
    for _ in range(3):
        encoder(x * 5 + 1, training=True)


def test_features_use_inference_mode_bn_and_leave_statistics_alone(tmp_path):
    rng = np.random.default_rng(0)
    # Tracks of exactly one crop, so the "random" crop is the whole track.
    tracks = {"train": [(f"a{i}", noise(rng, 2187), [1.0, 0.0]) for i in range(5)]}
    data = write_shards(str(tmp_path / "d"), tracks, num_labels=2)
    encoder = build_sample_cnn(8, 2187, widths=(4,) * 6, synchronized_bn=False)
    _moved_bn(encoder)
    before = embed.bn_moving_statistics(encoder)
    assert len(before) == 2 * 8 and any(np.abs(v).max() > 0.1 for v in before.values())
    out = embed.embed_crops(encoder, data, "train", crop_len=2187, batch_size=4, seed=1)
    embed.check_bn_unchanged(encoder, before)  # raises if anything moved
    assert out["features"].shape == (5, 8) and out["labels"].shape == (5, 2)
    # Features equal the inference-mode forward pass one example at a time (batch statistics
    # would make them depend on the batch).
    crops = np.stack([a.astype(np.float32) / 32768.0 for _, a, _ in tracks["train"]])
    single = np.concatenate([keras.ops.convert_to_numpy(encoder(c[None], training=False))
                             for c in crops])
    np.testing.assert_allclose(out["features"], single, rtol=1e-4, atol=1e-5)
    # Frozen, the encoder stays in inference mode even if called with training=True ...
    assert not encoder.trainable
    np.testing.assert_allclose(keras.ops.convert_to_numpy(encoder(crops, training=True)),
                               single, rtol=1e-4, atol=1e-5)
    embed.check_bn_unchanged(encoder, before)
    # ... while an unfrozen copy in training mode gives other (batch-statistics) features.
    copy = build_sample_cnn(8, 2187, widths=(4,) * 6, synchronized_bn=False)
    copy.set_weights(encoder.get_weights())
    train_mode = keras.ops.convert_to_numpy(copy(crops, training=True))
    assert np.abs(train_mode - single).max() > 1e-3


def test_bn_check_catches_training_mode():
    encoder = build_sample_cnn(8, 2187, widths=(4,) * 6, synchronized_bn=False)
    before = embed.bn_moving_statistics(encoder)
    encoder(np.ones((2, 2187), "float32"), training=True)
    with pytest.raises(RuntimeError, match="training mode"):
        embed.check_bn_unchanged(encoder, before)


@pytest.mark.slow
def test_a_29_1_second_clip_gives_10_chunks_and_short_tracks_are_skipped(tmp_path):
    rng = np.random.default_rng(1)
    sr = features.SAMPLE_RATE
    length = int(round(29.1 * sr))  # 641,655 samples
    tracks = {"test": [("long", noise(rng, length), [1, 0, 1]),
                       ("one_chunk_only", noise(rng, 59049), [0, 1, 0]),  # last chunk dropped
                       ("short", noise(rng, 30000), [0, 1, 0]),
                       ("two", noise(rng, 59049 * 2 + 5), [0, 0, 1])]}
    data = write_shards(str(tmp_path / "d"), tracks, num_labels=3)
    encoder = build_sample_cnn(8, 59049, widths=(4,) * 9, synchronized_bn=False)
    out = embed.embed_chunks(encoder, data, "test", crop_len=59049, batch_size=4)
    assert list(out["track_ids"]) == ["long", "two"]
    assert list(out["num_chunks"]) == [10, 2]
    assert sorted(out["skipped"]) == ["one_chunk_only", "short"]
    assert out["features"].shape == (12, 8)
    np.testing.assert_array_equal(out["owner"], [0] * 10 + [1] * 2)
    np.testing.assert_array_equal(out["labels"], [[1, 0, 1], [0, 0, 1]])
    # Chunk 3 of the long track is samples [3*59049, 4*59049) embedded in inference mode.
    audio = tracks["test"][0][1].astype(np.float32) / 32768.0
    chunk = audio[3 * 59049:4 * 59049][None]
    np.testing.assert_allclose(out["features"][3],
                               keras.ops.convert_to_numpy(encoder(chunk, training=False))[0],
                               rtol=1e-4, atol=1e-5)


def test_cache_is_reused_and_invalidated_by_its_key(tmp_path):
    path = str(tmp_path / "c" / "features_train.npz")
    calls = []

    def compute():
        calls.append(1)
        return {"features": np.arange(6.0).reshape(3, 2), "track_ids": np.array(["a", "b", "c"])}

    first = embed.cached(path, {"weights": "w1"}, compute)
    again = embed.cached(path, {"weights": "w1"}, compute)
    assert (first["cache_hit"], again["cache_hit"], len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(again["features"], first["features"])
    assert list(again["track_ids"]) == ["a", "b", "c"]
    other = embed.cached(path, {"weights": "w2"}, compute)
    assert not other["cache_hit"] and len(calls) == 2
    assert not [f for f in os.listdir(tmp_path / "c") if ".tmp" in f]


def test_label_vectors_of_different_lengths_are_explained(tmp_path):
    rng = np.random.default_rng(2)
    tracks = {"train": [("a", noise(rng, 3000), [1.0, 0.0]), ("b", noise(rng, 3000), [1.0])]}
    data = write_shards(str(tmp_path / "d"), tracks, num_labels=2)
    encoder = build_sample_cnn(8, 2187, widths=(4,) * 6, synchronized_bn=False)
    with pytest.raises(ValueError, match="different lengths"):
        embed.embed_crops(encoder, data, "train", crop_len=2187, batch_size=4)


def test_embed_functions_of_one_encoder_share_one_trace_and_see_new_weights():
    import gc
    import weakref
    encoder = build_sample_cnn(8, 243, widths=(4,) * 4, synchronized_bn=False)
    x = np.random.default_rng(0).standard_normal((3, 243)).astype("float32")
    first = embed.make_embed_fn(encoder, 4)(x)
    traced = embed._TRACED[encoder]
    for _ in range(3):  # e.g. train, valid and test splits, or a probe monitor every epoch
        np.testing.assert_array_equal(embed.make_embed_fn(encoder, 4)(x), first)
    assert traced.experimental_get_tracing_count() == 1
    # The trace reads the variables, so changed weights (a later epoch) change the features.
    encoder.set_weights([w * 1.5 for w in encoder.get_weights()])
    assert np.abs(embed.make_embed_fn(encoder, 4)(x) - first).max() > 1e-4
    assert traced.experimental_get_tracing_count() == 1
    # The cache does not keep encoders alive.
    ref = weakref.ref(encoder)
    del encoder, traced
    gc.collect()
    assert ref() is None
