"""Crops of one track inside tf.data: random crops, two-view pairs, and test-time chunks."""

from __future__ import annotations

import tensorflow as tf


def random_crop(audio: tf.Tensor, crop_len: int, seed: tf.Tensor) -> tf.Tensor:
    """One uniformly placed crop of `crop_len` samples (CLMR's RandomResizedCrop).

    The start is drawn from [0, len - crop_len] inclusive, like `random.randint(0, T - n)`.

    Args:
      audio: 1-D track, at least `crop_len` long.
      crop_len: crop length in samples.
      seed: int tensor of shape [2] for the stateless draw (deterministic given the seed).
    """
    length = tf.shape(audio, out_type=tf.int64)[0]
    start = tf.random.stateless_uniform([], seed=seed, minval=0,
                                        maxval=length - crop_len + 1, dtype=tf.int64)
    crop = audio[start:start + crop_len]
    return tf.ensure_shape(crop, [crop_len])


def two_view_crops(audio: tf.Tensor, crop_len: int, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Two independent random crops of the same track (the two views of CLMR/VICReg)."""
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    return random_crop(audio, crop_len, seeds[0]), random_crop(audio, crop_len, seeds[1])


def num_chunks(length: tf.Tensor | int, crop_len: int):
    """Number of test chunks of a track: non-overlapping, last chunk dropped (CLMR concat_clip).

    `torch.split` makes ceil(len / crop_len) chunks and CLMR drops the last one even when it is
    full, so a 29.1 s clip at 22,050 Hz (641,655 samples) gives 10 chunks and a track of exactly
    one chunk gives none.
    """
    if isinstance(length, int):
        return max(-(-length // crop_len) - 1, 0)
    length = tf.cast(length, tf.int64)
    return tf.maximum((length + crop_len - 1) // crop_len - 1, 0)


def chunk_track(audio: tf.Tensor, crop_len: int) -> tf.Tensor:
    """Splits a track into its test chunks, shape [num_chunks(len), crop_len]."""
    n = num_chunks(tf.shape(audio, out_type=tf.int64)[0], crop_len)
    return tf.reshape(audio[:n * crop_len], [-1, crop_len])
