"""One input pipeline per host: what TPU pod slices and multi-worker clusters rely on.

`distribute_datasets_from_function` calls the input function once per host (per worker, per JAX
process) with a `tf.distribute.InputContext`; the readers then read the shard files
`input_pipeline_id::num_input_pipelines`. Simulated contexts of 4 pipelines stand for a 4-host
pod slice: the pipelines must be disjoint, together complete, and balanced within one file.
"""

import inspect

import pytest
import tensorflow as tf

from mssl_tf.data import pipeline
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.distribute import cluster


def _contexts(n: int, replicas_per_host: int = 1) -> list[tf.distribute.InputContext]:
    return [tf.distribute.InputContext(num_input_pipelines=n, input_pipeline_id=i,
                                       num_replicas_in_sync=n * replicas_per_host)
            for i in range(n)]


def _track_ids(data_dir, context) -> list[str]:
    ds = pipeline.track_dataset(data_dir, "train", input_context=context)
    return [t["track_id"].numpy().decode() for t in ds]


@pytest.mark.parametrize("shards_per_split, tracks", [(8, 32), (5, 23)])
def test_four_hosts_read_disjoint_complete_balanced_parts(tmp_path, shards_per_split, tracks):
    data_dir = str(tmp_path)
    write_synthetic_dataset(data_dir, num_tracks={"train": tracks, "valid": 2, "test": 2},
                            seconds=0.05, sample_rate=8000, shards_per_split=shards_per_split)
    everything = _track_ids(data_dir, None)
    assert len(everything) == tracks
    parts = [_track_ids(data_dir, ctx) for ctx in _contexts(4)]
    seen = [t for part in parts for t in part]
    assert len(seen) == len(set(seen)), "a track is read by two hosts"
    assert sorted(seen) == sorted(everything), "a track is read by no host"
    per_file = -(-tracks // shards_per_split)  # the largest shard's track count
    files_per_host = [len(range(i, shards_per_split, 4)) for i in range(4)]
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= per_file * (max(files_per_host) - min(files_per_host))
    assert min(sizes) > 0


def test_jax_process_context_is_one_pipeline_per_process():
    """A single JAX process: one pipeline, and the per-process batch is the global batch."""
    pytest.importorskip("jax")
    ctx = cluster.jax_input_context(8)
    assert (ctx.num_input_pipelines, ctx.input_pipeline_id) == (1, 0)
    assert ctx.get_per_replica_batch_size(8) == 8


def test_two_view_dataset_per_host(tmp_path):
    """The pre-training reader under an InputContext (added to `two_view_dataset` by the data
    side): per-replica batches of the host's own files, and too few files refused with the fix."""
    if "input_context" not in inspect.signature(pipeline.two_view_dataset).parameters:
        pytest.skip("two_view_dataset has no input_context argument yet")
    data_dir = str(tmp_path)
    write_synthetic_dataset(data_dir, num_tracks={"train": 16, "valid": 2, "test": 2},
                            seconds=0.3, sample_rate=8000, shards_per_split=4)
    crop = 729
    for ctx in _contexts(2, replicas_per_host=2):
        ds = pipeline.two_view_dataset(data_dir, 8, crop_len=crop, input_context=ctx)
        batch = next(iter(ds))
        assert batch["view_a"].shape == (2, crop)  # global 8 over 4 replicas
    with pytest.raises(ValueError, match="--shard_size_mb|--tracks_per_shard"):
        pipeline.two_view_dataset(data_dir, 8, crop_len=crop, input_context=_contexts(8)[0])
