"""VICReg loss against a numpy transcription of facebookresearch/vicreg, by hand, on 2 replicas."""

import textwrap

import keras
import numpy as np
import pytest
from keras import ops

from mssl_tf.losses import LOSSES, get_loss, nt_xent_loss, vicreg_loss
from tests.jax_runner import last_json, run_jax
from tests.references import (
    finite_difference,
    grad,
    off_diagonal,
    reference_nt_xent,
    reference_vicreg,
    replicated_loss_and_grads,
    single_device_loss_and_grad,
)


def _embeddings(rng, batch, dim):
    """Correlated embeddings with per-feature scales on both sides of std 1 (all terms active)."""
    scales = np.linspace(0.2, 1.8, dim)
    mix = np.eye(dim) + 0.5 / np.sqrt(dim) * rng.standard_normal((dim, dim))
    z_a = (rng.standard_normal((batch, dim)) * scales) @ mix
    z_b = z_a + 0.5 * rng.standard_normal((batch, dim))
    return z_a.astype("float32"), z_b.astype("float32")


def _numpy(terms):
    return {k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------
# (1) values against the reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch,dim", [(2, 3), (5, 4), (8, 16), (8, 64), (32, 7)])
def test_matches_reference(batch, dim):
    rng = np.random.default_rng(batch * 100 + dim)
    z_a, z_b = _embeddings(rng, batch, dim)
    total, terms = vicreg_loss(z_a, z_b)
    ref_total, ref_terms = reference_vicreg(z_a, z_b)
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), ref_total, rtol=1e-5)
    values = _numpy(terms)
    for name, ref in ref_terms.items():
        np.testing.assert_allclose(values[name], ref, rtol=1e-5, atol=1e-7, err_msg=name)
    # The weighted terms the trainer logs are the reference terms times 25/25/1.
    for name, weight in (("invariance", 25.0), ("variance", 25.0), ("covariance", 1.0)):
        np.testing.assert_allclose(values[f"{name}_weighted"], weight * ref_terms[name],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
    # The variance hinge and covariance must both be active for the comparison to mean something.
    assert ref_terms["variance"] > 1e-3 and ref_terms["covariance"] > 1e-3


def test_custom_weights_and_eps():
    z_a, z_b = _embeddings(np.random.default_rng(3), 6, 5)
    total, terms = vicreg_loss(z_a, z_b, sim_weight=2.0, var_weight=3.0, cov_weight=0.5, eps=1e-2)
    ref_total, ref_terms = reference_vicreg(z_a, z_b, 2.0, 3.0, 0.5, eps=1e-2)
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), ref_total, rtol=1e-5)
    np.testing.assert_allclose(_numpy(terms)["variance"], ref_terms["variance"], rtol=1e-5)


def test_off_diagonal_square_sum_matches_reference_trick():
    from mssl_tf.losses.vicreg import off_diagonal_square_sum
    m = np.random.default_rng(0).standard_normal((6, 6)).astype("float32")
    np.testing.assert_allclose(float(ops.convert_to_numpy(off_diagonal_square_sum(m))),
                               (off_diagonal(m.astype(np.float64)) ** 2).sum(), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# (2) gradients against finite differences of the reference
# ---------------------------------------------------------------------------------------------
def test_gradients_match_finite_differences():
    z_a, z_b = _embeddings(np.random.default_rng(7), 4, 3)
    grad_a, grad_b = grad(lambda a, b: vicreg_loss(a, b)[0], z_a, z_b)
    fd_a = finite_difference(lambda a: reference_vicreg(a, z_b)[0], z_a)
    fd_b = finite_difference(lambda b: reference_vicreg(z_a, b)[0], z_b)
    np.testing.assert_allclose(grad_a, fd_a, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(grad_b, fd_b, rtol=1e-3, atol=1e-4)
    assert np.abs(fd_a).max() > 0.1  # a non-trivial gradient


# ---------------------------------------------------------------------------------------------
# (3) hand-worked cases
# ---------------------------------------------------------------------------------------------
def test_identical_views_have_zero_invariance():
    z, _ = _embeddings(np.random.default_rng(1), 6, 4)
    _, terms = vicreg_loss(z, z)
    assert _numpy(terms)["invariance"] == 0.0


def test_constant_embeddings_collapse_penalty():
    # Every row equal: centred data is 0, std = sqrt(0 + eps) = 0.01 in every feature.
    z = np.tile(np.array([[0.3, -1.0, 2.0]], "float32"), (5, 1))
    total, terms = vicreg_loss(z, z)
    values = _numpy(terms)
    np.testing.assert_allclose(values["variance"], 1 - np.sqrt(1e-4), rtol=1e-6)  # 0.99
    assert values["covariance"] == 0.0 and values["invariance"] == 0.0
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), 25 * 0.99, rtol=1e-6)


