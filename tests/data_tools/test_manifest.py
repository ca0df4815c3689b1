"""manifest.json contents and `verify`: passes on a good output, names every kind of damage."""

import json
import os
import shutil

import pytest

from data_tools import manifest as manifest_lib
from data_tools import tfrecord_lib
from data_tools.datasets import gtzan
from mssl_tf import fileio
from mssl_tf.data import features
from tests.data_tools import fixtures


@pytest.fixture(scope="module")
def good_output(tmp_path_factory):
    root = tmp_path_factory.mktemp("manifest")
    tree = fixtures.make_gtzan_tree(str(root))
    listing = gtzan.list_tracks(tree.audio_dir)
    out = str(root / "out")
    tfrecord_lib.convert(listing, out, workers=1, tracks_per_shard=2, progress=False,
                         command="mssl-prepare gtzan --audio_dir genres --out_dir out")
    return tree, out


@pytest.fixture
def output(good_output, tmp_path):
    tree, out = good_output
    copy = str(tmp_path / "out")
    shutil.copytree(out, copy)
    return tree, copy


def test_manifest_contract(output):
    tree, out = output
    m = fileio.read_manifest(out)
    assert m["dataset"] == "gtzan" and m["schema_version"] == features.SCHEMA_VERSION
    assert m["sample_rate"] == 22050 and m["multi_label"] is False
    assert m["tag_names"] == list(fixtures.GTZAN_GENRES) and m["num_labels"] == 10
    per_split = {s: sum(v[0] == s for v in tree.expected.values()) for s in features.SPLITS}
    assert {s: e["num_tracks"] for s, e in m["splits"].items()} == per_split
    for split, entry in m["splits"].items():
        assert sum(s["num_records"] for s in entry["shards"]) == entry["num_tracks"]
        for shard in entry["shards"]:
            assert shard["sha256"] == fileio.sha256_file(os.path.join(out, shard["file"]))
            assert features.SHARD_RE.match(shard["file"]).group("split") == split
    skipped = {s["path"]: s["reason"] for s in m["skipped"]}
    for path in tree.expected_skipped:
        assert path in skipped
    assert skipped["jazz/jazz.00054.wav"].startswith("not decodable audio")
    assert skipped["blues/blues.00012.wav"].startswith("too short")
    assert [f["path"] for f in m["flagged"]] == tree.expected_flagged
    assert m["command"].startswith("mssl-prepare gtzan") and m["mssl_tf_version"]
    assert m["created"].endswith("+00:00") and m["label"] == "genre"


def test_verify_passes_on_a_good_output(output):
    assert manifest_lib.verify(output[1]) == []


def _first_shard(out):
    m = fileio.read_manifest(out)
    return os.path.join(out, m["splits"]["train"]["shards"][0]["file"])


def test_verify_detects_a_changed_shard(output):
    _, out = output
    path = _first_shard(out)
    data = bytearray(open(path, "rb").read())
    data[-100] ^= 0xFF  # flip bits inside a record's audio
    open(path, "wb").write(bytes(data))
    problems = manifest_lib.verify(out)
    assert any("sha256 differs" in p for p in problems)
    assert any("corrupt TFRecord" in p for p in problems)  # the record's CRC fails too


def test_verify_detects_missing_extra_and_temporary_files(output):
    _, out = output
    path = _first_shard(out)
    os.rename(path, os.path.join(out, "gtzan-train-00009-of-00010.tfrecord"))
    open(os.path.join(out, "gtzan-valid-00000-of-00001.tfrecord.incomplete"), "wb").close()
    problems = "\n".join(manifest_lib.verify(out))
    assert f"{path}: listed in the manifest but missing" in problems
    assert "gtzan-train-00009-of-00010.tfrecord: shard not listed" in problems
    assert "temporary file of an interrupted run" in problems


def test_verify_detects_count_and_label_mismatch(output):
    _, out = output
    path = os.path.join(out, features.MANIFEST_NAME)
    m = json.load(open(path))
    m["splits"]["train"]["shards"][0]["num_records"] += 1
    m["num_labels"] = 11
    json.dump(m, open(path, "w"))
    problems = "\n".join(manifest_lib.verify(out))
    assert "records, manifest says" in problems
    assert "10 labels, manifest says 11" in problems


def test_verify_rejects_other_schema_version(output):
    _, out = output
    path = os.path.join(out, features.MANIFEST_NAME)
    m = json.load(open(path))
    m["schema_version"] = 2
    json.dump(m, open(path, "w"))
    problems = manifest_lib.verify(out)
    assert len(problems) == 1 and "schema_version 2" in problems[0]
