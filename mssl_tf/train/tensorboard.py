"""RUN/logs/train/: one TensorBoard event stream per run, against the global optimizer step.

One writer lives for the whole run (Keras' TensorBoard callback opens one per `fit()` call and
wrote empty files here). On a resume the event files are first compacted to the steps at or
before the restored state, so the step axis continues without a step written twice.
"""

from __future__ import annotations

import logging
import math

import tensorflow as tf

from mssl_tf import fileio, rundir

logger = logging.getLogger(__name__)

TRAIN_SUBDIR = "train"


def event_files(logdir: str) -> list[str]:
    """The event files of a folder, oldest first (TensorBoard's reading order)."""
    return sorted(fileio.glob(fileio.join(logdir, "events.out.tfevents.*")))


def _events(path: str):
    for record in tf.data.TFRecordDataset(path):
        yield tf.compat.v1.Event.FromString(record.numpy())


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of every scalar in a folder's event files, in file order."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in event_files(logdir):
        for event in _events(path):
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = float(tf.make_ndarray(value.tensor))
                else:
                    number = float(value.simple_value)
                scalars.setdefault(value.tag, []).append((int(event.step), number))
    return scalars


def compact(logdir: str, max_step: int) -> int:
    """Keeps only events of steps <= max_step, in one file; returns the events dropped."""
    files = event_files(logdir)
    if not files:
        return 0
    kept, dropped = [], 0
    for path in files:
        for event in _events(path):
            if event.HasField("summary") and event.step > max_step:
                dropped += 1
            else:
                kept.append(event.SerializeToString())
    if not dropped and len(files) == 1:
        return 0
    # The first file's name keeps the oldest timestamp, so the writer's new file sorts after it.
    with fileio.atomic_output(files[0]) as local:
        with tf.io.TFRecordWriter(local) as writer:
            for record in kept:
                writer.write(record)
    for path in files[1:]:
        fileio.remove(path)
    if dropped:
        logger.info("TensorBoard: dropped %d events after step %d (resume)", dropped, max_step)
    return dropped


class ScalarWriter:
    """Writes scalars to RUN/logs/train for the life of a run."""

    def __init__(self, model_dir: str, resume_step: int | None = None):
        self.logdir = rundir.path(model_dir, rundir.LOGS_DIR, TRAIN_SUBDIR)
        fileio.makedirs(self.logdir)
        if resume_step is not None:
            compact(self.logdir, resume_step)
        self._writer = tf.summary.create_file_writer(self.logdir)

    def write(self, step: int, values: dict[str, float], prefix: str = "") -> None:
        """One scalar per finite numeric value, tagged `prefix + name`."""
        with self._writer.as_default(step=int(step)):
            for name, value in values.items():
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(number):
                    tf.summary.scalar(prefix + name, number)

    def flush(self) -> None:
        """Makes what was written visible to TensorBoard."""
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file."""
        self._writer.close()
