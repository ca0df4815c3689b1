"""NT-Xent against a numpy transcription of Spijkervet/SimCLR's NT_Xent, by hand, on 2 replicas."""

import keras
import numpy as np
import pytest
from keras import ops

from mssl_tf.losses import nt_xent_loss
from tests.references import (
    finite_difference,
    grad,
    reference_nt_xent,
    replicated_loss_and_grads,
    single_device_loss_and_grad,
)


def _pairs(rng, batch, dim, noise=0.7):
    z_a = rng.standard_normal((batch, dim))
    z_b = z_a + noise * rng.standard_normal((batch, dim))
    return z_a.astype("float32"), z_b.astype("float32")


def _numpy(terms):
    return {k: float(ops.convert_to_numpy(v)) for k, v in terms.items()}


# ---------------------------------------------------------------------------------------------
# (1) values against the reference
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch,dim,temperature", [(2, 3, 0.5), (4, 8, 0.5), (8, 64, 0.5),
                                                   (6, 5, 0.1), (16, 32, 1.0)])
def test_matches_reference(batch, dim, temperature):
    z_a, z_b = _pairs(np.random.default_rng(batch * 100 + dim), batch, dim)
    total, terms = nt_xent_loss(z_a, z_b, temperature=temperature)
    ref_total, ref_terms = reference_nt_xent(z_a, z_b, temperature)
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), ref_total, rtol=1e-5)
    for name, value in _numpy(terms).items():
        np.testing.assert_allclose(value, ref_terms[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_scale_invariant_and_zero_rows_are_finite():
    z_a, z_b = _pairs(np.random.default_rng(2), 4, 6)
    base = float(ops.convert_to_numpy(nt_xent_loss(z_a, z_b)[0]))
    scaled = float(ops.convert_to_numpy(nt_xent_loss(10 * z_a, 0.1 * z_b)[0]))
    np.testing.assert_allclose(scaled, base, rtol=1e-5)
    # A zero embedding has cosine 0 with everything (the eps clamp), as in torch.
    z_a[1] = 0.0
    total = float(ops.convert_to_numpy(nt_xent_loss(z_a, z_b)[0]))
    np.testing.assert_allclose(total, reference_nt_xent(z_a, z_b)[0], rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# (2) gradients against finite differences of the reference
# ---------------------------------------------------------------------------------------------
def test_gradients_match_finite_differences():
    z_a, z_b = _pairs(np.random.default_rng(7), 3, 4)
    grad_a, grad_b = grad(lambda a, b: nt_xent_loss(a, b)[0], z_a, z_b)
    fd_a = finite_difference(lambda a: reference_nt_xent(a, z_b)[0], z_a)
    fd_b = finite_difference(lambda b: reference_nt_xent(z_a, b)[0], z_b)
    np.testing.assert_allclose(grad_a, fd_a, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(grad_b, fd_b, rtol=1e-3, atol=1e-5)
    assert np.abs(fd_a).max() > 0.01


# ---------------------------------------------------------------------------------------------
# (3) hand-worked cases
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch,temperature", [(2, 0.5), (4, 0.5), (4, 0.1)])
def test_aligned_positives_orthogonal_negatives_closed_form(batch, temperature):
    # z_a = z_b = orthonormal rows: positive cosine 1, every negative cosine 0, so each row's
    # cross entropy is -log(e^(1/T) / (e^(1/T) + (2B - 2))) = log(1 + (2B - 2) e^(-1/T)).
    z = np.eye(batch, 6, dtype="float32") * 3.0
    total, terms = nt_xent_loss(z, z, temperature=temperature)
    expected = np.log1p((2 * batch - 2) * np.exp(-1.0 / temperature))
    # atol: at T=0.1 the loss (2.7e-4) is a difference of two logits near 10 in float32.
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), expected, rtol=1e-5, atol=1e-6)
    values = _numpy(terms)
    np.testing.assert_allclose(values["positive_cosine"], 1.0, rtol=1e-6)
    assert abs(values["negative_cosine"]) < 1e-7
    assert values["nt_xent"] == float(ops.convert_to_numpy(total))


def test_collapsed_embeddings_give_log_of_negatives_plus_one():
    # All rows identical: every logit equals 1/T, so the loss is log(2B - 1) (uniform softmax).
    z = np.ones((3, 4), "float32")
    total, terms = nt_xent_loss(z, z)
    np.testing.assert_allclose(float(ops.convert_to_numpy(total)), np.log(5.0), rtol=1e-6)
    np.testing.assert_allclose(_numpy(terms)["negative_cosine"], 1.0, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# (4) reduced precision inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_inputs_give_float32_loss(dtype):
    # T = 0.1 makes logits up to 10 and the self-mask would overflow bf16/fp16 if not float32.
    z_a, z_b = _pairs(np.random.default_rng(13), 8, 16)
    low_a, low_b = ops.cast(z_a, dtype), ops.cast(z_b, dtype)
    total, terms = nt_xent_loss(low_a, low_b, temperature=0.1)
    value = ops.convert_to_numpy(total)
    assert value.dtype == np.float32 and np.isfinite(value)
    assert all(ops.convert_to_numpy(v).dtype == np.float32 for v in terms.values())
    rounded = [ops.convert_to_numpy(ops.cast(t, "float32")) for t in (low_a, low_b)]
    np.testing.assert_allclose(float(value), reference_nt_xent(*rounded, 0.1)[0], rtol=1e-5)
    np.testing.assert_allclose(float(value), reference_nt_xent(z_a, z_b, 0.1)[0], rtol=2e-2)


# ---------------------------------------------------------------------------------------------
# (5, 6) two replicas
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_replicas_with_gather_equal_single_device():
    pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.distribute check needs the TensorFlow backend")
    rng = np.random.default_rng(9)
    x_a = rng.standard_normal((8, 6)).astype("float32")
    x_b = (x_a + 0.5 * rng.standard_normal((8, 6))).astype("float32")
    kernel = rng.standard_normal((6, 5)).astype("float32")

    losses, grad = replicated_loss_and_grads(nt_xent_loss, x_a, x_b, kernel, True)
    single_loss, single_grad = single_device_loss_and_grad(nt_xent_loss, x_a, x_b, kernel)
    np.testing.assert_allclose(losses, [single_loss] * 2, rtol=1e-5)
    np.testing.assert_allclose(grad, single_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(single_loss, reference_nt_xent(x_a @ kernel, x_b @ kernel)[0],
                               rtol=1e-5)

    # Local negatives (CLMR's world_size=1): each replica's loss is that of its own half.
    local_losses, _ = replicated_loss_and_grads(nt_xent_loss, x_a, x_b, kernel, False)
    halves = [reference_nt_xent(x_a[i:i + 4] @ kernel, x_b[i:i + 4] @ kernel)[0] for i in (0, 4)]
    np.testing.assert_allclose(local_losses, halves, rtol=1e-5)
    assert abs(local_losses[0] - single_loss) > 1e-3


def test_bad_input_is_explained():
    z = np.zeros((4, 3), "float32")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        nt_xent_loss(z, z, temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent_loss(z, z[:2])
    with pytest.raises(ValueError, match="at least 2 pairs"):
        nt_xent_loss(z[:1], z[:1])


def test_xla_compiled_matches_eager():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.function(jit_compile=True) needs the TensorFlow backend")
    z_a, z_b = _pairs(np.random.default_rng(17), 4, 8)
    compiled = tf.function(lambda a, b: nt_xent_loss(a, b)[0], jit_compile=True)
    np.testing.assert_allclose(float(compiled(z_a, z_b)), reference_nt_xent(z_a, z_b)[0],
                               rtol=1e-5)
