"""Helpers of the mssl-embed tests (importable from subprocess-free tests and the bench)."""

import os

import numpy as np

from tests.data_tools import fixtures
from tests.export.helpers import TINY, set_nontrivial_bn_statistics

TAGS = ["bass", "drums", "piano"]
# (relative path, seconds, rate, channels): every format, both channel counts, four rates.
GOOD = [("a/mono16k.wav", 0.61, 16000, 1), ("a/stereo44k.mp3", 0.72, 44100, 2),
        ("b/c/mono48k.flac", 0.55, 48000, 1), ("b/stereo22k.wav", 0.83, 22050, 2),
        ("stereo48k.flac", 0.40, 48000, 2), ("mono22k.mp3", 0.66, 22050, 1)]


def make_tiny_export(out: str):
    """A tiny encoder (2187-sample chunks, 8-d) with non-trivial BN and a 3-tag linear head."""
    import keras

    from mssl_tf.export import export_encoder
    from mssl_tf.models import build_probe_head, build_sample_cnn
    keras.utils.set_random_seed(11)
    encoder = build_sample_cnn(TINY["rep_dim"], TINY["crop_len"], widths=tuple(TINY["widths"]))
    set_nontrivial_bn_statistics(encoder)
    head = build_probe_head("linear", TINY["rep_dim"], len(TAGS))
    export_encoder(encoder, out, head=head, tag_names=TAGS, multi_label=True)
    return out, encoder, head


def make_audio_folder(root: str, good=GOOD):
    """Writes the GOOD files (tones plus noise, so chunks differ), a corrupt MP3 and a file
    shorter than one chunk; returns (root, good paths, {bad path: reason fragment})."""
    rng = np.random.default_rng(0)
    paths = []
    for i, (rel, seconds, rate, channels) in enumerate(good):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        audio = fixtures.tone(seconds, rate, 220.0 * (i + 1), channels)
        audio += rng.uniform(-0.2, 0.2, audio.shape).astype(np.float32)
        fixtures.sf.write(path, audio, rate, **_format(rel))
        paths.append(path)
    bad = {fixtures.write_corrupt_mp3(os.path.join(root, "broken.mp3")): "not decodable",
           _short(os.path.join(root, "a", "short.wav")): "too short"}
    os.makedirs(os.path.join(root, "notes"), exist_ok=True)
    with open(os.path.join(root, "notes", "readme.txt"), "w") as f:  # not audio: not listed
        f.write("not audio")
    return root, sorted(paths), bad


def _format(rel: str) -> dict:
    ext = os.path.splitext(rel)[1]
    return {".wav": {"format": "WAV", "subtype": "PCM_16"}, ".mp3": {"format": "MP3"},
            ".flac": {"format": "FLAC", "subtype": "PCM_16"}}[ext]


def _short(path: str) -> str:
    fixtures.sf.write(path, fixtures.tone(0.05, 22050, 440.0), 22050, subtype="PCM_16")
    return path
