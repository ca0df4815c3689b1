"""SSLModel: two-view self-supervised pre-training as a keras.Model (any backend).

`call` augments each view independently, encodes and projects them; `compute_loss` applies the
objective on the global batch (through the injected collectives) and logs every term and two
collapse monitors. Keras' own train step does the rest (gradients, optimizer, mixed precision),
so the same model trains under tf.distribute (TPU, GPUs, CPU) and under JAX's DataParallel.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from mssl_tf.losses.grouped import grouped

VIEW_KEYS = ("view_a", "view_b")


class LocalCollectives:
    """Single device, or JAX DataParallel (where the loss already sees the global batch)."""

    def gather(self, x):
        """Identity."""
        return x

    def scale_loss(self, loss):
        """Identity."""
        return loss


def effective_rank(h, eps: float = 1e-7):
    """Effective rank (Roy & Vetterli 2007) of a batch of representations `(B, D)`.

    exp(entropy of the normalised singular values of the centred batch): D for isotropic
    features, 1 for features on a line. A fall during training is dimensional collapse.
    NaN when `h` holds a non-finite value, so a diverging run reaches the trainer's guard
    instead of failing inside the eigendecomposition.
    """
    h = ops.cast(h, "float32")
    finite = ops.all(ops.isfinite(h))
    h = ops.where(ops.isfinite(h), h, 0.0)
    h = h - ops.mean(h, axis=0, keepdims=True)
    # The rank is scale-invariant; dividing by the largest entry keeps the Gram matrix finite
    # for huge (diverging) activations, whose squares overflow float32.
    h = h / ops.maximum(ops.max(ops.abs(h)), 1e-30)
    # The nonzero eigenvalues of h^T h (D x D) and h h^T (B x B) are the same squared singular
    # values (zeros add nothing to the entropy), so decompose the smaller one: a batch of 256
    # 512-d features needs a 256 x 256 eigh, a quarter of the work, every training step.
    batch, dim = h.shape[0], h.shape[-1]
    if batch is not None and dim is not None and batch < dim:
        gram = ops.matmul(h, ops.transpose(h))
    else:
        gram = ops.matmul(ops.transpose(h), h)
    eig = ops.eigh(gram)[0]
    s = ops.sqrt(ops.maximum(eig, 0.0))
    p = s / (ops.sum(s) + eps)
    rank = ops.exp(-ops.sum(p * ops.log(p + eps)))
    return ops.where(finite, rank, float("nan"))


def mean_std(h):
    """Mean over dimensions of the batch standard deviation of the l2-normalised features.

    About 1/sqrt(D) when features spread over the sphere, 0 at complete collapse.
    """
    h = ops.cast(h, "float32")
    h = h / (ops.norm(h, axis=1, keepdims=True) + 1e-12)
    return ops.mean(ops.std(h, axis=0))


class SSLModel(keras.Model):
    """Encoder + projector trained with a two-view objective.

    Args:
      encoder: maps `(batch, crop_len)` waveforms to `(batch, rep_dim)`.
      projector: maps representations to embeddings.
      loss_fn: objective `(z_a, z_b, gather=...) -> (total, terms)`, e.g.
        `mssl_tf.losses.vicreg_loss`; extra arguments come from `loss_kwargs`. The entries of
        `terms` named by its `term_names` attribute are logged (none when it has none).
      loss_kwargs: keyword arguments of `loss_fn` (weights, temperature).
      augmenter: a layer applied to each view independently with `training=True`; None = none.
      collectives: object with `gather(x)` and `scale_loss(loss)`; None = `LocalCollectives`.
        The TensorFlow trainer passes `mssl_tf.distribute.TFCollectives()`.
      global_stats: statistics and negatives over the global batch (facebookresearch/vicreg) or,
        False, per replica (what the thesis' TPU code did: no gather).
      stats_groups: with global_stats=False on a backend whose loss sees the global batch (JAX),
        split the batch into this many groups (= devices) and average the per-group losses.
      stats_group_size: rows per statistics group, independent of the device count (the
        thesis' TPU v3-8: the per-core batch, 96 at 768 and 32 at 256). The global batch is
        gathered and cut into consecutive groups of this size; VICReg's statistics and NT-Xent's
        negatives are taken within each group and the objective is averaged over the groups
        (`mssl_tf.losses.grouped`). None = one group (global statistics, or per replica when
        global_stats=False). Takes precedence over global_stats and stats_groups.
      collapse_monitors: log `rep_std` and `rep_rank` of the encoder output every step.
    """

    def __init__(self, encoder: keras.Model, projector: keras.Model, loss_fn: Callable,
                 loss_kwargs: dict | None = None, augmenter: keras.layers.Layer | None = None,
                 collectives=None, global_stats: bool = True, stats_groups: int = 1,
                 stats_group_size: int | None = None, collapse_monitors: bool = True,
                 name: str = "ssl_model", **kwargs):
        super().__init__(name=name, **kwargs)
        self.encoder = encoder
        self.projector = projector
        self.augmenter = augmenter
        self.loss_fn = loss_fn
        self.loss_kwargs = dict(loss_kwargs or {})
        self.collectives = collectives or LocalCollectives()
        self.global_stats = global_stats
        self.stats_groups = int(stats_groups)
        self.stats_group_size = int(stats_group_size) if stats_group_size else None
        self._grouped_loss = (grouped(loss_fn, self.stats_group_size)
                              if self.stats_group_size else None)
        self.collapse_monitors = collapse_monitors
        # Trackers held in dicts are tracked by Keras (they appear in `self.metrics` and are
        # reset every epoch); the objective declares its terms, so they exist before tracing.
        self.term_names = list(getattr(loss_fn, "term_names", ()))
        self.term_trackers = {k: keras.metrics.Mean(name=k) for k in self.term_names}
        self.monitor_trackers = {}
        if collapse_monitors:
            self.monitor_trackers = {"rep_std": keras.metrics.Mean(name="rep_std"),
                                     "rep_rank": keras.metrics.Mean(name="rep_rank")}

    def call(self, inputs, training=False):
        """Returns {"h_a", "h_b", "z_a", "z_b"} for inputs {"view_a", "view_b"}."""
        out = {}
        for key, suffix in zip(VIEW_KEYS, ("a", "b")):
            view = ops.cast(inputs[key], "float32")
            if self.augmenter is not None:
                view = self.augmenter(view, training=training)
            h = self.encoder(view, training=training)
            out[f"h_{suffix}"] = h
            out[f"z_{suffix}"] = self.projector(h, training=training)
        return out

    def _objective(self, z_a, z_b):
        if self._grouped_loss is not None:
            # Groups are cut from the gathered global batch: the same on any replica count.
            return self._grouped_loss(z_a, z_b, gather=self.collectives.gather,
                                      **self.loss_kwargs)
        if self.global_stats:
            return self.loss_fn(z_a, z_b, gather=self.collectives.gather, **self.loss_kwargs)
        if self.stats_groups <= 1:
            return self.loss_fn(z_a, z_b, gather=None, **self.loss_kwargs)
        # Per-replica statistics on a backend that sees the global batch: split into groups.
        g = self.stats_groups
        za = ops.reshape(z_a, (g, -1, ops.shape(z_a)[-1]))
        zb = ops.reshape(z_b, (g, -1, ops.shape(z_b)[-1]))
        results = [self.loss_fn(za[i], zb[i], gather=None, **self.loss_kwargs) for i in range(g)]
        total = sum(r[0] for r in results) / g
        terms = {k: sum(r[1][k] for r in results) / g for k in results[0][1]}
        return total, terms

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Objective on the (global) batch, scaled by 1/replicas for the gradient sum."""
        total, terms = self._objective(y_pred["z_a"], y_pred["z_b"])
        for k, tracker in self.term_trackers.items():
            tracker.update_state(terms[k])
        if self.monitor_trackers:
            h = self.collectives.gather(ops.stop_gradient(y_pred["h_a"]))
            self.monitor_trackers["rep_std"].update_state(mean_std(h))
            self.monitor_trackers["rep_rank"].update_state(effective_rank(h))
        return self.collectives.scale_loss(ops.cast(total, "float32"))

    def build_from_views(self, crop_len: int, batch: int = 2) -> None:
        """Creates every variable by calling the model once on zeros (inference mode)."""
        zeros = np.zeros((batch, crop_len), "float32")
        self({"view_a": zeros, "view_b": zeros}, training=False)
