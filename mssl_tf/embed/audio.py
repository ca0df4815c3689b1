"""Decoding and chunking of user audio for embedding; TF-free (runs in the decode workers).

The decoder is the data tools' (`data_tools.audio_io`: soundfile, librosa fallback), mixed to
mono and resampled with soxr HQ to the model's rate, kept as float32 (no int16 rounding: the
user's audio goes in as decoded). Chunks follow the test protocol (`mssl_tf.data.crops`):
non-overlapping windows of `crop_len` samples, the last one dropped even when full, a track of
exactly one window kept as that window; `hop` instead takes every full window every `hop`
samples.

Decode workers are spawned processes (the parent holds TensorFlow, which must not be forked)
that import only this module and `data_tools.audio_io`, and exit when their parent is gone
(`audio_io.init_worker`), so a SIGKILL of `mssl-embed` leaves no worker behind.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os

import numpy as np

from data_tools import audio_io


class AudioInputError(ValueError):
    """A file cannot be embedded: not decodable, too short, or non-finite samples."""


def chunk_starts(num_samples: int, crop_len: int, hop: int | None = None) -> np.ndarray:
    """Start offsets (samples) of the chunks a track of `num_samples` samples is cut into.

    Args:
      num_samples: length of the track at the model's rate.
      crop_len: chunk length in samples.
      hop: None for the test protocol (non-overlapping, the last chunk dropped even when full,
        as `mssl_tf.data.crops.num_chunks`; a track of exactly one chunk keeps it, as the
        SavedModel's `embed_track`); else every full window starting at a multiple of `hop`.

    Returns:
      int64 offsets, empty when the track is shorter than one chunk.
    """
    if num_samples < crop_len:
        return np.zeros(0, np.int64)
    if hop is None:
        count = max(-(-num_samples // crop_len) - 1, 1)
        return np.arange(count, dtype=np.int64) * crop_len
    if hop <= 0:
        raise ValueError(f"--hop must be a positive number of samples, got {hop}")
    return np.arange(0, num_samples - crop_len + 1, hop, dtype=np.int64)


def cut_chunks(waveform: np.ndarray, starts: np.ndarray, crop_len: int) -> np.ndarray:
    """The chunks at `starts`, shape [len(starts), crop_len] (a copy, contiguous)."""
    if len(starts) == 0:
        return np.zeros((0, crop_len), np.float32)
    index = starts[:, None] + np.arange(crop_len)[None, :]
    return np.ascontiguousarray(waveform[index], dtype=np.float32)


def load_waveform(path: str, sample_rate: int) -> np.ndarray:
    """Decodes `path` (local or gs://) to mono float32 at `sample_rate` (soxr HQ).

    Raises:
      AudioInputError: the file is missing, empty, not decodable, or has NaN/Inf samples.
    """
    try:
        audio, rate = audio_io.decode(path)
    except audio_io.AudioDecodeError as e:
        raise AudioInputError(str(e)) from None
    if audio.shape[0] == 0:
        raise AudioInputError("no audio frames in the file")
    mono = audio_io.resample(audio_io.to_mono(audio), rate, sample_rate)
    if not np.all(np.isfinite(mono)):
        raise AudioInputError("decoded audio contains NaN or Inf samples")
    return mono


@dataclasses.dataclass
class Decoded:
    """One file after decoding: its chunks, or why it has none.

    Attributes:
      path: the file as listed.
      duration: seconds of audio at the model's rate (0.0 when not decodable).
      starts: chunk offsets in samples.
      chunks: float32 [len(starts), crop_len].
      error: the reason the file is not embedded, or None.
    """

    path: str
    duration: float = 0.0
    starts: np.ndarray | None = None
    chunks: np.ndarray | None = None
    error: str | None = None


def decode_for_embedding(path: str, sample_rate: int, crop_len: int,
                         hop: int | None = None) -> Decoded:
    """Decode -> chunks for one file; never raises for bad audio (the error is returned)."""
    try:
        wave = load_waveform(path, sample_rate)
    except AudioInputError as e:
        return Decoded(path, error=str(e))
    except Exception as e:  # noqa: BLE001  One odd file must not stop a folder of thousands.
        return Decoded(path, error=f"unexpected error while decoding: {type(e).__name__}: {e}")
    duration = len(wave) / sample_rate
    starts = chunk_starts(len(wave), crop_len, hop)
    if len(starts) == 0:
        return Decoded(path, duration=duration, error=(
            f"too short: {len(wave)} samples at {sample_rate} Hz ({duration:.2f} s), need at "
            f"least one chunk of {crop_len} ({crop_len / sample_rate:.2f} s)"))
    return Decoded(path, duration=duration, starts=starts,
                   chunks=cut_chunks(wave, starts, crop_len))


def spawn_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """`workers` spawned decode processes that exit when this process dies.

    "spawn", not fork: the parent holds TensorFlow, which must not be forked. The initializer
    is the data tools' (`audio_io.init_worker`: Ctrl-C left to the parent, PR_SET_PDEATHSIG on
    Linux and a parent-pid watch elsewhere).
    """
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=audio_io.init_worker, initargs=(os.getpid(),))
