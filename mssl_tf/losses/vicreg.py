"""VICReg objective (Bardes et al. 2022), exactly as facebookresearch/vicreg `VICReg.forward`.

Reference semantics (main_vicreg.py): invariance = MSE mean over all B*D entries; each branch is
centred; std = sqrt(unbiased variance + eps); variance term = mean(relu(1 - std)) averaged over the
two branches (not summed, facebookresearch/vicreg#8); covariance = x^T x / (B - 1) and the
covariance term is the sum of squared off-diagonal entries / D, summed over the two branches.

Statistics are taken over the batch that `gather` returns. With a cross-replica all-gather that is
the global batch (the official code's FullGatherLayer); with `gather=None` each replica uses its
local batch (what the thesis' TPU code did). The loss is always computed in float32, so bf16/fp16
embeddings from a mixed-precision model neither overflow nor lose the small covariance entries.
"""

from __future__ import annotations

from collections.abc import Callable

from keras import ops

Gather = Callable[[object], object]


def to_float32(z_a, z_b, gather: Gather | None):
    """Casts both branches to float32 and applies `gather` (after the cast, so it moves float32)."""
    dim = z_a.shape[-1]
    z_a = ops.cast(z_a, "float32")
    z_b = ops.cast(z_b, "float32")
    if gather is not None:
        # A cross-replica all_gather loses the static shape inside tf.function; the feature
        # width is known from the local input, the global batch may stay dynamic.
        z_a = ops.reshape(gather(z_a), (-1, dim))
        z_b = ops.reshape(gather(z_b), (-1, dim))
    return z_a, z_b


def _num_rows(z):
    """Number of rows as a float when static, else as a float32 scalar tensor."""
    batch = z.shape[0]
    if batch is None:
        return ops.cast(ops.shape(z)[0], "float32")
    return float(batch)


def _check_pair(z_a, z_b, name: str) -> tuple[int | None, int | None]:
    """Validates two (B, D) embedding batches and returns their static (B, D)."""
    if len(z_a.shape) != 2 or len(z_b.shape) != 2:
        raise ValueError(f"{name}: embeddings must be 2-D (batch, dim), got shapes "
                         f"{tuple(z_a.shape)} and {tuple(z_b.shape)}; flatten the projector output")
    if tuple(z_a.shape) != tuple(z_b.shape):
        raise ValueError(f"{name}: the two views must have the same shape, got "
                         f"{tuple(z_a.shape)} and {tuple(z_b.shape)}")
    return z_a.shape[0], z_a.shape[1]


def off_diagonal_square_sum(matrix):
    """Sum of the squared off-diagonal entries of a square matrix.

    Equivalent to vicreg's `off_diagonal(m).pow_(2).sum()`, written as total minus diagonal so it
    needs no reshaping trick and keeps static shapes.

    Args:
      matrix: (D, D) tensor.

    Returns:
      Scalar tensor.
    """
    return ops.sum(ops.square(matrix)) - ops.sum(ops.square(ops.diagonal(matrix)))


def _std_and_cov_terms(x, batch, dim: int, eps: float):
    """Variance hinge and covariance penalty of one centred branch x of shape (batch, dim)."""
    # Unbiased (torch.var default) variance of the centred data: sum of squares / (B - 1).
    # keras.ops.var is the biased estimator, so it is not used here.
    var = ops.sum(ops.square(x), axis=0) / (batch - 1.0)
    std = ops.sqrt(var + eps)
    std_term = ops.mean(ops.relu(1.0 - std))
    cov = ops.matmul(ops.transpose(x), x) / (batch - 1.0)
    cov_term = off_diagonal_square_sum(cov) / float(dim)
    return std_term, cov_term


def vicreg_loss(z_a, z_b, sim_weight: float = 25.0, var_weight: float = 25.0,
                cov_weight: float = 1.0, gather: Gather | None = None, eps: float = 1e-4):
    """VICReg loss of two batches of projector outputs.

    Args:
      z_a: (b, D) embeddings of the first views (this replica's rows).
      z_b: (b, D) embeddings of the second views, row i paired with row i of `z_a`.
      sim_weight: weight of the invariance (MSE) term; vicreg's sim_coeff.
      var_weight: weight of the variance (std hinge) term; vicreg's std_coeff.
      cov_weight: weight of the covariance term; vicreg's cov_coeff.
      gather: callable mapping a per-replica (b, D) tensor to the global (B, D) batch; must be
        differentiable with an all-reduce backward (as `ReplicaContext.all_gather` is). None keeps
        the local batch, i.e. per-replica statistics.
      eps: added to the variance inside the square root.

    Returns:
      `(total, terms)`: the weighted float32 scalar loss and a dict of float32 scalars: the
      unweighted "invariance", "variance" and "covariance", and each as weighted in the total
      ("invariance_weighted", ...; they sum to `total`).

    Raises:
      ValueError: if the inputs are not matching 2-D batches or the (gathered) batch has fewer
        than 2 rows (the unbiased variance needs B >= 2).
    """
    _check_pair(z_a, z_b, "vicreg_loss")
    x, y = to_float32(z_a, z_b, gather)
    batch, dim = x.shape[0], x.shape[1]
    if batch is not None and batch < 2:
        raise ValueError(f"vicreg_loss: the (gathered) batch has {batch} row(s); the unbiased "
                         "variance needs at least 2. Use a larger batch_size.")
    # After a cross-replica gather the global batch may only be known at run time.
    batch_f = _num_rows(x)

    # The reference takes the MSE on the local batch before gathering; with equal per-replica
    # batches the global MSE is the mean of the local ones, so the gradients are identical.
    invariance = ops.mean(ops.square(x - y))

    x = x - ops.mean(x, axis=0, keepdims=True)
    y = y - ops.mean(y, axis=0, keepdims=True)
    std_x, cov_x = _std_and_cov_terms(x, batch_f, dim, eps)
    std_y, cov_y = _std_and_cov_terms(y, batch_f, dim, eps)
    variance = std_x / 2.0 + std_y / 2.0
    covariance = cov_x + cov_y

    total = sim_weight * invariance + var_weight * variance + cov_weight * covariance
    terms = {"invariance": invariance, "variance": variance, "covariance": covariance,
             "invariance_weighted": sim_weight * invariance,
             "variance_weighted": var_weight * variance,
             "covariance_weighted": cov_weight * covariance}
    return total, terms


# The terms the trainer logs (declared, so no dry run is needed to discover them).
vicreg_loss.term_names = ("invariance", "variance", "covariance", "invariance_weighted",
                          "variance_weighted", "covariance_weighted")
