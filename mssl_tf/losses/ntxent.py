"""NT-Xent (normalised temperature-scaled cross entropy), as Spijkervet/SimCLR's `NT_Xent` in CLMR.

Reference semantics (simclr/modules/nt_xent.py): with N = 2B and z = concat(z_a, z_b), the logits are
the cosine similarities of all pairs divided by the temperature; the positive of row i is row
i +- B, the negatives are the other 2B - 2 rows; the cross entropy is summed over the N rows and
divided by N (the mean over both directions, half of google-research/simclr's value).

With `gather` the whole loss is computed on the gathered global batch, so the negatives come from
every replica and every replica computes the same value (CLMR itself hard-codes world_size=1, i.e.
negatives from the local batch only: that is `gather=None`). Computed in float32; the self-mask
uses a large finite constant in float32 (1e9 would overflow bf16/fp16).
"""

from __future__ import annotations

from keras import ops

from mssl_tf.losses.vicreg import Gather, _check_pair, _to_float32

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
    z_a, z_b = _to_float32(z_a, z_b, gather)
    batch = z_a.shape[0]
    if batch is None:
        raise ValueError("nt_xent_loss: the (gathered) batch size must be static; batch the "
                         "dataset with drop_remainder=True")
    if batch < 2:
        raise ValueError(f"nt_xent_loss: the (gathered) batch has {batch} row(s); NT-Xent needs "
                         "at least 2 pairs so that every row has negatives")
    n = 2 * batch

    z = _l2_normalize_rows(ops.concatenate([z_a, z_b], axis=0))
    cosine = ops.matmul(z, ops.transpose(z))  # (N, N)

    # Positive of row i is row (i + B) mod N; masks are built in float32 on purpose.
    eye = ops.eye(n, dtype="float32")
    positive_mask = ops.roll(eye, batch, axis=1)
    negative_mask = 1.0 - eye - positive_mask

    logits = cosine / temperature - _LARGE_NUM * eye
    positive_logits = ops.sum(logits * positive_mask, axis=1)
    # Cross entropy with the positive as label 0 among [positive, negatives] = logsumexp over all
    # non-self entries minus the positive logit.
    per_row = ops.logsumexp(logits, axis=1) - positive_logits
    total = ops.sum(per_row) / float(n)

    positive_cosine = ops.sum(cosine * positive_mask) / float(n)
    negative_cosine = ops.sum(cosine * negative_mask) / float(n * (n - 2))
    terms = {"nt_xent": total, "positive_cosine": positive_cosine,
             "negative_cosine": negative_cosine}
    return total, terms
