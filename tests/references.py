"""Reference implementations and numeric helpers shared by the tests.

numpy transcriptions (float64) of the code the port must match: facebookresearch/vicreg's
`VICReg.forward` and `adjust_learning_rate`, Spijkervet/SimCLR's `NT_Xent` (as CLMR uses it),
PyTorch's default initialisation bounds; plus gradient helpers (autodiff on the active Keras
backend, central finite differences) and the 2-replica tf.distribute harness of the loss tests.
Tests import them from here (`from tests.references import reference_vicreg`) instead of loading
sibling test files by path.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest


# ---------------------------------------------------------------------------------------------
# facebookresearch/vicreg main_vicreg.py (torch semantics: unbiased var, eps 1e-4)
# ---------------------------------------------------------------------------------------------
def off_diagonal(m):
    """vicreg's off_diagonal: flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()."""
    n = m.shape[0]
    return m.flatten()[:-1].reshape(n - 1, n + 1)[:, 1:].flatten()


def reference_vicreg(x, y, sim_coeff=25.0, std_coeff=25.0, cov_coeff=1.0, eps=1e-4):
    """VICReg.forward of two (B, D) batches: (loss, {invariance, variance, covariance, and each
    weighted as in the loss})."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    batch_size, num_features = x.shape
    repr_loss = np.mean((x - y) ** 2)  # F.mse_loss
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    std_x = np.sqrt(x.var(axis=0, ddof=1) + eps)  # torch.var is unbiased
    std_y = np.sqrt(y.var(axis=0, ddof=1) + eps)
    std_loss = np.mean(np.maximum(0, 1 - std_x)) / 2 + np.mean(np.maximum(0, 1 - std_y)) / 2
    cov_x = (x.T @ x) / (batch_size - 1)
    cov_y = (y.T @ y) / (batch_size - 1)
    cov_loss = ((off_diagonal(cov_x) ** 2).sum() / num_features
                + (off_diagonal(cov_y) ** 2).sum() / num_features)
    loss = sim_coeff * repr_loss + std_coeff * std_loss + cov_coeff * cov_loss
    # The weighted terms (what our loss also logs) sum to the loss.
    return loss, {"invariance": repr_loss, "variance": std_loss, "covariance": cov_loss,
                  "invariance_weighted": sim_coeff * repr_loss,
                  "variance_weighted": std_coeff * std_loss,
                  "covariance_weighted": cov_coeff * cov_loss}


def reference_lr(step, base_lr, batch_size, steps_per_epoch, epochs, warmup_epochs=10,
                 end_factor=0.001, batch_reference=256):
    """main_vicreg.py adjust_learning_rate, plus holding the end value after the last step."""
    max_steps = epochs * steps_per_epoch
    warmup_steps = warmup_epochs * steps_per_epoch
    base_lr = base_lr * batch_size / batch_reference
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    step = min(step, max_steps) - warmup_steps
    max_steps -= warmup_steps
    q = 0.5 * (1 + math.cos(math.pi * step / max_steps))
    end_lr = base_lr * end_factor
    return base_lr * q + end_lr * (1 - q)


# ---------------------------------------------------------------------------------------------
# Spijkervet/SimCLR simclr/modules/nt_xent.py NT_Xent.forward (world_size 1)
# ---------------------------------------------------------------------------------------------
def torch_cosine_similarity(a, b, eps=1e-8):
    """nn.CosineSimilarity(dim=2) on a[:, None] vs b[None]: each norm clamped to >= eps."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), eps)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), eps)
    return a @ b.T


def mask_correlated_samples(batch_size):
    """NT_Xent.mask_correlated_samples: False on the diagonal and at the positives (i, i +- B)."""
    n = 2 * batch_size
    mask = np.ones((n, n), dtype=bool)
    np.fill_diagonal(mask, False)
    for i in range(batch_size):
        mask[i, batch_size + i] = False
        mask[batch_size + i, i] = False
    return mask


def reference_nt_xent(z_i, z_j, temperature=0.5):
    """NT_Xent.forward: (loss, {nt_xent, positive_cosine, negative_cosine})."""
    z_i = np.asarray(z_i, np.float64)
    z_j = np.asarray(z_j, np.float64)
    batch_size = z_i.shape[0]
    n = 2 * batch_size
    z = np.concatenate([z_i, z_j], axis=0)
    sim = torch_cosine_similarity(z, z) / temperature
    sim_i_j = np.diag(sim, batch_size)
    sim_j_i = np.diag(sim, -batch_size)
    positive_samples = np.concatenate([sim_i_j, sim_j_i]).reshape(n, 1)
    negative_samples = sim[mask_correlated_samples(batch_size)].reshape(n, -1)
    logits = np.concatenate([positive_samples, negative_samples], axis=1)
    # CrossEntropyLoss(reduction="sum") with label 0, then / N.
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_softmax[:, 0].sum() / n
    cos = sim * temperature
    return loss, {"nt_xent": loss, "positive_cosine": positive_samples.mean() * temperature,
                  "negative_cosine": cos[mask_correlated_samples(batch_size)].mean()}


