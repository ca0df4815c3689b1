"""Input pipeline: two-view crops, single crops, test chunks, and bad input."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mssl_tf import fileio
from mssl_tf.data import crops, features, pipeline
from mssl_tf.data.synthetic import write_synthetic_dataset

CROP = 2187  # 3**7, short for tests


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("shards"))
    write_synthetic_dataset(out, num_tracks={"train": 12, "valid": 4, "test": 4}, seconds=0.5,
                            sample_rate=8000)
    return out


def test_two_view_batches_are_independent_crops_of_one_track(shards):
    ds = pipeline.two_view_dataset(shards, 4, crop_len=CROP, seed=3, shuffle_buffer=4)
    batch = next(iter(ds))
    a, b = batch["view_a"].numpy(), batch["view_b"].numpy()
    assert a.shape == b.shape == (4, CROP) and a.dtype == np.float32
    # Each view is a contiguous slice of one of the tracks, and the two slices of a pair come
    # from the same track at (almost always) different offsets.
    tracks = [t["audio"].numpy() for t in pipeline.track_dataset(shards, "train")]
    offsets = 0
    for va, vb in zip(a, b):
        hits = [(i, _find(tr, va), _find(tr, vb)) for i, tr in enumerate(tracks)]
        hits = [h for h in hits if h[1] is not None and h[2] is not None]
        assert hits, "a view pair does not come from one track"
        offsets += hits[0][1] != hits[0][2]
    assert offsets >= 3


def _find(track, crop):
    for s in range(len(track) - len(crop) + 1):
        if track[s] == crop[0] and np.array_equal(track[s:s + len(crop)], crop):
            return s
    return None


def test_seeded_pipeline_is_deterministic(shards):
    def first(seed):
        ds = pipeline.two_view_dataset(shards, 4, crop_len=CROP, seed=seed, shuffle_buffer=4)
        return next(iter(ds))["view_a"].numpy()
    np.testing.assert_array_equal(first(7), first(7))
    assert not np.array_equal(first(7), first(8))


def test_crop_start_covers_whole_range():
    audio = tf.range(10, dtype=tf.float32)
    starts = {int(crops.random_crop(audio, 4, tf.constant([i, 0], tf.int64))[0])
              for i in range(200)}
    assert starts == set(range(7))  # 0 .. len - crop inclusive


def test_crop_of_pcm_bytes_equals_crop_of_decoded_track():
    # The pre-training reader cuts crops out of the record's bytes before decoding them.
    audio = np.random.default_rng(0).integers(-32768, 32767, 5000, dtype=np.int16)
    pcm = tf.constant(audio.astype("<i2").tobytes())
    for i in range(20):
        seed = tf.constant([i, 5], tf.int64)
        from_bytes = crops.random_crop_pcm_bytes(pcm, 300, seed)
        assert from_bytes.dtype == tf.int16 and from_bytes.shape == (300,)
        np.testing.assert_array_equal(from_bytes, crops.random_crop(tf.constant(audio), 300, seed))
    pair_bytes = crops.two_view_crops(pcm, 300, tf.constant([1, 2], tf.int64))
    pair_array = crops.two_view_crops(tf.constant(audio), 300, tf.constant([1, 2], tf.int64))
    for x, y in zip(pair_bytes, pair_array):
        np.testing.assert_array_equal(x, y)
    # The last possible start is drawn too: both ends of the track are reachable.
    short = tf.constant(np.arange(10, dtype="<i2").tobytes())
    starts = {int(crops.random_crop_pcm_bytes(short, 4, tf.constant([i, 0], tf.int64))[0])
              for i in range(200)}
    assert starts == set(range(7))


def test_cached_stream_equals_uncached_stream(shards):
    def first_batches(cache):
        ds = pipeline.two_view_dataset(shards, 4, crop_len=CROP, seed=11, shuffle_buffer=4,
                                       cache=cache)
        return [b["view_b"].numpy() for b in ds.take(3)]  # the first epoch of 12 tracks
    for x, y in zip(first_batches(False), first_batches(True)):
        np.testing.assert_array_equal(x, y)


def test_two_view_reader_skips_tracks_shorter_than_a_crop(tmp_path):
    write_synthetic_dataset(str(tmp_path), num_tracks={"train": 6}, seconds=0.5,
                            sample_rate=8000)  # 4,000 samples per track
    ds = pipeline.two_view_dataset(str(tmp_path), 2, crop_len=3 ** 7, seed=0, repeat=False)
    assert sum(1 for _ in ds) == 3
    ds = pipeline.two_view_dataset(str(tmp_path), 2, crop_len=3 ** 8, seed=0, repeat=False)
    assert sum(1 for _ in ds) == 0  # 6,561 > 4,000: nothing can be cropped


@pytest.mark.parametrize("length,expected", [(641_655, 10), (59_049, 0), (59_050, 1),
                                             (118_098, 1), (118_099, 2), (100, 0)])
def test_num_chunks_drops_last(length, expected):
    assert crops.num_chunks(length, 59_049) == expected
    assert int(crops.num_chunks(tf.constant(length), 59_049)) == expected


def test_chunk_dataset_keeps_order_and_values(shards):
    tracks = list(pipeline.track_dataset(shards, "test"))
    chunked = list(pipeline.chunk_dataset(shards, "test", crop_len=CROP))
    assert len(chunked) == len(tracks)
    for t, c in zip(tracks, chunked):
        n = crops.num_chunks(int(t["num_samples"]), CROP)
        assert int(c["num_chunks"]) == n
        np.testing.assert_array_equal(c["chunks"].numpy().reshape(-1),
                                      t["audio"].numpy()[:n * CROP])
        assert c["track_id"].numpy() == t["track_id"].numpy()


def test_single_crop_dataset_one_per_track(shards):
    batches = list(pipeline.single_crop_dataset(shards, "valid", 3, crop_len=CROP, seed=0))
    ids = np.concatenate([b["track_id"].numpy() for b in batches])
    assert len(ids) == 4 and len(set(ids)) == 4
    assert batches[0]["labels"].shape[1] == 4


def test_steps_per_epoch(shards):
    assert pipeline.steps_per_epoch(shards, 5) == 2
    with pytest.raises(ValueError, match="fewer than one batch"):
        pipeline.steps_per_epoch(shards, 64)


def test_no_shards_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="No 'train' shards.*mssl-prepare"):
        pipeline.two_view_dataset(str(tmp_path), 4)


def test_no_shards_names_the_absolute_folder_and_both_settings(tmp_path, monkeypatch):
    """datasets/*.gin point at data/<name> under the working directory; the message says which
    folder that was, and names the gin binding as well as the flag (mssl-pretrain has no
    --data_dir flag)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        pipeline.list_shards("data/gtzan", "train")
    text = str(info.value)
    assert "'data/gtzan'" in text and os.path.join(str(tmp_path), "data", "gtzan") in text
    assert "--data_dir" in text and "pretrain.data_dir" in text and "mssl-prepare" in text


def test_empty_dataset_is_explained(tmp_path):
    write_synthetic_dataset(str(tmp_path), num_tracks={"train": 0}, seconds=0.5)
    with pytest.raises(ValueError, match="holds no tracks"):
        pipeline.two_view_dataset(str(tmp_path), 4)


def test_other_schema_version_is_refused(tmp_path):
    import json
    write_synthetic_dataset(str(tmp_path), num_tracks={"train": 4}, seconds=0.5)
    path = tmp_path / "manifest.json"
    m = json.loads(path.read_text())
    m["schema_version"] = 99
    path.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="schema_version 99.*mssl-prepare"):
        fileio.read_manifest(str(tmp_path))


def test_schema_round_trip():
    audio = np.array([0, 1, -1, 32767, -32768], np.int16)
    rec = features.serialize_example(audio, track_id="x", split="valid", labels=[1, 0])
    back = features.parse_example_numpy(rec)
    np.testing.assert_array_equal(back["audio"], audio)
    assert back["split"] == "valid" and back["labels"].tolist() == [1.0, 0.0]
    parsed = features.parse_example(tf.constant(rec))
    np.testing.assert_allclose(parsed["audio"].numpy(), audio / 32768.0)


# Per-host input (multi-worker, TPU pods) and several splits.

@pytest.fixture(scope="module")
def many_shards(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("many_shards"))
    write_synthetic_dataset(out, num_tracks={"train": 14, "valid": 4, "test": 4}, seconds=0.5,
                            sample_rate=8000, shards_per_split=7)
    return out


def _context(pipeline_id, pipelines=4, replicas=8):
    return tf.distribute.InputContext(num_input_pipelines=pipelines,
                                      input_pipeline_id=pipeline_id,
                                      num_replicas_in_sync=replicas)


def test_pipelines_read_disjoint_complete_balanced_parts(many_shards):
    files = pipeline.list_shards(many_shards, "train")
    parts = [pipeline.pipeline_files(files, _context(i)) for i in range(4)]
    flat = [f for p in parts for f in p]
    assert sorted(flat) == files and len(set(flat)) == len(flat)  # complete, disjoint
    assert sorted(len(p) for p in parts) == [1, 2, 2, 2]  # 7 files: balanced within one file
    # The tracks each pipeline reads: disjoint, and together every track once.
    ids = [[t["track_id"].numpy() for t in pipeline.track_dataset(many_shards, "train",
                                                                 input_context=_context(i))]
           for i in range(4)]
    every = [i for part in ids for i in part]
    assert len(every) == len(set(every)) == 14
    assert set(every) == {t["track_id"].numpy()
                          for t in pipeline.track_dataset(many_shards, "train")}


def test_pipeline_batches_its_per_replica_share(many_shards):
    # 2 pipelines feeding 4 replicas, global batch 8: each pipeline batches 8 / 4 = 2.
    ds = pipeline.two_view_dataset(many_shards, 8, crop_len=CROP, seed=1, shuffle_buffer=4,
                                   input_context=_context(1, pipelines=2, replicas=4))
    batch = next(iter(ds))
    assert batch["view_a"].shape == batch["view_b"].shape == (2, CROP)
    # The two pipelines' streams differ although they were given one seed.
    other = pipeline.two_view_dataset(many_shards, 8, crop_len=CROP, seed=1, shuffle_buffer=4,
                                      input_context=_context(0, pipelines=2, replicas=4))
    assert not np.array_equal(next(iter(other))["view_a"].numpy(), batch["view_a"].numpy())


def test_fewer_files_than_pipelines_is_refused_with_the_fix(shards):
    with pytest.raises(ValueError, match=r"2 shard file.*4 input pipelines.*--shard_size_mb"
                                         r".*--tracks_per_shard"):
        pipeline.two_view_dataset(shards, 8, crop_len=CROP, input_context=_context(0))


def test_several_splits_are_read_together(many_shards):
    assert pipeline.steps_per_epoch(many_shards, 5, splits=("train", "valid", "test")) == 4
    assert pipeline.steps_per_epoch(many_shards, 5) == 2  # the old call: train only
    assert pipeline.steps_per_epoch(many_shards, 5, split="valid", crops_per_track=3) == 2
    ds = pipeline.two_view_dataset(many_shards, 2, splits=("train", "test"), crop_len=CROP,
                                   seed=0, repeat=False, shuffle_buffer=0)
    assert sum(1 for _ in ds) == 9  # 18 tracks, batches of 2
    with pytest.raises(ValueError, match="either split"):
        pipeline.steps_per_epoch(many_shards, 5, split="train", splits=("valid",))


def test_missing_split_names_the_split_and_manifest(tmp_path):
    write_synthetic_dataset(str(tmp_path), num_tracks={"train": 4}, seconds=0.5,
                            sample_rate=8000)
    for call in (pipeline.steps_per_epoch, pipeline.two_view_dataset):
        with pytest.raises(ValueError) as info:
            call(str(tmp_path), 2, splits=("train", "valid"))
        message = str(info.value)
        assert "'valid'" in message and "manifest.json" in message
        assert "train (4 tracks)" in message and "batch size" not in message


def test_empty_split_says_empty_not_lower_the_batch(tmp_path):
    write_synthetic_dataset(str(tmp_path), num_tracks={"train": 0, "test": 3}, seconds=0.5,
                            sample_rate=8000)
    for call in (pipeline.steps_per_epoch, pipeline.two_view_dataset):
        with pytest.raises(ValueError) as info:
            call(str(tmp_path), 2)
        message = str(info.value)
        assert "'train' split" in message and "empty" in message
        assert "test (3 tracks)" in message and "batch size" not in message


@pytest.mark.parametrize("batch", [0, -4])
def test_non_positive_batch_is_refused(shards, batch):
    for call in (pipeline.steps_per_epoch, pipeline.two_view_dataset):
        with pytest.raises(ValueError, match=f"global_batch must be a positive.*{batch}"):
            call(shards, batch)


# A damaged shard is named, with the fix.

def _damage(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("with_manifest", [True, False])
def test_corrupt_shard_is_named_with_the_fix(tmp_path, with_manifest):
    out = str(tmp_path)
    write_synthetic_dataset(out, num_tracks={"train": 6, "test": 2}, seconds=0.5,
                            sample_rate=8000, shards_per_split=3)
    bad = pipeline.list_shards(out, "train")[1]
    _damage(bad)
    if not with_manifest:
        (tmp_path / "manifest.json").unlink()
    with pytest.raises(pipeline.CorruptDataError) as info:
        with pipeline.explain_data_errors(out, ("train",)):
            for _ in pipeline.two_view_dataset(out, 2, crop_len=CROP, repeat=False):
                pass
    message = str(info.value)
    assert isinstance(info.value.__cause__, tf.errors.DataLossError)
    assert bad in message and f"mssl-prepare verify --out {out}" in message
    others = [f for f in pipeline.list_shards(out, "train") if f != bad]
    assert not any(f in message for f in others)
    assert ("sha256 differs" if with_manifest else "corrupt TFRecord") in message


def test_truncated_and_missing_shards_are_found(tmp_path):
    out = str(tmp_path)
    write_synthetic_dataset(out, num_tracks={"train": 6}, seconds=0.5, sample_rate=8000,
                            shards_per_split=3)
    first, second, third = pipeline.list_shards(out, "train")
    with open(first, "r+b") as f:
        f.truncate(100)
    os.remove(second)
    problems = pipeline.find_bad_shards(out)
    assert len(problems) == 2
    assert problems[0].startswith(first) and "sha256 differs" in problems[0]
    assert problems[1] == f"{second}: listed in the manifest but missing"
    assert pipeline.find_bad_shards(out, ("test",)) == []
    # An error on good data says so instead of blaming a shard.
    message = pipeline.explain_data_error(tf.errors.DataLossError(None, None, "x"), out, ("test",))
    assert "every shard matches" in message


def test_distribute_datasets_from_function_gives_each_replica_its_share(many_shards):
    # What a multi-worker or TPU-pod trainer does: the input function gets the InputContext.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: pipeline.two_view_dataset(many_shards, 6, crop_len=CROP, seed=2,
                                              shuffle_buffer=4, input_context=ctx))
    batch = next(iter(dist))
    shards = strategy.experimental_local_results(batch["view_a"])
    assert [s.shape for s in shards] == [(3, CROP), (3, CROP)]
