"""pretrain(): a real run on synthetic shards, NaN stop, bad input (kills: test_crash_matrix)."""

import json
import os
import re

import numpy as np
import pytest

from mssl_tf import gin_utils, rundir
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.train import checkpoints, experiment

SMOKE = "experiments/smoke.gin"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    write_synthetic_dataset(out, num_tracks={"train": 32, "valid": 8, "test": 8}, seconds=0.5)
    return out


def _run(model_dir, data_dir, *params, allow_change=False):
    gin_utils.parse([SMOKE], [f"pretrain.data_dir = '{data_dir}'", "TrainLoop.progress = False",
                              *params], model_dir=model_dir, allow_config_change=allow_change)
    return experiment.pretrain(model_dir)


@pytest.mark.slow
def test_smoke_run_writes_the_run_directory(tmp_path, data_dir):
    run = str(tmp_path / "run")
    result = _run(run, data_dir)
    assert result["step"] == 8  # 2 epochs x 32 tracks / batch 8
    info = rundir.read_run(run)
    assert info["latest_epoch"] == 2 and info["encoder"]["rep_dim"] == 32
    assert set(rundir.list_snapshots(run)) == {1, 2}
    assert os.path.exists(os.path.join(run, "operative_config.gin"))
    assert "pretrain.global_batch = 8" in open(os.path.join(run, "operative_config.gin")).read()
    assert any(f.startswith("events.out.tfevents")
               for f in os.listdir(os.path.join(run, "logs", "train")))
    history = open(os.path.join(run, "history.csv")).read().splitlines()
    header = history[0].split(",")
    for col in ("epoch", "step", "loss", "invariance", "variance", "covariance",
                "invariance_weighted", "variance_weighted", "covariance_weighted", "rep_std",
                "rep_rank", "lr", "pairs_per_sec"):
        assert col in header
    assert len(history) == 3
    # The loss is finite and the snapshot reloads into the same encoder outputs.
    assert np.isfinite(result["history"]["loss"]).all()
    encoder, meta = rundir.load_encoder(run, "latest")
    assert meta["epoch"] == 2
    encoder2, _ = rundir.load_encoder(run, 2)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 2187)).astype("float32")
    np.testing.assert_allclose(encoder(x, training=False), encoder2(x, training=False), atol=1e-6)
    # Rerunning a finished run is a no-op that reports the same step, and says so (it said
    # "Resuming ... at step 8 (epoch 3, step 0 of it)").
    with open(os.path.join(run, "train.log")) as f:
        before = len(f.read())
    assert _run(run, data_dir)["step"] == 8
    with open(os.path.join(run, "train.log")) as f:
        rerun = f.read()[before:]
    assert "already finished its 8 steps (2 epochs); nothing to train" in rerun
    assert "Resuming" not in rerun


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_backup(tmp_path, data_dir):
    run = str(tmp_path / "run")
    _run(run, data_dir, "TrainLoop.max_steps = 4")
    good = checkpoints.TrainingBackup(run).state()
    assert good["step"] == 4
    # Resume with a weight that overflows float32: the loss is inf from the next step on.
    with pytest.raises(experiment.NonFiniteLossError, match=r"step 5.*last good backup is step 4"):
        _run(run, data_dir, "TrainLoop.max_steps = None", "vicreg_loss.sim_weight = 1e39",
             allow_change=True)
    assert checkpoints.TrainingBackup(run).state()["step"] == 4
    assert rundir.read_run(run)["latest_epoch"] == 1


@pytest.mark.slow
def test_loss_falls_on_a_learnable_setting(tmp_path, data_dir):
    """With a usable learning rate the objective really is minimised (the smoke preset's LARS
    warm-up is too short to show it)."""
    result = _run(str(tmp_path / "run"), data_dir, "pretrain.optimizer = @Adam",
                  "pretrain.learning_rate = 3e-3", "pretrain.epochs = 4")
    losses = result["history"]["loss"]
    # (Epoch to epoch the CPU's multi-threaded kernels add noise; the trend is what is tested.)
    assert len(losses) == 4 and max(losses[2:]) < 0.95 * losses[0], losses


def test_resume_with_changed_config_is_refused(tmp_path, data_dir):
    run = str(tmp_path / "run")
    _run(run, data_dir, "TrainLoop.max_steps = 1", "TrainLoop.backup_every_steps = 1")
    with pytest.raises(ValueError, match=r"another config(.|\n)*pretrain.epochs = 5"
                                         r"(.|\n)*--allow_config_change"):
        gin_utils.parse([SMOKE], [f"pretrain.data_dir = '{data_dir}'", "TrainLoop.progress = False",
                                  "TrainLoop.max_steps = 1", "TrainLoop.backup_every_steps = 1",
                                  "pretrain.epochs = 5"], model_dir=run)


def test_a_failed_start_does_not_block_its_correction(tmp_path, data_dir):
    """A first start with a wrong data_dir trains nothing, so the corrected command may run."""
    run = str(tmp_path / "run")
    with pytest.raises(FileNotFoundError):
        _run(run, str(tmp_path / "no_such_data"))
    assert not os.path.exists(os.path.join(run, "config.gin"))
    result = _run(run, data_dir, "TrainLoop.max_steps = 1")
    assert result["step"] == 1
    assert f"pretrain.data_dir = '{data_dir}'" in open(os.path.join(run, "config.gin")).read()


