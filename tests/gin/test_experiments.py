"""Every gin/experiments/*.gin parses, states the thesis' settings, and trains 2 tiny steps."""

import glob
import json
import os
import re

import gin
import numpy as np
import pytest

from mssl_tf import gin_utils
from mssl_tf.data import pipeline
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.train import experiment

EXPERIMENTS = sorted(os.path.relpath(p, gin_utils.GIN_DIR)
                     for p in glob.glob(os.path.join(gin_utils.GIN_DIR, "experiments", "*.gin")))

# Shrinks any experiment to a 2-step run on 2,187-sample crops.
TINY = ["pretrain.crop_len = 2187", "build_sample_cnn.rep_dim = 16",
        "build_sample_cnn.widths = (8, 8, 8, 8, 8, 8)", "vicreg_projector.spec = '32-32'",
        "clmr_projector.spec = '32-32'", "pretrain.global_batch = 4", "TrainLoop.max_steps = 2",
        "Runtime.precision = 'float32'", "Runtime.steps_per_execution = 1",
        "TrainLoop.progress = False", "TrainLoop.backup_every_steps = 1"]


def test_every_thesis_run_has_an_experiment_file():
    names = {os.path.basename(p) for p in EXPERIMENTS}
    for run in ("vicreg_fma.gin", "vicreg_gtzan.gin", "vicreg_mtat.gin", "clmr_fma.gin",
                "clmr_gtzan.gin", "smoke.gin"):
        assert run in names


@pytest.mark.parametrize("name,epochs", [("vicreg_fma", 8000), ("vicreg_gtzan", 8000),
                                         ("vicreg_mtat", 3000)])
def test_vicreg_experiments_state_the_thesis_settings(name, epochs):
    gin_utils.parse([f"experiments/{name}.gin"], [])
    q = gin.query_parameter
    assert q("pretrain.epochs") == epochs
    assert q("pretrain.global_batch") == 768
    assert q("pretrain.loss_fn").selector == "vicreg_loss"
    assert q("pretrain.projector").selector == "vicreg_projector"
    assert q("vicreg_projector.spec") == "8192-8192-8192"
    assert q("build_sample_cnn.rep_dim") == 512 and q("pretrain.crop_len") == 59049
    assert (q("vicreg_loss.sim_weight"), q("vicreg_loss.var_weight"),
            q("vicreg_loss.cov_weight")) == (25.0, 25.0, 1.0)
    assert q("pretrain.learning_rate").selector == "WarmupCosine"
    assert q("WarmupCosine.base_lr") == 0.2 and q("WarmupCosine.end_factor") == 0.001
    assert q("WarmupCosine.warmup_epochs") == 10 and q("LARS.weight_decay") == 1e-6
    assert q("pretrain.optimizer").selector == "LARS"
    assert q("AudioAugment.pitch_p") == 0.6 and q("AudioAugment.polarity_p") == 0.8


@pytest.mark.parametrize("name,epochs", [("clmr_fma", 8000), ("clmr_gtzan", 3000)])
def test_clmr_experiments_state_the_thesis_settings(name, epochs):
    gin_utils.parse([f"experiments/{name}.gin"], [])
    q = gin.query_parameter
    assert q("pretrain.epochs") == epochs and q("pretrain.global_batch") == 256
    assert q("pretrain.loss_fn").selector == "nt_xent_loss"
    assert q("nt_xent_loss.temperature") == 0.5
    assert q("pretrain.projector").selector == "clmr_projector"
    assert q("clmr_projector.spec") == "512-128"
    # A constant 3e-4, not scaled with the batch (CLMR hard-codes it).
    assert q("pretrain.learning_rate") == 3e-4 and q("pretrain.optimizer").selector == "Adam"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    # All three splits: the GTZAN and FMA runs pre-train on every split.
    write_synthetic_dataset(out, num_tracks={"train": 8, "valid": 4, "test": 4}, seconds=0.3)
    return out


# Bindings that do not change what a 2-step tiny run executes: where the data is and how long
# the full run lasts (the real splits and lengths are checked against the real datasets below).
_RUN_LENGTH_AND_PLACE = re.compile(
    r"^(DATA_DIR|pretrain\.data_dir|pretrain\.epochs|TrainLoop\.milestones)\b|"
    r"^pretrain\.splits = \('train',\)$")


