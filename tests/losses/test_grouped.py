"""Grouped statistics (the thesis' per-core losses) on one device == a per-replica run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from mssl_tf.losses import grouped, nt_xent_loss, vicreg_loss
from tests.jax_runner import last_json, run_jax
from tests.references import (
    finite_difference,
    grad,
    reference_grouped,
    reference_nt_xent,
    reference_vicreg,
    replicated_loss_and_grads,
    single_device_loss_and_grad,
)

REPO = Path(__file__).resolve().parents[2]
OBJECTIVES = {"vicreg": (vicreg_loss, reference_vicreg),
              "ntxent": (nt_xent_loss, reference_nt_xent)}


def _pairs(seed, batch, dim):
    rng = np.random.default_rng(seed)
    z_a = rng.standard_normal((batch, dim)) * np.linspace(0.3, 1.7, dim)
    z_b = z_a + 0.5 * rng.standard_normal((batch, dim))
    return z_a.astype("float32"), z_b.astype("float32")


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_grouped_equals_mean_of_per_group_references(name):
    loss_fn, reference = OBJECTIVES[name]
    z_a, z_b = _pairs(1, 12, 5)
    total, terms = grouped(loss_fn, 4)(z_a, z_b)
    ref_total, ref_terms = reference_grouped(reference, z_a, z_b, 4)
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), ref_total, rtol=1e-5)
    for k, v in ref_terms.items():
        np.testing.assert_allclose(float(ops.convert_to_numpy(terms[k])), v, rtol=1e-5, atol=1e-7)
    # The control: grouping changes the objective (else the test above would prove nothing).
    assert abs(ref_total - reference(z_a, z_b)[0]) > 1e-2 * abs(ref_total)
    # One group of the whole batch is the plain objective.
    np.testing.assert_allclose(float(ops.convert_to_numpy(grouped(loss_fn, 12)(z_a, z_b)[0])),
                               reference(z_a, z_b)[0], rtol=1e-5)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_grouped_gradients_match_finite_differences(name):
    loss_fn, reference = OBJECTIVES[name]
    z_a, z_b = _pairs(2, 6, 3)
    fn = grouped(loss_fn, 3)
    grad_a, _ = grad(lambda a, b: fn(a, b)[0], z_a, z_b)
    fd_a = finite_difference(lambda a: reference_grouped(reference, a, z_b, 3)[0], z_a)
    np.testing.assert_allclose(grad_a, fd_a, rtol=1e-3, atol=1e-4)


def test_dynamic_batch_uses_a_map_over_groups():
    """Inside tf.function a gathered batch has no static size: the mapped path, same value."""
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function needs the TensorFlow backend")
    z_a, z_b = _pairs(3, 8, 4)
    spec = tf.TensorSpec([None, 4], tf.float32)
    for loss_fn, reference in OBJECTIVES.values():
        fn = tf.function(lambda a, b, f=loss_fn: grouped(f, 2)(a, b)[0],
                         input_signature=[spec, spec])
        np.testing.assert_allclose(float(fn(z_a, z_b)),
                                   reference_grouped(reference, z_a, z_b, 2)[0], rtol=1e-5)


def test_batch_not_a_multiple_of_the_group_is_explained():
    z = np.zeros((10, 3), "float32")
    with pytest.raises(ValueError, match=r"10 rows.*multiple of stats_group_size=4"):
        grouped(vicreg_loss, 4)(z, z)
    with pytest.raises(ValueError, match=">= 2"):
        grouped(vicreg_loss, 1)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_two_replicas_grouped_equal_one_device_and_per_replica_run(name):
    """Groups of the local size on 2 replicas: == one device grouped == each replica alone."""
    pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute check needs the TensorFlow backend")
    loss_fn, reference = OBJECTIVES[name]
    rng = np.random.default_rng(5)
    x_a = rng.standard_normal((8, 6)).astype("float32")
    x_b = (x_a + 0.3 * rng.standard_normal((8, 6))).astype("float32")
    kernel = (0.5 * rng.standard_normal((6, 4))).astype("float32")
    fn = grouped(loss_fn, 4)

    losses, grads = replicated_loss_and_grads(fn, x_a, x_b, kernel, use_gather=True)
    single_loss, single_grad = single_device_loss_and_grad(fn, x_a, x_b, kernel)
    np.testing.assert_allclose(losses, [single_loss] * 2, rtol=1e-5)
    np.testing.assert_allclose(grads, single_grad, rtol=1e-5, atol=1e-6)
    # The hardware being emulated: each replica's own loss on its own rows, no gather.
    local_losses, local_grads = replicated_loss_and_grads(loss_fn, x_a, x_b, kernel, False)
    np.testing.assert_allclose(np.mean(local_losses), single_loss, rtol=1e-5)
    np.testing.assert_allclose(local_grads, single_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        single_loss, reference_grouped(reference, x_a @ kernel, x_b @ kernel, 4)[0], rtol=1e-5)


_EIGHT_REPLICAS = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 8)
    import keras
    from mssl_tf.losses import grouped, nt_xent_loss, vicreg_loss
    data = np.load(sys.argv[1])
    x_a, x_b, kernel = data["x_a"], data["x_b"], data["kernel"]
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(8)])
    local = x_a.shape[0] // 8
    out = {"replicas": strategy.num_replicas_in_sync}
    for name, loss_fn in (("vicreg", vicreg_loss), ("ntxent", nt_xent_loss)):
        with strategy.scope():
            k = tf.Variable(kernel)

        def step(xa, xb):
            # The thesis' TPU: each core's loss on its own rows, no gather; gradients averaged.
            ctx = tf.distribute.get_replica_context()
            with tf.GradientTape() as tape:
                total, _ = loss_fn(tf.matmul(xa, k), tf.matmul(xb, k), gather=None)
                scaled = total / ctx.num_replicas_in_sync
            return total, tape.gradient(scaled, k)

        def split(x):
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: tf.constant(x[ctx.replica_id_in_sync_group * local:
                                          (ctx.replica_id_in_sync_group + 1) * local]))

        @tf.function
        def run(xa, xb):
            total, g = strategy.run(step, args=(xa, xb))
            return strategy.experimental_local_results(total), strategy.reduce("SUM", g, None)

        losses, g = run(split(x_a), split(x_b))
        out[name] = {"losses": [float(v) for v in losses], "grad": g.numpy().tolist()}
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_one_device_grouped_equals_eight_replica_per_replica_run(tmp_path):
    """8 groups of 4 on one device == 8 replicas (8 logical CPUs) each with its own statistics."""
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute check needs the TensorFlow backend")
    rng = np.random.default_rng(8)
    x_a = rng.standard_normal((32, 6)).astype("float32")
    x_b = (x_a + 0.3 * rng.standard_normal((32, 6))).astype("float32")
    kernel = (0.5 * rng.standard_normal((6, 5))).astype("float32")
    np.savez(tmp_path / "data.npz", x_a=x_a, x_b=x_b, kernel=kernel)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _EIGHT_REPLICAS, str(tmp_path / "data.npz")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 8
    for name, (loss_fn, reference) in OBJECTIVES.items():
        k = tf.Variable(kernel)
        with tf.GradientTape() as tape:
            total, _ = grouped(loss_fn, 4)(tf.matmul(x_a, k), tf.matmul(x_b, k))
        np.testing.assert_allclose(float(total), np.mean(out[name]["losses"]), rtol=1e-5)
        np.testing.assert_allclose(tape.gradient(total, k).numpy(), np.array(out[name]["grad"]),
                                   rtol=1e-4, atol=1e-6)
        per_core = [reference(x_a[i:i + 4] @ kernel, x_b[i:i + 4] @ kernel)[0]
                    for i in range(0, 32, 4)]
        np.testing.assert_allclose(out[name]["losses"], per_core, rtol=1e-5)


_JAX_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.modules["tensorflow"] = None  # the keras-only core runs without TensorFlow
    import jax, keras, numpy as np
    from mssl_tf.losses import grouped, nt_xent_loss, vicreg_loss
    from mssl_tf.models import GhostBatchNormalization
    data = np.load(sys.argv[1])
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    out = {"devices": len(jax.devices())}
    for name, fn in (("vicreg", vicreg_loss), ("ntxent", nt_xent_loss)):
        out[name] = float(jax.jit(lambda a, b: grouped(fn, 4)(a, b)[0])(data["z_a"], data["z_b"]))
    layer = GhostBatchNormalization(virtual_batch_size=4)
    y = layer(data["z_a"], training=True)
    out["ghost"] = np.asarray(y).tolist()
    out["moving_mean"] = np.asarray(layer.moving_mean).tolist()
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_jax_backend_groups_and_ghost_bn(tmp_path):
    """On JAX (2 host devices, DataParallel) the same grouped losses and per-group BN."""
    pytest.importorskip("jax")
    z_a, z_b = _pairs(11, 16, 5)
    np.savez(tmp_path / "z.npz", z_a=z_a, z_b=z_b)
    out = last_json(run_jax(_JAX_SCRIPT, tmp_path / "z.npz", devices=2,
                            env={"PYTHONPATH": str(REPO)}))
    assert out["devices"] == 2
    for name, (_, reference) in OBJECTIVES.items():
        np.testing.assert_allclose(out[name], reference_grouped(reference, z_a, z_b, 4)[0],
                                   rtol=1e-5)
    groups = z_a.reshape(4, 4, 5).astype(np.float64)
    mean, var = groups.mean(axis=1, keepdims=True), groups.var(axis=1, keepdims=True)
    want = ((groups - mean) / np.sqrt(var + 1e-3)).reshape(16, 5)  # Keras' default epsilon
    np.testing.assert_allclose(np.array(out["ghost"]), want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["moving_mean"], 0.01 * mean.mean(axis=0).ravel(), rtol=1e-4,
                               atol=1e-6)  # Keras' default momentum 0.99
