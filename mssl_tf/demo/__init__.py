"""The quickstart demo: a procedurally generated labelled corpus and the end-to-end pipeline."""

from mssl_tf.demo.corpus import TAGS, synth_clip, write_corpus
from mssl_tf.demo.run import run_demo

__all__ = ["TAGS", "run_demo", "synth_clip", "write_corpus"]
