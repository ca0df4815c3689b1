"""Audio decoding stage: one file in, mono int16 PCM at the target rate out (or a skip reason).

This module is the unit of work of the parallel conversion. It deliberately imports neither
TensorFlow nor mssl_tf: worker processes are started with the "spawn" method and import only this
module, so each stays at numpy + soundfile + soxr size (tens of MB) instead of TensorFlow's ~750 MB.
The record encoding (TensorFlow protos) happens in the writer process (tfrecord_lib). Only a
file given as a URL (gs://..., on Beam/Dataflow workers) makes `fileio` import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
import soundfile as sf
import soxr

from mssl_tf import fileio

# Extensions the folder dataset picks up (matched case-insensitively).
AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".au")
# A track whose int16 peak is at most this many LSB (about -84 dBFS) is flagged as silent.
SILENT_PEAK_LSB = 2


class AudioDecodeError(Exception):
    """A file could not be read as audio (corrupt, empty, not audio)."""


@dataclasses.dataclass(frozen=True)
class TrackSpec:
    """One track to convert: where it is and what it becomes.

    Attributes:
      path: local path of the audio file.
      track_id: the dataset's id of the track (stored in the record).
      split: "train", "valid" or "test".
      labels: the label vector (multi-hot / one-hot floats; empty when unlabelled).
      source: the path as the metadata lists it (relative to the audio root), for reports.
    """

    path: str
    track_id: str
    split: str
    labels: tuple[float, ...] = ()
    source: str = ""

    @property
    def name(self) -> str:
        """How reports name the track: its listed path, else its local path."""
        return self.source or self.path


@dataclasses.dataclass(frozen=True)
class DecodedTrack:
    """A converted track, ready to be serialized.

    Attributes:
      spec: the track it came from.
      pcm: mono int16 samples at the target sample rate.
      clipped: samples that were outside [-1, 1] before the int16 conversion.
      silent: True when the whole track is (near) digital silence.
      source_rate: sample rate of the file.
      source_channels: channel count of the file.
    """

    spec: TrackSpec
    pcm: np.ndarray
    clipped: int
    silent: bool
    source_rate: int
    source_channels: int


@dataclasses.dataclass(frozen=True)
class SkippedTrack:
    """A track that was not converted, and why."""

    spec: TrackSpec
    reason: str


TrackResult = DecodedTrack | SkippedTrack


def decode(path: str) -> tuple[np.ndarray, int]:
    """Reads an audio file as float32.

    soundfile (libsndfile, which decodes MP3 without ffmpeg) is tried first; librosa/audioread is
    the fallback for formats libsndfile does not read (it needs ffmpeg for most of them).

    Args:
      path: local path of the file, or a URL (gs://...) read through `fileio` (the Beam path).

    Returns:
      `(audio, sample_rate)` with audio of shape [frames, channels].

    Raises:
      AudioDecodeError: the file is empty, missing, or not decodable audio.
    """
    if fileio.is_remote(path):  # one read of the object, no separate existence/size requests
        try:
            data = fileio.read_bytes(path)
        except FileNotFoundError:
            raise AudioDecodeError("file not found") from None
        if not data:
            raise AudioDecodeError("empty file (0 bytes)")
        return _decode_bytes(data, os.path.splitext(path)[1])
    if not os.path.isfile(path):
        raise AudioDecodeError("file not found")
    if os.path.getsize(path) == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    try:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        return audio, int(rate)
    except (sf.LibsndfileError, RuntimeError, ValueError) as sf_error:
        return _decode_fallback(path, sf_error)


def _decode_bytes(data: bytes, suffix: str) -> tuple[np.ndarray, int]:
    """`decode` of a file held in memory.

    soundfile reads it in place; the librosa fallback needs a path (a temporary file).
    """
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return audio, int(rate)
    except (sf.LibsndfileError, RuntimeError, ValueError) as sf_error:
        with tempfile.NamedTemporaryFile(suffix=suffix) as f:
            f.write(data)
            f.flush()
            return _decode_fallback(f.name, sf_error)


def _decode_fallback(path: str, sf_error: Exception) -> tuple[np.ndarray, int]:
    # libsndfile's message for an unknown format is a misleading "File does not exist"; keep it
    # only as a detail behind our own reason.
    first_error = str(sf_error).split(":")[-1].strip().rstrip(".")
    if "does not exist" in first_error:
        first_error = "format not recognised"
    try:
        import librosa  # noqa: PLC0415  Slow import (numba); only paid when soundfile fails.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # librosa warns about the audioread path it takes
            audio, rate = librosa.load(path, sr=None, mono=False)
    except Exception as fallback_error:  # noqa: BLE001  audioread raises several unrelated types.
        raise AudioDecodeError(
            f"not decodable audio: corrupt, truncated or not an audio file (soundfile: "
            f"{first_error}; librosa fallback: {type(fallback_error).__name__})") from None
    audio = np.asarray(audio, dtype=np.float32)
    audio = audio[:, None] if audio.ndim == 1 else audio.T
    return np.ascontiguousarray(audio), int(rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Averages the channels of a [frames, channels] array into a 1-D float32 array.

    Column adds instead of `mean(axis=1)`: the strided reduction over a 2-wide axis costs more than
    the resampling that follows it on 44.1 kHz stereo.

    Args:
      audio: float32 of shape [frames, channels] (or already 1-D).

    Returns:
      float32 of shape [frames].
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    channels = audio.shape[1]
    if channels == 1:
        return np.ascontiguousarray(audio[:, 0])
    mono = audio[:, 0] + audio[:, 1]
    for c in range(2, channels):
        mono += audio[:, c]
    mono *= np.float32(1.0 / channels)
    return mono


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """High-quality resampling with libsoxr ("HQ": 20-bit precision, steep anti-alias filter).

    Args:
      audio: 1-D float32.
      source_rate: rate of `audio` in Hz.
      target_rate: wanted rate in Hz.

    Returns:
      1-D float32 at `target_rate` (the input itself when the rates are equal).
    """
    if source_rate == target_rate:
        return audio
    out = soxr.resample(audio, source_rate, target_rate, quality="HQ")
    return out.astype(np.float32, copy=False)


def to_int16(audio: np.ndarray) -> tuple[np.ndarray, int]:
    """Float audio in [-1, 1] to int16 PCM, counting the clipped samples.

    Same arithmetic as `mssl_tf.data.features.float_to_int16` (tested to be identical); repeated
    here because that module imports TensorFlow, which the decode workers must not load.

    Args:
      audio: float samples, nominally in [-1, 1].

    Returns:
      `(pcm, clipped)`: int16 samples and the number that fell outside the int16 range.
    """
    scaled = np.round(np.asarray(audio, dtype=np.float32) * np.float32(32767.0))
    clipped = int(np.count_nonzero((scaled > 32767) | (scaled < -32768)))
    return np.clip(scaled, -32768, 32767).astype(np.int16), clipped


def process_track(spec: TrackSpec, sample_rate: int, min_samples: int) -> TrackResult:
    """Decode -> mono -> resample -> int16 for one track; never raises for bad audio.

    Args:
      spec: the track.
      sample_rate: target rate in Hz.
      min_samples: tracks shorter than this at `sample_rate` are skipped (no crop fits).

    Returns:
      A DecodedTrack, or a SkippedTrack naming the reason.
    """
    try:
        return _process(spec, sample_rate, min_samples)
    except AudioDecodeError as error:
        return SkippedTrack(spec, str(error))
    except Exception as error:  # noqa: BLE001  One odd file must not stop a conversion of thousands.
        return SkippedTrack(spec, f"unexpected error while converting: "
                                  f"{type(error).__name__}: {error}")


def _process(spec: TrackSpec, sample_rate: int, min_samples: int) -> TrackResult:
    audio, rate = decode(spec.path)
    if audio.shape[0] == 0:
        return SkippedTrack(spec, "no audio frames in the file")
    channels = int(audio.shape[1])
    mono = resample(to_mono(audio), rate, sample_rate)
    if mono.shape[0] < min_samples:
        return SkippedTrack(
            spec, f"too short: {mono.shape[0]} samples at {sample_rate} Hz "
                  f"({mono.shape[0] / sample_rate:.2f} s), need at least {min_samples}")
    if not np.all(np.isfinite(mono)):
        return SkippedTrack(spec, "decoded audio contains NaN or Inf")
    pcm, clipped = to_int16(mono)
    peak = max(-int(pcm.min()), int(pcm.max()))
    return DecodedTrack(spec=spec, pcm=pcm, clipped=clipped, silent=peak <= SILENT_PEAK_LSB,
                        source_rate=rate, source_channels=channels)


def duration_seconds(path: str) -> float:
    """Duration from the file header (0.0 when the header cannot be read)."""
    try:
        info = sf.info(io.BytesIO(fileio.read_bytes(path)) if fileio.is_remote(path) else path)
        return float(info.frames) / float(info.samplerate) if info.samplerate else 0.0
    except Exception:  # noqa: BLE001  An unreadable file is reported later, by process_track.
        return 0.0


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask on Linux, else all cores)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def peak_rss_mb(_: object = None) -> float:
    """Peak resident memory of this process in MB (Linux VmHWM; 0.0 elsewhere).

    VmHWM rather than ru_maxrss: a spawned worker is forked from the large parent before exec,
    and Linux carries that fork-time size into ru_maxrss. The ignored argument lets a pool map it.
    """
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return 0.0


# How often a worker checks that the process that started it is still there.
PARENT_POLL_SECONDS = 0.5


def init_worker(parent_pid: int) -> None:
    """Initializer of a decode worker: ignore Ctrl-C, and exit when the parent is gone.

    Ctrl-C is handled by the writer process alone, which stops the workers and keeps the
    finished shards (instead of every worker printing a traceback). A parent killed outright
    (SIGKILL, or a signal it does not handle) runs no clean-up code; without a check of their
    own the workers would stay blocked on the result pipe for ever, and keep the resource
    tracker alive with them. So on Linux the kernel kills a worker whose parent dies
    (PR_SET_PDEATHSIG), and everywhere a daemon thread polls the parent pid as a fallback.

    Args:
      parent_pid: pid of the process that started the pool (`os.getpid()` there).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the above took effect
        os._exit(1)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True,
                     name="parent-watch").start()


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes  # noqa: PLC0415  Linux only.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl: the polling thread remains
        pass


def _exit_when_orphaned(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_POLL_SECONDS)
        if os.getppid() != parent_pid:
            os._exit(1)  # no clean-up: the parent that would read our results is gone
