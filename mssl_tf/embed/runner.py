"""Batched embedding of many audio files (the engine of `mssl-embed`); imports TensorFlow.

Decode workers (spawned processes, TF-free: `mssl_tf.embed.audio`) turn files into chunks; the
parent stacks chunks of consecutive tracks into fixed-size batches (tracks of any length share
batches), runs the encoder (and the probe head) once per batch (one traced graph, XLA on
request), and hands each
track its rows back. Finished tracks go to resumable parts every `save_every` tracks; the final
output is written atomically at the end.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TextIO

import keras
import numpy as np
import tensorflow as tf

from mssl_tf import fileio, rundir
from mssl_tf.embed import audio, results, sources
from mssl_tf.embed.results import TrackRecord
from mssl_tf.version import __version__

logger = logging.getLogger(__name__)

# Decode tasks in flight per worker: enough to keep the encoder fed, few enough that decoded
# tracks do not pile up in memory.
IN_FLIGHT_PER_WORKER = 3
# A partial part is also written when this many seconds passed since the last one.
SAVE_INTERVAL_S = 60.0


@dataclasses.dataclass
class EmbeddingModel:
    """An encoder (+ optional probe head) ready for batched inference.

    Attributes:
      encoder: (batch, crop_len) -> (batch, rep_dim).
      head: (batch, rep_dim) -> logits, or None.
      tag_names: the head's output names ([] without a head).
      multi_label: sigmoid (True) or softmax (False) probabilities.
      sample_rate: the model's audio rate.
      source: where the weights came from (recorded in the output's settings).
    """

    encoder: keras.Model
    head: keras.Model | None
    tag_names: list[str]
    multi_label: bool
    sample_rate: int
    source: dict

    _inference: dict = dataclasses.field(default_factory=dict, repr=False)

    def batch_inference(self, batch_size: int, xla: bool = False) -> BatchInference:
        """The (cached) batch function: a second `embed_files` call reuses its compiled graph."""
        key = (batch_size, xla)
        if key not in self._inference:
            self._inference[key] = BatchInference(self, batch_size, xla=xla)
        return self._inference[key]

    @property
    def crop_len(self) -> int:
        return int(self.encoder.input_shape[-1])

    @property
    def rep_dim(self) -> int:
        return int(self.encoder.output_shape[-1])


def _load_keras(path: str) -> keras.Model:
    with fileio.local_copy(path) as local:
        return keras.models.load_model(local, compile=False)


def load_model(source: str, checkpoint: str = "latest", probe: str | None = None
               ) -> EmbeddingModel:
    """An `mssl-export` folder, or a run directory (+ checkpoint, + optional probe folder).

    Raises:
      FileNotFoundError: `source` is neither (names it and what to pass).
      ValueError: a probe of another encoder (see `check_probe_matches`), or a probe or a
        checkpoint other than "latest" given with an export (both were fixed at export time).
    """
    from mssl_tf.export import saved_model  # noqa: PLC0415

    info_path = fileio.join(source, saved_model.INFO_FILE)
    if fileio.exists(info_path):
        if probe is not None:
            raise ValueError(f"{source!r} is an export: its probe head (if any) was chosen at "
                             "export time; --probe is for run directories.")
        if str(checkpoint) != "latest":
            raise ValueError(f"{source!r} is an export: its encoder was chosen at export time; "
                             "--checkpoint is for run directories.")
        info = fileio.read_json(info_path)
        encoder = _load_keras(fileio.join(source, saved_model.ENCODER_FILE))
        tag_names = [str(t) for t in info.get("tag_names") or []]
        head = _load_keras(fileio.join(source, saved_model.HEAD_FILE)) if tag_names else None
        return EmbeddingModel(encoder, head, tag_names, bool(info.get("multi_label", True)),
                              int(info["sample_rate"]),
                              {"export": source, "created": info.get("created"),
                               "weights": info.get("source")})
    if rundir.is_run(source):
        encoder, ckpt = rundir.load_encoder(source, checkpoint)
        head, tag_names, multi_label = None, [], True
        if probe is not None:
            head, res = saved_model.load_probe(probe, int(encoder.output_shape[-1]))
            saved_model.check_probe_matches(probe, res, source, ckpt)
            tag_names = [str(t) for t in res["tag_names"]]
            multi_label = bool(res.get("multi_label", True))
        return EmbeddingModel(encoder, head, tag_names, multi_label, audio_rate(),
                              {"model_dir": source, "checkpoint": ckpt["path"],
                               "epoch": ckpt["epoch"], "probe": probe})
    raise FileNotFoundError(f"{source!r} is neither an `mssl-export` folder (no export.json) nor "
                            "an `mssl-pretrain` run directory (no run.json); pass one of them.")


def audio_rate() -> int:
    """The sample rate every run is trained at."""
    from mssl_tf import constants  # noqa: PLC0415
    return constants.SAMPLE_RATE


class BatchInference:
    """Fixed-size batches through the encoder (and head): one traced/compiled graph."""

    def __init__(self, model: EmbeddingModel, batch_size: int, xla: bool = False):
        self.model = model
        self.batch_size = batch_size
        model.encoder.trainable = False
        encoder, head = model.encoder, model.head
        activation = tf.sigmoid if model.multi_label else tf.nn.softmax

        def run(x):
            emb = tf.cast(encoder(x, training=False), tf.float32)
            if head is None:
                return emb, tf.zeros([tf.shape(x)[0], 0], tf.float32)
            return emb, activation(tf.cast(head(emb, training=False), tf.float32))

        self._fn = tf.function(run, jit_compile=xla)

    def __call__(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(chunks)
        if n < self.batch_size:  # pad: one shape, one compiled graph
            pad = np.zeros((self.batch_size - n, chunks.shape[1]), np.float32)
            chunks = np.concatenate([chunks, pad])
        emb, probs = self._fn(tf.convert_to_tensor(chunks))
        return emb.numpy()[:n], probs.numpy()[:n]


class _OpenTrack:
    def __init__(self, decoded: audio.Decoded, dim: int, num_tags: int):
        self.decoded = decoded
        n = len(decoded.starts)
        self.emb = np.zeros((n, dim), np.float32)
        self.probs = np.zeros((n, num_tags), np.float32)
        self.left = n


class ChunkBatcher:
    """Queues the chunks of decoded tracks and embeds them in full batches, in order."""

    def __init__(self, infer: BatchInference, keep_chunks: bool, sample_rate: int):
        self.infer = infer
        self.keep_chunks = keep_chunks
        self.sample_rate = sample_rate
        self.queue: collections.deque = collections.deque()  # (track, chunk index)
        self.open: collections.deque = collections.deque()

    def add(self, decoded: audio.Decoded) -> list[TrackRecord]:
        m = self.infer.model
        track = _OpenTrack(decoded, m.rep_dim, len(m.tag_names))
        self.open.append(track)
        self.queue.extend((track, i) for i in range(len(decoded.starts)))
        done = []
        while len(self.queue) >= self.infer.batch_size:
            done += self._step()
        return done

    def finish(self) -> list[TrackRecord]:
        done = []
        while self.queue:
            done += self._step()
        return done

    def _step(self) -> list[TrackRecord]:
        items = [self.queue.popleft() for _ in range(min(self.infer.batch_size, len(self.queue)))]
        emb, probs = self.infer(np.stack([t.decoded.chunks[i] for t, i in items]))
        for row, (track, i) in enumerate(items):
            track.emb[i] = emb[row]
            track.probs[i] = probs[row]
            track.left -= 1
        done = []
        while self.open and self.open[0].left == 0:
            done.append(self._record(self.open.popleft()))
        return done

    def _record(self, track: _OpenTrack) -> TrackRecord:
        d = track.decoded
        tags = bool(self.infer.model.tag_names)
        rec = TrackRecord(d.path, d.duration, track.emb.mean(axis=0), n_chunks=len(d.starts),
                          tag_probabilities=track.probs.mean(axis=0) if tags else None)
        if self.keep_chunks:
            rec.chunk_start = d.starts / self.sample_rate
            rec.chunk_embedding = track.emb
            rec.chunk_tag_probabilities = track.probs if tags else None
        return rec


def decode_all(paths: Sequence[str], workers: int, sample_rate: int, crop_len: int,
               hop: int | None) -> Iterator[audio.Decoded]:
    """Decoded files, in completion order, from `workers` processes (0: in this process).

    A worker that dies (a decoder crashing on a corrupt file, the OOM killer) breaks the pool;
    the files then in flight are retried in a fresh pool, and a file in flight at two such
    deaths is reported as failed.
    """
    args = (sample_rate, crop_len, hop)
    if workers <= 0:
        for p in paths:
            yield audio.decode_for_embedding(p, *args)
        return
    todo = collections.deque(paths)
    crashes: collections.Counter = collections.Counter()
    pool = audio.spawn_pool(workers)
    pending: dict[concurrent.futures.Future, str] = {}
    results_of_pool = 0  # results the current pool delivered (0 at two deaths: it cannot start)
    dead_at_start = 0
    try:
        while todo or pending:
            while todo and len(pending) < IN_FLIGHT_PER_WORKER * workers:
                path = todo.popleft()
                pending[pool.submit(audio.decode_for_embedding, path, *args)] = path
            finished, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            broken = []
            for future in finished:
                path = pending.pop(future)
                try:
                    decoded = future.result()
                except BrokenProcessPool:
                    broken.append(path)
                    continue
                results_of_pool += 1
                yield decoded
            if broken:
                dead_at_start = dead_at_start + 1 if results_of_pool == 0 else 0
                results_of_pool = 0
                if dead_at_start >= 2:
                    raise RuntimeError(
                        "The decode worker processes die as they start, before decoding any "
                        "file. Run with --workers 0 to see why; when calling mssl_tf from a "
                        "script, put the call under `if __name__ == \"__main__\":` (workers are "
                        "spawned and re-import the main module).")
                suspects = broken + list(pending.values())
                pending.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = audio.spawn_pool(workers)
                for path in suspects:
                    crashes[path] += 1
                    if crashes[path] >= 2:
                        yield audio.Decoded(path, error=(
                            "the decoding process died on this file (a crash in the audio "
                            "decoder or out of memory)"))
                    else:
                        todo.appendleft(path)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class Progress:
    """Tracks/s and ETA: a tqdm bar on a terminal, a plain line every `interval` s otherwise."""

    def __init__(self, total: int, already: int, stream: TextIO | None = None,
                 interval: float = 10.0, enabled: bool = True):
        self.total, self.already = total, already
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.interval = interval
        self.start = self.last = time.monotonic()
        self.done = self.failed = 0
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm.auto import tqdm  # noqa: PLC0415
            self.bar = tqdm(total=total, initial=already, unit="track", desc="mssl-embed",
                            file=self.stream)

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(failed=self.failed, refresh=False)
            return
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.already - self.done
        eta = time.strftime("%H:%M:%S", time.gmtime(left / rate)) if rate > 0 else "?"
        return (f"mssl-embed: {self.already + self.done}/{self.total} tracks "
                f"({self.failed} failed), {rate:.2f} tracks/s, ETA {eta}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(self.line(), file=self.stream, flush=True)


def embed_files(inputs: Sequence[str], output: str, model: EmbeddingModel, *,
                hop: int | None = None, chunks: bool = False, workers: int = 2,
                batch_size: int = 32, save_every: int = 64, xla: bool = False,
                overwrite: bool = False, stream: TextIO | None = None,
                progress: bool = True) -> dict:
    """Embeds every audio file named by `inputs` into one output file (see `results`).

    Args:
      inputs: folders, list files, globs or files (`sources.list_audio`).
      output: .npz (default layout) or .parquet path, local or gs://.
      model: the encoder (+ head).
      hop: None for the test protocol's chunks, else overlapping windows every `hop` samples.
      chunks: also store per-chunk embeddings, start times (and probabilities).
      workers: decode processes (0: decode in this process).
      batch_size: chunks per encoder call.
      save_every: finished tracks per resumable part.
      xla: compile the batch function with XLA.
      overwrite: replace an existing output made with other settings (or a Parquet one).
      stream: where progress lines go (default stdout).
      progress: False shows no progress (`--no_progress`).

    Returns:
      {"output", "embedded", "failed" [(path, reason)], "resumed", "seconds",
       "tracks_per_s"}.

    Raises:
      FileNotFoundError / ValueError: bad inputs, an existing output, parts of other settings.
    """
    if batch_size <= 0 or save_every <= 0:
        raise ValueError("--batch_size and --save_every must be positive")
    results.output_format(output)  # an unknown ending fails now, not after the last track
    paths = sources.list_audio(inputs)
    settings = {"model": model.source, "sample_rate": model.sample_rate,
                "crop_len": model.crop_len, "rep_dim": model.rep_dim, "hop": hop,
                "chunks": bool(chunks), "tag_names": model.tag_names,
                "multi_label": model.multi_label, "mssl_tf_version": __version__}
    store = results.PartialStore(output, settings, model.tag_names)
    if overwrite:
        store.remove()
        done: dict[str, TrackRecord] = {}
    else:
        done = results.reuse_output(output, settings)
        if fileio.exists(output) and not done and not fileio.isdir(store.folder):
            raise ValueError(f"{output!r} exists and was not made with these settings (or is "
                             "not an npz); pass --overwrite to replace it, or choose another "
                             "--output.")
        done.update(store.load())
    todo = [p for p in paths if p not in done]
    if done:
        logger.info("Resuming: %d of %d files already done (%s)", len(paths) - len(todo),
                    len(paths), store.folder if fileio.isdir(store.folder) else output)
    infer = model.batch_inference(batch_size, xla)
    batcher = ChunkBatcher(infer, chunks, model.sample_rate)
    progress_bar = Progress(len(paths), len(paths) - len(todo), stream, enabled=progress)
    start = time.monotonic()
    buffer: list[TrackRecord] = []
    last_save = time.monotonic()

    def book(recs: list[TrackRecord]) -> None:
        nonlocal last_save
        for rec in recs:
            done[rec.path] = rec
            buffer.append(rec)
            progress_bar.update(rec.error is not None)
        if len(buffer) >= save_every or (buffer and time.monotonic() - last_save
                                         > SAVE_INTERVAL_S):
            store.write(buffer)
            buffer.clear()
            last_save = time.monotonic()

    try:
        for decoded in decode_all(todo, workers, model.sample_rate, model.crop_len, hop):
            if decoded.error is not None:
                logger.warning("skipped %s: %s", decoded.path, decoded.error)
                book([TrackRecord(decoded.path, decoded.duration, error=decoded.error)])
            else:
                book(batcher.add(decoded))
        book(batcher.finish())
    finally:  # Ctrl-C / SIGTERM / an error: keep what is finished for the rerun
        store.write(buffer)
        progress_bar.close()
    seconds = time.monotonic() - start
    ordered = [done[p] for p in paths]
    results.write_output(output, ordered, settings, model.tag_names)
    store.remove()
    failed = [(r.path, r.error) for r in ordered if r.error is not None]
    return {"output": output, "embedded": len(ordered) - len(failed), "failed": failed,
            "resumed": len(paths) - len(todo), "seconds": seconds,
            "tracks_per_s": len(todo) / seconds if seconds > 0 else 0.0}
