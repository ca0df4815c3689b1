"""NT-Xent (normalised temperature-scaled cross entropy), as Spijkervet/SimCLR's `NT_Xent` in CLMR.

Reference semantics (simclr/modules/nt_xent.py): with N = 2B and z = concat(z_a, z_b), the logits
are the cosine similarities of all pairs divided by the temperature; the positive of row i is row
i +- B, the negatives are the other 2B - 2 rows; the cross entropy is summed over the N rows and
divided by N (the mean over both directions, half of google-research/simclr's value).

With `gather` the whole loss is computed on the gathered global batch, so the negatives come from
every replica and every replica computes the same value (CLMR itself hard-codes world_size=1, i.e.
negatives from the local batch only: that is `gather=None`). Computed in float32; the self-mask
uses a large finite constant in float32 (1e9 would overflow bf16/fp16).
"""

from __future__ import annotations

from keras import ops

from mssl_tf.losses.vicreg import Gather, _check_pair, _num_rows, to_float32

# torch.nn.CosineSimilarity's default eps: each norm is clamped to at least this.
COSINE_EPS = 1e-8
# Subtracted from the self-similarity logits; exp(-1e9) is exactly 0 in float32.
_LARGE_NUM = 1e9


def _l2_normalize_rows(z):
    """Divides each row by max(||row||, COSINE_EPS), as torch's cosine_similarity does."""
    norm = ops.sqrt(ops.sum(ops.square(z), axis=-1, keepdims=True))
    return z / ops.maximum(norm, COSINE_EPS)


def nt_xent_loss(z_a, z_b, temperature: float = 0.5, gather: Gather | None = None):
    """NT-Xent loss of two batches of projector outputs.

    Args:
      z_a: (b, D) embeddings of the first views (this replica's rows).
      z_b: (b, D) embeddings of the second views, row i paired with row i of `z_a`.
      temperature: softmax temperature (CLMR default 0.5).
      gather: callable mapping a per-replica (b, D) tensor to the global (B, D) batch,
        differentiable (e.g. `ReplicaContext.all_gather`). None = negatives from the local batch.

    Returns:
      `(total, terms)`: the float32 scalar loss and a dict of float32 scalars "nt_xent" (= total),
      "positive_cosine" (mean cosine of the positive pairs) and "negative_cosine" (mean cosine over
      all 2B(2B - 2) negative pairs).

    Raises:
      ValueError: if the inputs are not matching 2-D batches, the temperature is not positive, or
        the (gathered) batch has fewer than 2 rows (no negatives).
    """
    _check_pair(z_a, z_b, "nt_xent_loss")
    if not temperature > 0:
        raise ValueError(f"nt_xent_loss: temperature must be > 0, got {temperature}")
    z_a, z_b = to_float32(z_a, z_b, gather)
    batch = z_a.shape[0]
    if batch is not None and batch < 2:
        raise ValueError(f"nt_xent_loss: the (gathered) batch has {batch} row(s); NT-Xent needs "
                         "at least 2 pairs so that every row has negatives")

    a = _l2_normalize_rows(z_a)
    b = _l2_normalize_rows(z_b)
    z = ops.concatenate([a, b], axis=0)  # (N, D), N = 2B
    cosine = ops.matmul(z, ops.transpose(z))  # (N, N)
    # N may be dynamic after a cross-replica gather (inside tf.function), so the self-mask is
    # built from the runtime size; it is float32 on purpose.
    n = ops.shape(z)[0]
    n_f = _num_rows(z)
    logits = cosine / temperature - _LARGE_NUM * ops.eye(n, dtype="float32")

    # Positive of row i is row i +- B: the same cosine for row i of a and row i of b.
    positive_cosine_rows = ops.sum(a * b, axis=1)  # (B,)
    positive_logits = ops.concatenate([positive_cosine_rows, positive_cosine_rows]) / temperature
    # Cross entropy with the positive as label 0 among [positive, negatives] = logsumexp over all
    # non-self entries minus the positive logit.
    per_row = ops.logsumexp(logits, axis=1) - positive_logits
    total = ops.sum(per_row) / n_f

    positive_sum = ops.sum(positive_cosine_rows)
    self_sum = ops.sum(ops.square(z))  # the diagonal of `cosine`
    negative_cosine = (ops.sum(cosine) - self_sum - 2.0 * positive_sum) / (n_f * (n_f - 2.0))
    terms = {"nt_xent": total, "positive_cosine": 2.0 * positive_sum / n_f,
             "negative_cosine": negative_cosine}
    return total, terms


# The terms the trainer logs besides the loss ("nt_xent" is the loss itself).
nt_xent_loss.term_names = ("positive_cosine", "negative_cosine")
