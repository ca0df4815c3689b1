"""The TFRecord schema: one module shared by the writer (data_tools) and the reader (pipeline).

Every record is one track: mono int16 PCM at the dataset's sample rate (22,050 Hz by default),
its length, an id, a float multi-hot (or one-hot) label vector whose length is the same for every
record of a dataset (empty when the dataset has no labels), the split name and the schema version.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from mssl_tf.constants import (  # noqa: F401  (the schema's names, re-exported)
    CROP_LEN,
    MANIFEST_NAME,
    SAMPLE_RATE,
    SCHEMA_VERSION,
    SHARD_PATTERN,
    SHARD_REGEX,
    SPLITS,
)

# Shard names: <dataset>-<split>-NNNNN-of-NNNNN.tfrecord
SHARD_RE = re.compile(SHARD_REGEX)


def shard_name(dataset: str, split: str, index: int, count: int) -> str:
    """File name of shard `index` (0-based) of `count` for one dataset split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SHARD_PATTERN.format(dataset=dataset, split=split, index=index, count=count)


def feature_spec() -> dict:
    """The parsing spec of one serialized record (labels are variable length on disk)."""
    return {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "sample_rate": tf.io.FixedLenFeature([], tf.int64),
        "num_samples": tf.io.FixedLenFeature([], tf.int64),
        "track_id": tf.io.FixedLenFeature([], tf.string),
        "labels": tf.io.VarLenFeature(tf.float32),
        "split": tf.io.FixedLenFeature([], tf.string),
        "schema_version": tf.io.FixedLenFeature([], tf.int64),
    }


def _to_int16(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {audio.shape}")
    if audio.dtype != np.int16:
        raise TypeError(f"audio must be int16 PCM, got {audio.dtype}; use float_to_int16() first")
    return audio


def float_to_int16(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """Float audio in [-1, 1] to int16 PCM; returns the samples and how many were clipped."""
    audio = np.asarray(audio, dtype=np.float32)
    scaled = np.round(audio * 32767.0)
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def make_example(audio: np.ndarray, *, track_id: str, split: str,
                 labels: Sequence[float] = (), sample_rate: int = SAMPLE_RATE) -> tf.train.Example:
    """Builds the tf.train.Example of one track.

    Args:
      audio: mono int16 PCM samples, 1-D.
      track_id: the dataset's id of the track (file stem, clip id, ...).
      split: one of "train", "valid", "test".
      labels: multi-hot / one-hot floats; the same length for every track of a dataset.
      sample_rate: sample rate of `audio` in Hz.

    Returns:
      The example; `serialize_example` gives its bytes.
    """
    audio = _to_int16(audio)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    feature = {
        "audio": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[audio.astype("<i2").tobytes()])),
        "sample_rate": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(sample_rate)])),
        "num_samples": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(audio.shape[0])])),
        "track_id": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[track_id.encode("utf-8")])),
        "labels": tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in labels])),
        "split": tf.train.Feature(bytes_list=tf.train.BytesList(value=[split.encode("utf-8")])),
        "schema_version": tf.train.Feature(int64_list=tf.train.Int64List(value=[SCHEMA_VERSION])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def serialize_example(audio: np.ndarray, **kwargs) -> bytes:
    """`make_example(...)` serialized to bytes (deterministic for equal inputs)."""
    return make_example(audio, **kwargs).SerializeToString(deterministic=True)


def pcm_to_float(audio: tf.Tensor) -> tf.Tensor:
    """int16 PCM to float32 in [-1, 1)."""
    return tf.cast(audio, tf.float32) / 32768.0


def parse_example(serialized: tf.Tensor, decode_float: bool = True) -> dict[str, tf.Tensor]:
    """Parses one serialized record inside tf.data.

    Args:
      serialized: a scalar string tensor.
      decode_float: convert the audio to float32; False keeps int16 (half the memory in a cache:
        the pipeline crops first and converts the crops).

    Returns:
      A dict with "audio" (float32 in [-1, 1) or int16, shape [num_samples]), "num_samples"
      (int64), "sample_rate" (int64), "track_id" (string), "labels" (float32 [num_labels]),
      "split" (string) and "schema_version" (int64).
    """
    parsed = tf.io.parse_single_example(serialized, feature_spec())
    audio = tf.io.decode_raw(parsed["audio"], tf.int16, little_endian=True)
    parsed["audio"] = pcm_to_float(audio) if decode_float else audio
    parsed["labels"] = tf.sparse.to_dense(parsed["labels"])
    return parsed


def parse_pcm_bytes(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Parses only the audio payload (still int16 bytes) and the length of one record.

    The pre-training reader needs nothing else, and crops the bytes before decoding them
    (`crops.random_crop_pcm_bytes`): reading a 30 s track then costs one copy of its bytes
    fewer than `parse_example`.

    Returns:
      (pcm, num_samples): a scalar string of 2 * num_samples little-endian bytes, and int64.
    """
    parsed = tf.io.parse_single_example(serialized, {
        "audio": tf.io.FixedLenFeature([], tf.string),
        "num_samples": tf.io.FixedLenFeature([], tf.int64)})
    return parsed["audio"], parsed["num_samples"]


def parse_example_numpy(serialized: bytes) -> dict[str, object]:
    """Parses one record in plain Python (for tools and tests); audio stays int16."""
    example = tf.train.Example.FromString(serialized)
    f = example.features.feature
    return {
        "audio": np.frombuffer(f["audio"].bytes_list.value[0], dtype="<i2").astype(np.int16),
        "sample_rate": int(f["sample_rate"].int64_list.value[0]),
        "num_samples": int(f["num_samples"].int64_list.value[0]),
        "track_id": f["track_id"].bytes_list.value[0].decode("utf-8"),
        "labels": np.asarray(f["labels"].float_list.value, dtype=np.float32),
        "split": f["split"].bytes_list.value[0].decode("utf-8"),
        "schema_version": int(f["schema_version"].int64_list.value[0]),
    }
