"""Crops of one track inside tf.data: random crops, two-view pairs, and test-time chunks."""

from __future__ import annotations

import tensorflow as tf


def _crop_start(length: tf.Tensor, crop_len: int, seed: tf.Tensor) -> tf.Tensor:
    """Uniform start in [0, length - crop_len] inclusive, like `random.randint(0, T - n)`."""
    return tf.random.stateless_uniform([], seed=seed, minval=0,
                                       maxval=length - crop_len + 1, dtype=tf.int64)


def random_crop(audio: tf.Tensor, crop_len: int, seed: tf.Tensor) -> tf.Tensor:
    """One uniformly placed crop of `crop_len` samples (CLMR's RandomResizedCrop).

    Args:
      audio: 1-D track, at least `crop_len` long.
      crop_len: crop length in samples.
      seed: int tensor of shape [2] for the stateless draw (deterministic given the seed).
    """
    start = _crop_start(tf.shape(audio, out_type=tf.int64)[0], crop_len, seed)
    crop = audio[start:start + crop_len]
    return tf.ensure_shape(crop, [crop_len])


def random_crop_pcm_bytes(pcm: tf.Tensor, crop_len: int, seed: tf.Tensor) -> tf.Tensor:
    """`random_crop` of a track still held as little-endian int16 bytes (the record's payload).

    Cutting the bytes before decoding converts 2 x 118 KB per crop pair instead of the whole
    1.3 MB of a 30 s track; for the same seed the crop equals `random_crop` of the decoded track.

    Args:
      pcm: scalar string tensor of 2 * length bytes, length >= crop_len.
      crop_len: crop length in samples.
      seed: int tensor of shape [2].

    Returns:
      int16 tensor of shape [crop_len].
    """
    length = tf.cast(tf.strings.length(pcm), tf.int64) // 2
    start = _crop_start(length, crop_len, seed)
    crop = tf.io.decode_raw(tf.strings.substr(pcm, 2 * start, 2 * crop_len), tf.int16,
                            little_endian=True)
    return tf.ensure_shape(crop, [crop_len])


def two_view_crops(audio: tf.Tensor, crop_len: int, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Two independent random crops of the same track (the two views of CLMR/VICReg).

    `audio` is a decoded 1-D track, or its int16 bytes as a scalar string tensor (then the
    crops are cut before decoding, see `random_crop_pcm_bytes`).
    """
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    crop = random_crop_pcm_bytes if audio.dtype == tf.string else random_crop
    return crop(audio, crop_len, seeds[0]), crop(audio, crop_len, seeds[1])


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
