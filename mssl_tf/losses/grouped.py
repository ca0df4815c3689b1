"""Objectives computed within fixed-size groups of the global batch (the thesis' per-core losses).

The thesis trained on a TPU v3-8 with PyTorch/XLA and no cross-core gather: each of the 8 cores
took VICReg's statistics (variance, covariance) and NT-Xent's negatives from its own 1/8 of the
global batch (96 rows at 768, 32 at 256), and the cores' gradients were averaged, so the loss
minimised was the mean of 8 per-core losses. `grouped` reproduces that on any number of devices:
the global batch is gathered, cut into consecutive groups of `group_size` rows (group k = rows
[k*g, (k+1)*g), the rows core k held) and the objective is averaged over the groups. Since the
groups are formed from the gathered global batch, the value and the gradients do not depend on
how many replicas the batch is spread over.

Cost: every replica computes all groups of the global batch (as with global statistics, where
every replica computes the loss on the gathered batch): G = B / g losses of g rows, e.g. for
VICReg at 768 / 96 eight (8192 x 8192) covariance matrices per branch instead of one, about
2 GiB of float32 per branch; NT-Xent's similarity matrices shrink (G blocks of (2g)^2 instead of
(2B)^2).
"""

from __future__ import annotations

from collections.abc import Callable

from keras import ops

from mssl_tf.losses.vicreg import Gather, to_float32


def check_group_size(batch: int, group_size: int, what: str = "the global batch") -> int:
    """Number of groups of `group_size` rows in `batch`; raises ValueError when it does not divide.

    Args:
      batch: rows to split.
      group_size: rows per group (the thesis' per-core batch).
      what: how to name `batch` in the message.
    """
    if group_size < 2:
        raise ValueError(f"stats_group_size must be >= 2 (statistics and negatives need two rows), "
                         f"got {group_size}")
    if batch % group_size:
        raise ValueError(f"{what} ({batch} rows) is not a multiple of stats_group_size="
                         f"{group_size}; choose a global batch that is a multiple of the group "
                         "size (the thesis' TPU v3-8: 8 groups, e.g. 768 = 8 x 96, 256 = 8 x 32)")
    return batch // group_size


def grouped(loss_fn: Callable, group_size: int) -> Callable:
    """Wraps an objective so it is computed within consecutive groups of rows and averaged.

    Args:
      loss_fn: `(z_a, z_b, gather=..., **kwargs) -> (total, terms)`, e.g. `vicreg_loss`.
      group_size: rows per group (per-core batch of the emulated hardware).

    Returns:
      An objective with the same signature. `gather` (if given) is applied first, so the groups
      are cut from the global batch; `total` and every term are the means over the groups.
    """
    if int(group_size) < 2:
        check_group_size(group_size, group_size)
    group_size = int(group_size)

    def grouped_loss(z_a, z_b, gather: Gather | None = None, **kwargs):
        dim = z_a.shape[-1]
        z_a, z_b = to_float32(z_a, z_b, gather)
        if z_a.shape[0] is not None:
            check_group_size(z_a.shape[0], group_size)
        za = ops.reshape(z_a, (-1, group_size, dim))
        zb = ops.reshape(z_b, (-1, group_size, dim))
        num_groups = za.shape[0]
        if num_groups is not None:
            # Known number of groups: one call per group, the plainest graph on every backend.
            results = [loss_fn(za[k], zb[k], gather=None, **kwargs) for k in range(num_groups)]
            total = ops.mean(ops.stack([r[0] for r in results]))
            terms = {name: ops.mean(ops.stack([r[1][name] for r in results]))
                     for name in results[0][1]}
            return total, terms
        # The gathered batch is dynamic inside tf.function: map over the groups instead.
        total, terms = ops.vectorized_map(
            lambda pair: loss_fn(pair[0], pair[1], gather=None, **kwargs), (za, zb))
        return ops.mean(total), {name: ops.mean(v) for name, v in terms.items()}

    grouped_loss.__name__ = f"grouped_{getattr(loss_fn, '__name__', 'loss')}"
    grouped_loss.term_names = tuple(getattr(loss_fn, "term_names", ()))
    grouped_loss.group_size = group_size
    grouped_loss.loss_fn = loss_fn
    return grouped_loss
