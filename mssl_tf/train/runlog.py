"""RUN/train.log: the INFO lines of every start and resume of a run, appended.

Local files are appended line by line. Object stores (gs://) cannot append, so there the lines
are buffered and the file rewritten (old content + new lines) at each `flush()`: at every epoch
end and when the run stops.
"""

from __future__ import annotations

import logging

from mssl_tf import fileio, rundir

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RunLogHandler(logging.Handler):
    """A logging handler writing to RUN/train.log (local or gs://)."""

    def __init__(self, model_dir: str, level: int = logging.INFO):
        super().__init__(level)
        self.path = rundir.path(model_dir, rundir.TRAIN_LOG)
        self.setFormatter(logging.Formatter(FORMAT))
        self._remote = fileio.is_remote(self.path)
        self._pending: list[str] = []
        self._file = None if self._remote else open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:  # noqa: BLE001  logging must never break training
            self.handleError(record)
            return
        if self._file is not None:
            self._file.write(line)
            self._file.flush()
        else:
            self._pending.append(line)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
        elif self._pending:
            old = fileio.read_text(self.path) if fileio.exists(self.path) else ""
            fileio.write_text(self.path, old + "".join(self._pending))
            self._pending = []

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


class RunLog:
    """Attaches a RunLogHandler to the `mssl_tf` loggers for the life of a run (a context)."""

    def __init__(self, model_dir: str, enabled: bool = True):
        self.model_dir = model_dir
        self.enabled = enabled
        self.handler: RunLogHandler | None = None
        self._logger = logging.getLogger("mssl_tf")
        self._old_level = self._logger.level
        self._quieted: list[tuple[logging.Handler, int]] = []

    def __enter__(self) -> RunLog:
        if self.enabled:
            self.handler = RunLogHandler(self.model_dir)
            self._logger.addHandler(self.handler)
            level = self._logger.getEffectiveLevel()
            if level > logging.INFO:
                # train.log wants INFO even when the console was asked for less: lower the
                # logger, and hold the console's handlers at the level they had in effect.
                for handler in logging.getLogger().handlers:
                    if handler.level < level:
                        self._quieted.append((handler, handler.level))
                        handler.setLevel(level)
                self._logger.setLevel(logging.INFO)
        return self

    def note(self, title: str, text: str) -> None:
        """Writes a block (e.g. the resolved config) to train.log only, not to the console."""
        if self.handler is not None:
            self.handler.emit(logging.LogRecord("mssl_tf", logging.INFO, __file__, 0,
                                                f"{title}:\n{text.rstrip()}", None, None))

    def flush(self) -> None:
        """Writes buffered lines (gs://)."""
        if self.handler is not None:
            self.handler.flush()

    def __exit__(self, *exc) -> None:
        if self.handler is not None:
            self._logger.removeHandler(self.handler)
            self.handler.close()
            self.handler = None
        self._logger.setLevel(self._old_level)
        for handler, level in self._quieted:
            handler.setLevel(level)
        self._quieted = []
