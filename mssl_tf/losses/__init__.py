"""Self-supervised objectives: pure functions of two embedding batches returning (total, terms).

An objective is called as `fn(z_a, z_b, gather=...)` and returns `(total, terms)`; its attribute
`term_names` lists the entries of `terms` the trainer logs (history.csv, TensorBoard). Training
picks the objective by gin reference (`pretrain.loss_fn = @vicreg_loss` or `@nt_xent_loss`);
`get_loss` looks one up by name for scripts and tests.
"""

from __future__ import annotations

from collections.abc import Callable

from mssl_tf.losses.grouped import check_group_size, grouped
from mssl_tf.losses.ntxent import nt_xent_loss
from mssl_tf.losses.vicreg import vicreg_loss

LOSSES: dict[str, Callable] = {"vicreg": vicreg_loss, "ntxent": nt_xent_loss}


def get_loss(name: str) -> Callable:
    """Returns the objective registered under `name`.

    Args:
      name: one of the keys of `LOSSES` ("vicreg", "ntxent").

    Returns:
      The loss function, called as `fn(z_a, z_b, ..., gather=...)` -> `(total, terms)`.

    Raises:
      ValueError: if the name is unknown; the message lists the valid names.
    """
    try:
        return LOSSES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {name!r}; valid names: {sorted(LOSSES)}") from None


__all__ = ["LOSSES", "check_group_size", "get_loss", "grouped", "nt_xent_loss", "vicreg_loss"]
