"""One optimizer step on 2 replicas equals the single-device step on the same global batch.

TensorFlow: MirroredStrategy over the 2 logical CPUs from conftest (gather + 1/R scaling +
synchronized BN). JAX: keras.distribution.DataParallel over 2 forced host devices, in a
subprocess (the device count must be set before JAX starts).
"""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mssl_tf import distribute, losses, optim
from mssl_tf.models import SSLModel, build_projector, build_sample_cnn
from tests.jax_runner import last_json, run_jax

CROP = 243  # 3**5: a 4-block SampleCNN
WIDTHS = (8, 8, 16, 16)
BATCH = 8


def _build(objective, collectives, optimizer):
    encoder = build_sample_cnn(8, crop_len=CROP, widths=WIDTHS, synchronized_bn=True)
    kind = "vicreg" if objective == "vicreg" else "clmr"
    projector = build_projector(kind, "16-8", 8)
    projector_bn = [layer for layer in projector.layers if "bn" in layer.name]
    for layer in projector_bn:
        layer.synchronized = True
    model = SSLModel(encoder, projector, losses.get_loss(objective), collectives=collectives)
    model.compile(optimizer=optimizer, jit_compile=False)
    model.build_from_views(CROP)
    return model


def _views(seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-1, 1, (BATCH, CROP)).astype("float32") for k in ("view_a", "view_b")}


def _one_step(model, views):
    ds = tf.data.Dataset.from_tensors(views)
    model.fit(ds, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.parametrize("objective", ["vicreg", "ntxent"])
@pytest.mark.parametrize("opt", ["sgd", "lars"])
def test_two_replicas_equal_one_device_tf(objective, opt, mirrored_strategy):
    make_opt = {"sgd": lambda: keras.optimizers.SGD(1e-3),
                "lars": lambda: optim.LARS(learning_rate=0.1)}[opt]
    keras.utils.set_random_seed(0)
    single = _build(objective, distribute.TFCollectives(), make_opt())
    start = single.get_weights()
    strategy = mirrored_strategy
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = _build(objective, distribute.TFCollectives(), make_opt())
    mirrored.set_weights(start)
    views = _views()
    w_single = _one_step(single, views)
    w_mirrored = _one_step(mirrored, views)
    moved = max(np.abs(a - b).max() for a, b in zip(w_single, start))
    assert moved > 1e-4  # the step did something measurable
    for a, b in zip(w_single, w_mirrored):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_local_stats_differ_from_global_tf(mirrored_strategy):
    """Per-replica statistics (the thesis' TPU setting) are a real, different objective."""
    keras.utils.set_random_seed(0)
    strategy = mirrored_strategy
    with strategy.scope():
        glob = _build("vicreg", distribute.TFCollectives(), keras.optimizers.SGD(0.5))
        loc = _build("vicreg", distribute.TFCollectives(), keras.optimizers.SGD(0.5))
    loc.global_stats = False
    loc.set_weights(glob.get_weights())
    views = _views()
    diff = max(np.abs(a - b).max() for a, b in zip(_one_step(glob, views), _one_step(loc, views)))
    assert diff > 1e-4


JAX_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np, keras
    from mssl_tf import losses
    from mssl_tf.models import SSLModel, build_projector, build_sample_cnn
    objective = sys.argv[1]
    CROP, WIDTHS, BATCH = 243, (8, 8, 16, 16), 8
    def build():
        keras.utils.set_random_seed(0)
        enc = build_sample_cnn(8, crop_len=CROP, widths=WIDTHS)
        proj = build_projector("vicreg" if objective == "vicreg" else "clmr", "16-8", 8)
        m = SSLModel(enc, proj, losses.get_loss(objective))
        m.compile(optimizer=keras.optimizers.SGD(1e-3))
        m.build_from_views(CROP)
        return m
    rng = np.random.default_rng(0)
    views = {k: rng.uniform(-1, 1, (BATCH, CROP)).astype("float32") for k in ("view_a", "view_b")}
    single = build()
    start = single.get_weights()
    single.fit(views, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    dp = build()
    dp.set_weights(start)
    dp.fit(views, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
               for a, b in zip(single.get_weights(), dp.get_weights()))
    moved = max(float(np.abs(np.asarray(a) - b).max()) for a, b in zip(single.get_weights(), start))
    print(json.dumps({"devices": len(devices), "diff": diff, "moved": moved}))
""")


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["vicreg", "ntxent"])
def test_two_devices_equal_one_device_jax(objective):
    pytest.importorskip("jax")
    result = last_json(run_jax(JAX_SCRIPT, objective, devices=2))
    assert result["devices"] == 2
    assert result["moved"] > 1e-4
    assert result["diff"] < 1e-5, result