def _training_setups() -> dict[str, list[str]]:
    """Experiment files grouped by what their tiny run trains: the first file of each group
    stands for the others (e.g. vicreg_fma, vicreg_gtzan and vicreg_fma_1000 differ only in the
    data folder and the number of epochs)."""
    groups = {}
    try:
        for path in EXPERIMENTS:
            gin_utils.parse([path], TINY)
            key = "\n".join(sorted(
                line for line in gin.config_str().splitlines()
                if line.strip() and not line.startswith("#")
                and not _RUN_LENGTH_AND_PLACE.match(line)))
            groups.setdefault(key, []).append(path)
    finally:
        gin.clear_config()
    return {paths[0]: paths for paths in groups.values()}


SETUPS = _training_setups()


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(SETUPS))
def test_experiment_trains_two_tiny_steps(path, data_dir, tmp_path):
    """One 2-step tiny run per distinct training setup (SETUPS), so every file's setup runs."""
    gin_utils.parse([path], [f"pretrain.data_dir = '{data_dir}'", *TINY],
                    model_dir=str(tmp_path / "run"))
    result = experiment.pretrain(str(tmp_path / "run"))
    assert result["step"] == 2
    assert np.isfinite(result["history"]["loss"]).all()


# Track counts of the real datasets as mssl-prepare converts them (anchors.md): GTZAN's
# fault-filtered split, MTAT's Pons 2017 split, FMA medium's official 80/10/10 split of 25,000
# clips (approximate; mssl-prepare also drops the broken tracks).
REAL_COUNTS = {"gtzan": {"train": 443, "valid": 197, "test": 290},
               "mtat": {"train": 18706, "valid": 1825, "test": 5329},
               "fma_medium": {"train": 19922, "valid": 2505, "test": 2573}}
# What the thesis ran (Table 3.1 and section 3.3): batch, epochs, learning rate, projector.
THESIS = {"vicreg_fma": (768, 8000, 0.2, "vicreg_projector"),
          "vicreg_gtzan": (768, 8000, 0.2, "vicreg_projector"),
          "vicreg_mtat": (768, 3000, 0.2, "vicreg_projector"),
          "clmr_fma": (256, 8000, 3e-4, "clmr_projector"),
          "clmr_gtzan": (256, 3000, 3e-4, "clmr_projector"),
          "clmr_mtat": (256, 3000, 3e-4, "clmr_projector")}


def _fake_manifest(out_dir, counts):
    os.makedirs(out_dir, exist_ok=True)
    splits = {name: {"num_tracks": n, "shards": []} for name, n in counts.items()}
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        json.dump({"schema_version": 1, "dataset": "x", "sample_rate": 22050, "num_labels": 1,
                   "tag_names": ["x"], "multi_label": True, "splits": splits}, f)


# Every run file of a real dataset (the *_base.gin files are included by them, smoke/demo run
# on generated data, small_* on the user's own).
@pytest.mark.parametrize("path", [p for p in EXPERIMENTS
                                  if not p.endswith(("smoke.gin", "demo_vicreg.gin",
                                                     "demo_clmr.gin", "_base.gin",
                                                     "small_vicreg.gin", "small_clmr.gin"))])
def test_every_thesis_experiment_starts_on_its_real_dataset(path, tmp_path):
    """>= 1 step per epoch on the real split counts, and the thesis' batch, lr, epochs, projector
    (the GTZAN runs used to stop at "443 tracks, fewer than one batch of 768")."""
    gin_utils.parse([path], [])
    q = gin.query_parameter
    dataset = os.path.basename(q("%DATA_DIR"))
    data_dir = str(tmp_path / dataset)
    _fake_manifest(data_dir, REAL_COUNTS[dataset])
    batch, epochs, splits = q("pretrain.global_batch"), q("pretrain.epochs"), q("pretrain.splits")
    spe = pipeline.steps_per_epoch(data_dir, batch, splits=splits)
    assert spe >= 1
    name = os.path.basename(path)[:-len(".gin")]
    if name in THESIS:
        want_batch, want_epochs, want_lr, want_projector = THESIS[name]
        assert (batch, epochs) == (want_batch, want_epochs)
        assert q("pretrain.projector").selector == want_projector
        lr = q("pretrain.learning_rate")
        base = q("WarmupCosine.base_lr") if isinstance(lr, gin.config.ConfigurableReference) \
            else lr
        assert base == want_lr
    if dataset == "gtzan":
        assert set(splits) == {"train", "valid", "test"} and spe == 930 // batch
    if dataset == "mtat":
        assert tuple(splits) == ("train",)  # MTAT's valid/test audio is the probes' evaluation
