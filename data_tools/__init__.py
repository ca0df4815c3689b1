"""data_tools: FMA, GTZAN, MagnaTagATune or any audio folder -> sharded TFRecords + manifest.json.

Command line: `mssl-prepare {fma,gtzan,mtat,folder,verify} ...` (data_tools.prepare).
Library, one stage per module:
  datasets/    readers that list tracks with split and labels (no decoding)
  audio_io     decode -> mono -> 22,050 Hz (soxr HQ) -> int16, per track (TensorFlow-free worker)
  tfrecord_lib order, plan shards, parallel decode, atomic shard writes, resume
  manifest     manifest.json, output-folder checks, `verify`
  beam_pipeline the same stages as an Apache Beam pipeline (optional `beam` extra)
The record format is mssl_tf.data.features, shared with the input pipeline.
"""
