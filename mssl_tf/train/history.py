"""RUN/history.csv: one row per finished epoch, written before the backup that claims it.

Rows carry the global optimizer step, so a resume drops the rows of steps after the state it
restores (a kill between the row and the backup, or a stop on a NaN), and the rerun writes them
again: the file never holds a step twice, nor a step no backup or snapshot has.
The whole file is rewritten atomically each epoch (a few hundred kB for thousands of epochs),
so it is never half-written, on local disks and on gs:// alike.
"""

from __future__ import annotations

import csv
import io
import math

from mssl_tf import fileio, rundir

FIRST_COLUMNS = ("epoch", "step", "loss")
LAST_COLUMNS = ("lr", "pairs_per_sec")


def _format(value) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class History:
    """The rows of RUN/history.csv, kept in memory and written whole."""

    def __init__(self, model_dir: str):
        self.path = rundir.path(model_dir, rundir.HISTORY_CSV)
        self.rows: list[dict[str, str]] = []
        if fileio.exists(self.path):
            self.rows = list(csv.DictReader(io.StringIO(fileio.read_text(self.path))))

    def truncate(self, step: int, write: bool = True) -> int:
        """Drops rows of steps after `step` (or, in files without a step column, all rows).

        Args:
          step: the restored step.
          write: rewrite the file too (the chief); other processes drop the rows in memory only,
            so that every process sees the same history.

        Returns:
          How many rows were dropped.
        """
        kept = [r for r in self.rows if r.get("step", "").isdigit() and int(r["step"]) <= step]
        dropped = len(self.rows) - len(kept)
        if dropped:
            self.rows = kept
            if write:
                self._write()
        return dropped

    def best_loss(self) -> float | None:
        """The lowest finite loss of the rows (for the divergence check after a resume)."""
        losses = []
        for row in self.rows:
            try:
                losses.append(float(row["loss"]))
            except (KeyError, ValueError):
                continue
        finite = [v for v in losses if math.isfinite(v)]
        return min(finite) if finite else None

    def append(self, row: dict) -> None:
        """Adds one epoch's row and rewrites the file."""
        self.rows.append({k: _format(v) for k, v in row.items()})
        self._write()

    def _columns(self) -> list[str]:
        seen = []
        for row in self.rows:
            seen.extend(k for k in row if k not in seen)
        middle = [k for k in seen if k not in FIRST_COLUMNS and k not in LAST_COLUMNS]
        return ([k for k in FIRST_COLUMNS if k in seen] + middle +
                [k for k in LAST_COLUMNS if k in seen])

    def _write(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self._columns(), restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        fileio.write_text(self.path, out.getvalue())
