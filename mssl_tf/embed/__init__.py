"""`mssl-embed`: embeddings (and tag probabilities) of a folder of your own audio files.

TF-free parts: `sources` (which files), `audio` (decode, chunk, decode workers), `results`
(records, resumable partial files, npz/Parquet output). `runner` holds the batched inference
and imports TensorFlow. Nothing is imported here, so spawned decode workers stay small.
"""