def test_decorrelated_features_have_zero_covariance():
    # Centred columns (1,-1,0,0) and (0,0,1,-1) are orthogonal; unbiased var = 2/3.
    z = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], "float32")
    _, terms = vicreg_loss(z, z)
    values = _numpy(terms)
    assert abs(values["covariance"]) < 1e-12
    np.testing.assert_allclose(values["variance"], 1 - np.sqrt(2 / 3 + 1e-4), rtol=1e-6)


def test_perfectly_correlated_pair_by_hand():
    # x = [[1, 1], [-1, -1]]: cov = x^T x / (2 - 1) = [[2, 2], [2, 2]]; off-diagonal squares sum
    # to 8, / D = 4 per branch, 8 for both; std = sqrt(2 + 1e-4) > 1 so the hinge is 0.
    z = np.array([[1, 1], [-1, -1]], "float32")
    total, terms = vicreg_loss(z, z)
    values = _numpy(terms)
    np.testing.assert_allclose(values["covariance"], 8.0, rtol=1e-6)
    assert values["variance"] == 0.0
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), 8.0, rtol=1e-6)


def test_invariance_is_mean_over_all_entries():
    z_a = np.zeros((2, 3), "float32")
    z_b = np.array([[1, 0, 0], [0, 2, 0]], "float32")
    _, terms = vicreg_loss(z_a, z_b)
    np.testing.assert_allclose(_numpy(terms)["invariance"], (1 + 4) / 6, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# (4) reduced precision inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_inputs_give_float32_loss(dtype):
    z_a, z_b = _embeddings(np.random.default_rng(11), 8, 16)
    low_a, low_b = ops.cast(z_a, dtype), ops.cast(z_b, dtype)
    total, terms = vicreg_loss(low_a, low_b)
    assert ops.convert_to_numpy(total).dtype == np.float32
    assert all(ops.convert_to_numpy(v).dtype == np.float32 for v in terms.values())
    # Exactly the float32 loss of the rounded inputs (nothing is computed in low precision) ...
    rounded = [ops.convert_to_numpy(ops.cast(t, "float32")) for t in (low_a, low_b)]
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)),
                               reference_vicreg(*rounded)[0], rtol=1e-5)
    # ... and close to the full-precision loss (bf16 keeps ~3 significant digits).
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)),
                               reference_vicreg(z_a, z_b)[0], rtol=2e-2)