def reference_grouped(reference, z_a, z_b, group_size, **kwargs):
    """The thesis' per-core objective: `reference` on consecutive groups of rows, averaged.

    What PyTorch/XLA on a TPU v3-8 computed: core k holds rows [k*g, (k+1)*g) of the global
    batch and takes its statistics (VICReg) or negatives (NT-Xent) there; the gradients of the
    cores are averaged, i.e. the loss being minimised is the mean of the per-core losses.
    """
    z_a, z_b = np.asarray(z_a), np.asarray(z_b)
    results = [reference(z_a[i:i + group_size], z_b[i:i + group_size], **kwargs)
               for i in range(0, len(z_a), group_size)]
    total = np.mean([r[0] for r in results])
    terms = {k: np.mean([r[1][k] for r in results]) for k in results[0][1]}
    return total, terms


# ---------------------------------------------------------------------------------------------
# PyTorch's default initialisation (torch.nn.Linear / Conv1d reset_parameters)
# ---------------------------------------------------------------------------------------------
def torch_default_bounds(fan_in):
    """(weight bound, bias bound) of torch's kaiming_uniform_(a=sqrt(5)) and its bias rule.

    kaiming_uniform_: bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a**2)) = sqrt(1/3),
    so bound = 1 / sqrt(fan_in); the bias is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    gain = math.sqrt(2.0 / (1 + 5.0))
    return gain * math.sqrt(3.0 / fan_in), 1.0 / math.sqrt(fan_in)


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------
def grad(fn, *args):
    """Gradient of the scalar fn(*args) w.r.t. every argument, on the active Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # noqa: PLC0415  (backend-specific)
        tensors = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            value = fn(*tensors)
        return [g.numpy() for g in tape.gradient(value, tensors)]
    if backend == "jax":
        import jax  # noqa: PLC0415  (backend-specific)
        return [np.asarray(g) for g in jax.grad(fn, argnums=tuple(range(len(args))))(*args)]
    pytest.skip(f"no gradient helper for backend {backend}")


def finite_difference(fn, x, h=1e-6):
    """Central differences of a float64 numpy function."""
    out = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(*x.shape):
        plus, minus = x.astype(np.float64), x.astype(np.float64)
        plus[idx] += h
        minus[idx] -= h
        out[idx] = (fn(plus) - fn(minus)) / (2 * h)
    return out


# ---------------------------------------------------------------------------------------------
# two replicas on the 2 logical CPUs that tests/conftest.py configures
# ---------------------------------------------------------------------------------------------
def two_cpu_strategy():
    """A fresh 2-replica MirroredStrategy on the 2 logical CPUs that conftest configures.

    Every new MirroredStrategy restarts its collective group/instance keys, so a second strategy
    in the same process collides with the first one's all_gather ("Shape mismatch in the
    collective instance 101"). TensorFlow's own test combinations bump the key base before each
    strategy; so does this.
    """
    import tensorflow as tf  # noqa: PLC0415  (TensorFlow-only helper)
    tf.distribute.MirroredStrategy._collective_key_base += 100000  # noqa: SLF001
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    return strategy


def replicated_loss_and_grads(loss_fn, x_a, x_b, kernel, use_gather):
    """Runs loss_fn(Dense(x_a), Dense(x_b)) on 2 logical CPUs; returns per-replica losses and
    the replica-summed gradients of loss / num_replicas w.r.t. the Dense kernel."""
    import tensorflow as tf  # noqa: PLC0415  (TensorFlow-only helper)
    strategy = two_cpu_strategy()
    with strategy.scope():
        dense = keras.layers.Dense(kernel.shape[1], use_bias=False)
        dense.build((None, kernel.shape[0]))
        dense.set_weights([kernel])

    def gather(x):
        return tf.distribute.get_replica_context().all_gather(x, axis=0)

    def replica_step(xa, xb):
        ctx = tf.distribute.get_replica_context()
        with tf.GradientTape() as tape:
            total, _ = loss_fn(dense(xa), dense(xb), gather=gather if use_gather else None)
            # apply_gradients SUMs over replicas, so each replica contributes loss / R.
            scaled = total / ctx.num_replicas_in_sync
        return total, tape.gradient(scaled, dense.trainable_variables)

    half = x_a.shape[0] // 2

    def split(x):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(x[ctx.replica_id_in_sync_group * half:
                                      (ctx.replica_id_in_sync_group + 1) * half]))

    @tf.function
    def run(xa, xb):
        total, grads = strategy.run(replica_step, args=(xa, xb))
        return (strategy.experimental_local_results(total),
                [strategy.reduce("SUM", g, axis=None) for g in grads])

    losses, grads = run(split(x_a), split(x_b))
    return [float(v) for v in losses], grads[0].numpy()


def single_device_loss_and_grad(loss_fn, x_a, x_b, kernel):
    """loss_fn(x_a @ kernel, x_b @ kernel) and its gradient w.r.t. kernel, on one device."""
    import tensorflow as tf  # noqa: PLC0415  (TensorFlow-only helper)
    k = tf.Variable(kernel)
    with tf.GradientTape() as tape:
        total, _ = loss_fn(tf.matmul(x_a, k), tf.matmul(x_b, k))
    return float(total), tape.gradient(total, k).numpy()
