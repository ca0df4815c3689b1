"""The conversion as an Apache Beam pipeline (DirectRunner locally, Dataflow for very large sets).

Same stages as the local path, so the output is the same, byte for byte: the shard plan, the
output-folder checks and the manifest are made here, in the launching process, by tfrecord_lib and
manifest; Beam runs `audio_io.process_track` per track and `tfrecord_lib.write_shard` per shard
(records in plan order), and each shard leaves the same completion record as a local run, so a
local rerun can resume a Beam run and vice versa.

Needs the optional `beam` extra (`pip install mssl_tf[beam]`). With DataflowRunner the audio paths
must be readable by the workers and `out_dir` should be a gs:// folder; Beam's own options
(--project, --region, --temp_location, ...) are passed through `pipeline_args`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from data_tools import audio_io, tfrecord_lib
from data_tools import manifest as manifest_lib
from data_tools.datasets.common import Listing
from mssl_tf import constants, fileio
from mssl_tf.data import features

log = logging.getLogger(__name__)


def _decode(item: tuple, sample_rate: int, min_samples: int) -> tuple:
    """(shard, position, spec) -> (shard, (position, result))."""
    shard, position, spec = item
    return shard, (position, audio_io.process_track(spec, sample_rate, min_samples))


def _write(keyed: tuple, out_dir: str, plans: dict) -> str:
    """Writes one shard from its decoded tracks (sorted into plan order) and its record."""
    name, results = keyed
    plan = plans[name]
    ordered = [r for _, r in sorted(results, key=lambda pr: pr[0])]
    record = {"file": name, "split": plan.split, "skipped": [], "flagged": [],
              "clipped_samples": 0}

    def records():
        for result in ordered:
            if isinstance(result, audio_io.SkippedTrack):
                record["skipped"].append({"path": result.spec.name, "reason": result.reason})
                continue
            if result.silent:
                record["flagged"].append({"path": result.spec.name, "reason": "silent"})
            record["clipped_samples"] += result.clipped
            yield tfrecord_lib.encode_record(result)

    record.update(tfrecord_lib.write_shard(os.path.join(out_dir, name), records()))
    fileio.write_json(os.path.join(out_dir, manifest_lib.PROGRESS_DIR, name + ".json"),
                            record)
    return name


def convert(listing: Listing, out_dir: str, *, runner: str = "DirectRunner",
            shard_bytes: int = constants.SHARD_BYTES, tracks_per_shard: int | None = None,
            command: str = "", overwrite: bool = False,
            pipeline_args: Sequence[str] = ()) -> dict:
    """Converts a listing into shards + manifest with a Beam pipeline.

    Args:
      listing: the dataset's tracks.
      out_dir: local or gs:// output folder.
      runner: Beam runner name (DirectRunner, DataflowRunner, ...).
      shard_bytes: target shard size in bytes of audio.
      tracks_per_shard: fixed track count per shard instead of `shard_bytes`.
      command: the command line, recorded in the manifest.
      overwrite: replace another conversion in `out_dir`.
      pipeline_args: further Beam pipeline options.

    Returns:
      The manifest that was written.
    """
    conversion = tfrecord_lib.plan_conversion(listing, out_dir, shard_bytes=shard_bytes,
                                              tracks_per_shard=tracks_per_shard,
                                              overwrite=overwrite)
    if conversion.existing is not None:
        return conversion.existing
    todo = {p.name: p for p in conversion.todo}
    items = [(p.name, i, spec) for p in todo.values() for i, spec in enumerate(p.tracks)]
    log.info("Beam (%s): %d tracks in %d shards to write, %d shards already finished", runner,
             len(items), len(todo), len(conversion.done))
    if items:
        options = PipelineOptions(list(pipeline_args), runner=runner)
        with beam.Pipeline(options=options) as p:
            _ = (p
                 | "Tracks" >> beam.Create(items, reshuffle=True)
                 | "Decode" >> beam.Map(_decode, features.SAMPLE_RATE, features.CROP_LEN)
                 | "ByShard" >> beam.GroupByKey()
                 | "WriteShard" >> beam.Map(_write, out_dir, todo))
    # The workers' completion records, checked like those of a resumed local run.
    conversion.done = manifest_lib.finished_shards(out_dir, conversion.progress_dir,
                                                   [p.name for p in conversion.plans])
    return tfrecord_lib.finish_conversion(conversion, command, runner=runner)
