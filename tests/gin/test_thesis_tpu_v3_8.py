"""gin/optimization/thesis_tpu_v3_8.gin: one include sets every part of the TPU v3-8 emulation."""

import math

import gin
import numpy as np
import pytest

from mssl_tf import configurables, gin_utils, losses
from mssl_tf.data.synthetic import write_synthetic_dataset
from mssl_tf.distribute.runtime import Runtime
from mssl_tf.models import GhostBatchNormalization, SSLModel
from mssl_tf.train import experiment

INCLUDE = "optimization/thesis_tpu_v3_8.gin"
SMALL = ["build_sample_cnn.rep_dim = 16", "build_sample_cnn.widths = (8, 8, 8, 8, 8, 8)",
         "vicreg_projector.spec = '32-32'", "clmr_projector.spec = '32-32'"]


@pytest.mark.parametrize("name,per_core", [("vicreg_gtzan", 96), ("clmr_gtzan", 32),
                                           ("vicreg_fma_1000", 96), ("clmr_mtat", 32)])
def test_include_builds_the_thesis_parts(name, per_core):
    gin_utils.parse([f"experiments/{name}.gin", INCLUDE], SMALL)
    assert gin.query_parameter("pretrain.global_batch") == 8 * per_core
    assert gin.query_parameter("Runtime.precision") == "mixed_bfloat16"
    kind = "vicreg" if name.startswith("vicreg") else "clmr"
    encoder = configurables.build_sample_cnn(crop_len=2187)
    projector = getattr(configurables, f"{kind}_projector")(input_dim=16)
    ghosts = [layer for m in (encoder, projector) for layer in m.layers
              if isinstance(layer, GhostBatchNormalization)]
    # 8 encoder BNs (stem, 6 blocks, final) + 1 in the VICReg projector; CLMR's projector has none.
    assert len(ghosts) == 8 + (kind == "vicreg")
    assert {layer.virtual_batch_size for layer in ghosts} == {per_core}
    assert not any(layer.synchronized for layer in ghosts)
    conv = encoder.get_layer("block3_conv")  # torch init: biases drawn, U(+-1/sqrt(3 * 8))
    bias = np.asarray(conv.bias)
    assert np.abs(bias).max() <= 1 / math.sqrt(24) and np.abs(bias).max() > 0
    runtime = Runtime()
    assert runtime.stats_group_size == per_core
    model = SSLModel(encoder, projector, losses.vicreg_loss, **runtime.model_kwargs())
    assert model.stats_group_size == per_core


def test_other_experiments_keep_the_defaults():
    gin_utils.parse(["experiments/vicreg_gtzan.gin"], SMALL)
    encoder = configurables.build_sample_cnn(crop_len=2187)
    assert not any(isinstance(layer, GhostBatchNormalization) for layer in encoder.layers)
    assert np.all(np.asarray(encoder.get_layer("block3_conv").bias) == 0)  # Keras init
    projector = configurables.vicreg_projector(input_dim=16)
    assert not any(isinstance(layer, GhostBatchNormalization) for layer in projector.layers)
    assert Runtime().stats_group_size is None


@pytest.mark.slow
def test_emulated_experiment_trains_two_tiny_steps(tmp_path):
    data_dir = str(tmp_path / "data")
    write_synthetic_dataset(data_dir, num_tracks={"train": 8, "valid": 4, "test": 4}, seconds=0.3)
    tiny = ["pretrain.crop_len = 2187", "pretrain.global_batch = 4", "THESIS_PER_CORE_BATCH = 2",
            "TrainLoop.max_steps = 2", "Runtime.precision = 'float32'",
            "Runtime.steps_per_execution = 1", "TrainLoop.progress = False",
            "TrainLoop.backup_every_steps = 1", f"pretrain.data_dir = '{data_dir}'"]
    gin_utils.parse(["experiments/vicreg_gtzan.gin", INCLUDE], SMALL + tiny,
                    model_dir=str(tmp_path / "run"))
    result = experiment.pretrain(str(tmp_path / "run"))
    assert result["step"] == 2 and np.isfinite(result["history"]["loss"]).all()
