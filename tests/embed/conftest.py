"""Fixtures of the mssl-embed tests: a tiny export with a probe head and a folder of real audio
files (WAV, MP3, FLAC; mono and stereo; 16, 22.05, 44.1 and 48 kHz; one corrupt, one too short)."""

import os
import sys

import pytest

_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if _ROOT not in sys.path:  # makes `from tests.export import helpers` work
    sys.path.insert(0, _ROOT)

from tests.embed.helpers import make_audio_folder, make_tiny_export  # noqa: E402


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """(export_dir, encoder, head): a tiny SampleCNN + linear head exported with 3 tags."""
    return make_tiny_export(str(tmp_path_factory.mktemp("embed_export")))


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory):
    """(folder, good paths, {bad path: reason fragment})."""
    return make_audio_folder(str(tmp_path_factory.mktemp("embed_audio")))
