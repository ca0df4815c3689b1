"""Frozen-encoder features: one random crop per track, every test chunk, cached on disk.

CLMR embeds one random 59,049-sample crop per train/valid track once, with the encoder frozen
and BatchNorm in inference mode, and trains the probe on those fixed features (anchors 1.8,
pitfall 4). For the test protocol every non-overlapping chunk of a track is embedded (the last
one dropped, anchors 1.7); since the encoder is frozen and deterministic, caching the chunk
features and applying the head later gives exactly CLMR's chunk predictions.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import weakref
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from mssl_tf import fileio
from mssl_tf.data import pipeline

logger = logging.getLogger(__name__)


def freeze(encoder: keras.Model) -> keras.Model:
    """Marks the encoder non-trainable; in Keras 3 this also forces BatchNorm into inference."""
    encoder.trainable = False
    return encoder


def bn_moving_statistics(model: keras.Model) -> dict[str, np.ndarray]:
    """Copies of every BatchNormalization moving mean/variance, keyed by variable path."""
    stats = {}
    stack = list(model.layers)
    while stack:  # walk nested models too
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            for v in (layer.moving_mean, layer.moving_variance):
                stats[v.path] = np.array(keras.ops.convert_to_numpy(v))
        stack.extend(getattr(layer, "layers", []))
    return stats


def check_bn_unchanged(model: keras.Model, before: dict[str, np.ndarray]) -> None:
    """Raises RuntimeError when a BN moving statistic moved since `before` was taken."""
    after = bn_moving_statistics(model)
    moved = [k for k, v in before.items() if not np.array_equal(v, after[k])]
    if moved:
        raise RuntimeError(f"The frozen encoder's BatchNorm statistics changed ({moved[:3]} ...): "
                           "it ran in training mode, so its features are not CLMR's.")


# One traced inference function per encoder, shared by every `make_embed_fn` call: a probe
# embeds several splits (and may be run again on the same encoder), and a new tf.function each
# time would retrace the whole encoder each time (and make TF warn about it).
_TRACED: weakref.WeakKeyDictionary[keras.Model, tf.types.experimental.GenericFunction] = (
    weakref.WeakKeyDictionary())


def _traced_inference(encoder: keras.Model):
    fn = _TRACED.get(encoder)
    if fn is None:
        ref = weakref.ref(encoder)  # the cache must not keep the encoder alive
        fn = tf.function(lambda x: ref()(x, training=False), reduce_retracing=True)
        _TRACED[encoder] = fn
    return fn


def make_embed_fn(encoder: keras.Model, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """A function embedding up to `batch_size` crops with BN in inference mode.

    Inputs are zero-padded to a fixed batch so the traced graph is reused for every call, and
    every embed function of one encoder shares one traced graph.
    """
    freeze(encoder)
    _embed = _traced_inference(encoder)

    def embed(x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if n < batch_size:
            x = np.concatenate([x, np.zeros((batch_size - n,) + x.shape[1:], x.dtype)])
        return np.asarray(_embed(tf.convert_to_tensor(x)))[:n]

    return embed


def _label_error(data_dir: str, split: str, error: Exception) -> ValueError:
    return ValueError(f"The {split!r} shards in {data_dir!r} hold label vectors of different "
                      f"lengths ({error.__class__.__name__}). Every track needs the same number of "
                      "labels; re-run `mssl-prepare` for this dataset.")


def embed_crops(encoder: keras.Model, data_dir: str, split: str, *, crop_len: int,
                batch_size: int = 64, seed: int = 0, total: int | None = None) -> dict:
    """Embeds one random crop per track of a split.

    Args:
      encoder: the encoder (frozen here; BN runs in inference mode).
      data_dir: shard folder.
      split: "train" or "valid" (or "test").
      crop_len: crop length in samples (the encoder's input length).
      batch_size: crops per encoder call.
      seed: seed of the crop positions (the same seed gives the same crops).
      total: number of tracks for the progress bar.

    Returns:
      {"features": (N, D) float32, "labels": (N, L) float32, "track_ids": (N,) str}.
    """
    embed = make_embed_fn(encoder, batch_size)
    ds = pipeline.single_crop_dataset(data_dir, split, batch_size, crop_len=crop_len, seed=seed)
    feats, labels, ids = [], [], []
    try:
        for batch in tqdm(ds, total=-(-total // batch_size) if total else None,
                          desc=f"embed {split} crops", unit="batch", leave=False):
            feats.append(embed(batch["audio"].numpy()))
            labels.append(batch["labels"].numpy())
            ids.extend(t.decode("utf-8") for t in batch["track_id"].numpy())
    except tf.errors.InvalidArgumentError as e:
        raise _label_error(data_dir, split, e) from None
    if not feats:
        raise ValueError(f"No track of the {split!r} split in {data_dir!r} is at least {crop_len} "
                         "samples long, so nothing could be embedded.")
    return {"features": np.concatenate(feats).astype(np.float32),
            "labels": np.concatenate(labels).astype(np.float32), "track_ids": np.asarray(ids)}


def embed_chunks(encoder: keras.Model, data_dir: str, split: str = "test", *, crop_len: int,
                 batch_size: int = 64, total: int | None = None) -> dict:
    """Embeds every test chunk of every track (CLMR's test protocol).

    Chunks of consecutive tracks share encoder batches; `owner[i]` is the index of the track
    chunk i belongs to. Tracks shorter than two chunk lengths have no chunk (the last one is
    always dropped): they are skipped, counted and named in `skipped`.

    Returns:
      {"features": (C, D), "owner": (C,) int64, "labels": (T, L), "track_ids": (T,),
       "num_chunks": (T,), "skipped": (S,) ids of tracks without a chunk}.
    """
    embed = make_embed_fn(encoder, batch_size)
    feats, owner, labels, ids, counts, skipped = [], [], [], [], [], []
    pending: list[np.ndarray] = []

    def flush(final: bool = False) -> None:
        nonlocal pending
        stack = np.concatenate(pending) if pending else np.zeros((0, crop_len), np.float32)
        cut = len(stack) if final else len(stack) // batch_size * batch_size
        for start in range(0, cut, batch_size):
            feats.append(embed(stack[start:start + batch_size]))
        pending = [stack[cut:]] if cut < len(stack) else []

    try:
        for track in tqdm(pipeline.chunk_dataset(data_dir, split, crop_len=crop_len),
                          total=total, desc=f"embed {split} chunks", unit="track", leave=False):
            track_id = track["track_id"].numpy().decode("utf-8")
            n = int(track["num_chunks"])
            if n == 0:
                skipped.append(track_id)
                continue
            owner.append(np.full(n, len(ids), np.int64))
            ids.append(track_id)
            labels.append(track["labels"].numpy())
            counts.append(n)
            pending.append(track["chunks"].numpy())
            if sum(len(p) for p in pending) >= batch_size:
                flush()
        flush(final=True)
    except tf.errors.InvalidArgumentError as e:
        raise _label_error(data_dir, split, e) from None
    if skipped:
        logger.warning("%d %s track(s) in %s are shorter than two chunks of %d samples and were "
                       "skipped: %s", len(skipped), split, data_dir, crop_len,
                       ", ".join(skipped[:10]) + (" ..." if len(skipped) > 10 else ""))
    if not ids:
        raise ValueError(f"No track of the {split!r} split in {data_dir!r} is long enough for one "
                         f"test chunk (> {crop_len} samples); {len(skipped)} skipped.")
    widths = {len(x) for x in labels}
    if len(widths) > 1:
        raise _label_error(data_dir, split, ValueError(sorted(widths)))
    return {"features": np.concatenate(feats).astype(np.float32),
            "owner": np.concatenate(owner), "labels": np.stack(labels).astype(np.float32),
            "track_ids": np.asarray(ids), "num_chunks": np.asarray(counts, np.int64),
            "skipped": np.asarray(skipped, dtype=str)}


def file_fingerprint(path: str) -> str:
    """sha256 of a (local or gs://) file, to tie cached features to the exact weights."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def cached(path: str, key: dict, compute: Callable[[], dict]) -> dict:
    """Loads arrays from the .npz at `path` if it was made with the same `key`, else computes.

    Args:
      path: .npz file (local or gs://); written atomically after computing.
      key: JSON-able description of everything the arrays depend on (weights hash, data,
        crop length, seed); a different key recomputes and overwrites.
      compute: returns a dict of numpy arrays.

    Returns:
      The arrays, with "cache_hit" set to True/False.
    """
    key_json = json.dumps(key, sort_keys=True)
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path, "rb") as f:
            data = dict(np.load(io.BytesIO(f.read()), allow_pickle=False))
        if str(data.pop("cache_key", "")) == key_json:
            logger.info("Re-using cached features %s", path)
            return {**data, "cache_hit": True}
        logger.info("Cached features %s were made with other settings; recomputing", path)
    data = compute()
    buf = io.BytesIO()
    np.savez(buf, cache_key=np.asarray(key_json), **data)
    fileio.write_bytes(path, buf.getvalue())
    return {**data, "cache_hit": False}