@pytest.mark.parametrize("batch,message", [
    (0, "pretrain.global_batch must be a positive whole number, got 0"),
    (-4, "pretrain.global_batch must be a positive whole number, got -4")])
def test_bad_global_batch_is_named(tmp_path, data_dir, batch, message):
    with pytest.raises(ValueError, match=message):
        _run(str(tmp_path / "run"), data_dir, f"pretrain.global_batch = {batch}")


def test_unwritable_model_dir_is_explained(tmp_path, data_dir):
    # A path under a regular file cannot be created by anyone (a read-only folder can, by root).
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="Cannot write the run directory .*--model_dir"):
        _run(str(blocker / "run"), data_dir)


@pytest.mark.parametrize("binding,hint", [("pretrain.epocs = 3", "epochs"),
                                          ("build_sample_cnnn.rep_dim = 3", "build_sample_cnn")])
def test_unknown_gin_binding_shows_close_names(binding, hint):
    with pytest.raises(ValueError, match=f"Close names: .*{hint}"):
        gin_utils.parse([], [binding])


def test_missing_gin_file_is_explained():
    with pytest.raises(FileNotFoundError, match="nope.gin.*looked in"):
        gin_utils.parse(["experiments/nope.gin"], [])


def test_global_batch_not_divisible(tmp_path, data_dir, mirrored_strategy):
    gin_utils.parse([SMOKE], [f"pretrain.data_dir = '{data_dir}'", "pretrain.global_batch = 7",
                              "Runtime.devices = ['/cpu:0', '/cpu:1']"])
    with pytest.raises(ValueError, match="global batch 7 is not divisible by the 2 replicas"):
        experiment.pretrain(str(tmp_path / "run"))


@pytest.mark.slow
def test_two_replica_run_with_augmentation(tmp_path, data_dir):
    """A real 2-replica MirroredStrategy run through pretrain(), augmentation on, NT-Xent."""
    run = str(tmp_path / "run")
    result = _run(run, data_dir, "Runtime.devices = ['/cpu:0', '/cpu:1']",
                  "pretrain.loss_fn = @nt_xent_loss", "pretrain.projector = @clmr_projector",
                  "clmr_projector.spec = '64-32'", "pretrain.augmenter = @AudioAugment",
                  "TrainLoop.max_steps = 3")
    assert result["step"] == 3
    assert rundir.read_run(run)["replicas"] == 2
    assert np.isfinite(result["history"]["loss"]).all()
    assert {"positive_cosine", "negative_cosine", "rep_rank"} <= set(result["history"])


def test_no_shards(tmp_path):
    gin_utils.parse([SMOKE], [f"pretrain.data_dir = '{tmp_path}'"])
    with pytest.raises(FileNotFoundError, match="No 'train' shards"):
        experiment.pretrain(str(tmp_path / "run"))


def test_unknown_tpu_is_explained():
    from mssl_tf.distribute import get_strategy
    with pytest.raises(ValueError, match="Could not connect to the TPU 'no-such-tpu'"):
        get_strategy(tpu="no-such-tpu")


def test_corrupt_shard_is_named_with_the_fix(tmp_path):
    """A damaged shard stops pre-training with its name and `mssl-prepare verify`, not a raw
    DataLossError at some byte offset."""
    data = str(tmp_path / "data")
    write_synthetic_dataset(data, num_tracks={"train": 16}, seconds=0.5, shards_per_split=2)
    bad = sorted(f for f in os.listdir(data) if f.endswith(".tfrecord"))[1]
    raw = bytearray(open(os.path.join(data, bad), "rb").read())
    raw[len(raw) // 2] ^= 0xFF
    open(os.path.join(data, bad), "wb").write(bytes(raw))
    with pytest.raises(ValueError, match=rf"{bad}(.|\n)*mssl-prepare verify --out {data}"):
        _run(str(tmp_path / "run"), data)


def test_a_run_of_an_older_version_gets_a_clear_message(tmp_path, data_dir):
    run = tmp_path / "run"
    run.mkdir()
    # run.json of mssl_tf < 0.2: no "format", the projector as {"kind", "output_dim"}.
    (run / "run.json").write_text(json.dumps({
        "encoder": {"rep_dim": 32, "crop_len": 2187, "widths": [16, 16, 32, 32, 32, 32]},
        "objective": "vicreg", "projector": {"kind": "vicreg", "output_dim": 64}}))
    with pytest.raises(ValueError, match="mssl_tf < 0.2(.|\n)*mssl-probe and mssl-export"):
        _run(str(run), data_dir)
    assert rundir.projector_name(rundir.read_run(str(run))) == "vicreg"


@pytest.mark.parametrize("binding,replacement", [
    ("pretrain.objective = 'vicreg'", "pretrain.loss_fn = @vicreg_loss"),
    ("pretrain.base_lr = 0.3", "WarmupCosine.base_lr"),
    ("pretrain.precision = 'float32'", "Runtime.precision"),
    ("build_projector.spec = '64-64'", "vicreg_projector.spec")])
def test_bindings_of_older_versions_name_their_replacement(binding, replacement):
    with pytest.raises(ValueError, match=f"was renamed: use {re.escape(replacement)}"):
        gin_utils.parse([], [binding])