# ---------------------------------------------------------------------------------------------
# (5, 6) two replicas: global statistics == single device; local statistics == per-half loss
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_replicas_with_gather_equal_single_device():
    pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute check needs the TensorFlow backend")
    rng = np.random.default_rng(5)
    x_a = rng.standard_normal((8, 6)).astype("float32")
    x_b = (x_a + 0.3 * rng.standard_normal((8, 6))).astype("float32")
    kernel = (0.5 * rng.standard_normal((6, 4))).astype("float32")

    losses, grad = replicated_loss_and_grads(vicreg_loss, x_a, x_b, kernel, use_gather=True)
    single_loss, single_grad = single_device_loss_and_grad(vicreg_loss, x_a, x_b, kernel)
    np.testing.assert_allclose(losses, [single_loss] * 2, rtol=1e-5)
    np.testing.assert_allclose(grad, single_grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(single_loss, reference_vicreg(x_a @ kernel, x_b @ kernel)[0],
                               rtol=1e-5)

    # Local-statistics mode (gather=None): each replica's loss is the loss of its own half, and
    # it differs from the global one (the control that the gather really happened above).
    local_losses, _ = replicated_loss_and_grads(vicreg_loss, x_a, x_b, kernel, use_gather=False)
    halves = [reference_vicreg(x_a[i:i + 4] @ kernel, x_b[i:i + 4] @ kernel)[0] for i in (0, 4)]
    np.testing.assert_allclose(local_losses, halves, rtol=1e-5)
    assert abs(local_losses[0] - single_loss) > 1e-3 * abs(single_loss)


# ---------------------------------------------------------------------------------------------
# registry, bad input, and the JAX backend
# ---------------------------------------------------------------------------------------------
def test_registry():
    assert LOSSES == {"vicreg": vicreg_loss, "ntxent": nt_xent_loss}
    assert get_loss("vicreg") is vicreg_loss and get_loss("ntxent") is nt_xent_loss
    with pytest.raises(ValueError, match=r"unknown loss 'simclr'.*\['ntxent', 'vicreg'\]"):
        get_loss("simclr")


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="same shape"):
        vicreg_loss(np.zeros((4, 3), "float32"), np.zeros((4, 2), "float32"))
    with pytest.raises(ValueError, match="2-D"):
        vicreg_loss(np.zeros((4, 3, 1), "float32"), np.zeros((4, 3, 1), "float32"))
    with pytest.raises(ValueError, match="at least 2"):
        vicreg_loss(np.zeros((1, 3), "float32"), np.zeros((1, 3), "float32"))


def test_xla_compiled_matches_eager():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function(jit_compile=True) needs the TensorFlow backend")
    z_a, z_b = _embeddings(np.random.default_rng(17), 6, 5)
    compiled = tf.function(lambda a, b: vicreg_loss(a, b)[0], jit_compile=True)
    np.testing.assert_allclose(float(compiled(z_a, z_b)), reference_vicreg(z_a, z_b)[0],
                               rtol=1e-5)


_JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    # No TensorFlow in this process: the keras-only core must import and run without it (the
    # layering rule), as on a JAX-only GPU machine.
    sys.modules["tensorflow"] = None
    import jax, keras, numpy as np
    from mssl_tf.losses import nt_xent_loss, vicreg_loss
    data = np.load(sys.argv[1])
    out = {"backend": keras.backend.backend()}
    for name, fn in (("vicreg", vicreg_loss), ("ntxent", nt_xent_loss)):
        value = jax.jit(lambda a, b: fn(a, b)[0])(data["z_a"], data["z_b"])
        grad = jax.grad(lambda a: fn(a, data["z_b"])[0])(data["z_a"])
        bf16 = fn(data["z_a"].astype("bfloat16"), data["z_b"].astype("bfloat16"))[0]
        out[name] = {"value": float(value), "grad": np.asarray(grad).tolist(),
                     "bf16_dtype": str(bf16.dtype)}
    out["tensorflow_imported"] = any(m.startswith("tensorflow") and sys.modules[m] is not None
                                     for m in list(sys.modules))
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_jax_backend_matches_reference(tmp_path):
    """VICReg and NT-Xent on the JAX backend (jit, grad, bf16) in a fresh process."""
    pytest.importorskip("jax")
    z_a, z_b = _embeddings(np.random.default_rng(21), 4, 3)
    np.savez(tmp_path / "z.npz", z_a=z_a, z_b=z_b)
    out = last_json(run_jax(_JAX_SCRIPT, tmp_path / "z.npz"))
    assert out["backend"] == "jax" and not out["tensorflow_imported"]
    for name, ref in (("vicreg", reference_vicreg), ("ntxent", reference_nt_xent)):
        np.testing.assert_allclose(out[name]["value"], ref(z_a, z_b)[0], rtol=1e-5)
        fd = finite_difference(lambda a: ref(a, z_b)[0], z_a)
        np.testing.assert_allclose(np.array(out[name]["grad"]), fd, rtol=1e-3, atol=1e-4)
        assert out[name]["bf16_dtype"] == "float32"
