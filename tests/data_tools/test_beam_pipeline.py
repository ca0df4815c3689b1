"""The Beam pipeline (DirectRunner) gives the same shards as the local conversion.

Skipped where the optional `beam` extra is not installed; `.ci/run` runs this file in an
environment of its own with MSSL_REQUIRE_BEAM=1, where a missing apache_beam is a failure.
"""

import os

import pytest

if os.environ.get("MSSL_REQUIRE_BEAM"):
    import apache_beam  # noqa: F401
else:
    pytest.importorskip("apache_beam", reason="the optional `beam` extra is not installed")

from data_tools import (
    beam_pipeline,  # noqa: E402
    tfrecord_lib,  # noqa: E402
)
from data_tools import manifest as manifest_lib  # noqa: E402
from data_tools.audio_io import TrackSpec  # noqa: E402
from data_tools.datasets import gtzan  # noqa: E402
from data_tools.datasets.common import Listing  # noqa: E402
from mssl_tf import fileio
from tests.data_tools import fixtures  # noqa: E402


@pytest.mark.slow
def test_direct_runner_matches_local_conversion_and_resumes(tmp_path):
    tree = fixtures.make_gtzan_tree(str(tmp_path))
    listing = gtzan.list_tracks(tree.audio_dir)
    local = str(tmp_path / "local")
    beam_out = str(tmp_path / "beam")
    m_local = tfrecord_lib.convert(listing, local, workers=1, tracks_per_shard=2, progress=False)
    m_beam = beam_pipeline.convert(listing, beam_out, runner="DirectRunner", tracks_per_shard=2,
                                   pipeline_args=["--direct_num_workers=1"])
    local_shards = fixtures.shard_bytes(local)
    assert fixtures.shard_bytes(beam_out) == local_shards and len(local_shards) == 4
    for key in ("splits", "skipped", "flagged", "clipped_samples", "tag_names",
                "plan_fingerprint"):
        assert m_beam[key] == m_local[key]
    assert m_beam["runner"] == "DirectRunner"
    assert manifest_lib.verify(beam_out) == []

    # A local run interrupted after one shard is finished by Beam, with the same result.
    resumed = str(tmp_path / "resumed")

    def crash(name):
        raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        tfrecord_lib.convert(listing, resumed, workers=1, tracks_per_shard=2, progress=False,
                             on_shard_done=crash)
    beam_pipeline.convert(listing, resumed, tracks_per_shard=2,
                          pipeline_args=["--direct_num_workers=1"])
    assert fixtures.shard_bytes(resumed) == fixtures.shard_bytes(local)
    assert manifest_lib.verify(resumed) == []


def test_cli_runner_flag_and_beam_options(tmp_path):
    from data_tools import prepare
    tree = fixtures.make_folder_tree(str(tmp_path))
    out = str(tmp_path / "out")
    assert prepare.main(["folder", "--audio_dir", tree.audio_dir, "--out", out,
                         "--runner", "DirectRunner", "--direct_num_workers=1"]) == 0
    m = fileio.read_manifest(out)
    assert m["runner"] == "DirectRunner" and m["splits"]["train"]["num_tracks"] == 5
    with pytest.raises(SystemExit):
        prepare.main(["folder", "--audio_dir", tree.audio_dir, "--out_dir", out,
                      "--direct_num_workers=1"])


@pytest.mark.slow
def test_direct_runner_reads_audio_from_a_bucket_and_writes_to_one(tmp_path):
    # What a Dataflow conversion does: audio and output both on a bucket (ram:// stands in for
    # gs://; with one in-process DirectRunner worker it sees the same in-memory filesystem).
    tree = fixtures.make_gtzan_tree(str(tmp_path))
    remote = gtzan.list_tracks(fixtures.upload_tree(tree.audio_dir))
    local = str(tmp_path / "local")
    tfrecord_lib.convert(gtzan.list_tracks(tree.audio_dir), local, workers=1,
                         tracks_per_shard=2, progress=False)
    out = f"{remote.tracks[0].path.split('/genres/')[0]}/tfrecords"
    beam_pipeline.convert(remote, out, runner="DirectRunner", tracks_per_shard=2,
                          pipeline_args=["--direct_num_workers=1"])
    import tensorflow as tf
    for name, data in fixtures.shard_bytes(local).items():
        with tf.io.gfile.GFile(f"{out}/{name}", "rb") as f:
            assert f.read() == data
    assert manifest_lib.verify(out) == []


def test_every_track_skipped_is_an_error_without_shards(tmp_path):
    # The shared finishing step refuses a Beam conversion that converted nothing, as a local one.
    bad = [fixtures.write_text(str(tmp_path / f"bad{i}.wav")) for i in range(2)]
    specs = [TrackSpec(path=p, track_id=f"b{i}", split="train", source=f"bad{i}.wav")
             for i, p in enumerate(bad)]
    listing = Listing(dataset="bad", tracks=specs, tag_names=[], multi_label=False,
                      est_seconds=[3.0, 3.0])
    out = tmp_path / "out"
    with pytest.raises(tfrecord_lib.NothingConvertedError, match=r"every track was skipped"
                                                                 r"(.|\n)*bad0.wav: not decod"):
        beam_pipeline.convert(listing, str(out), tracks_per_shard=1,
                              pipeline_args=["--direct_num_workers=1"])
    assert os.listdir(out) == []
