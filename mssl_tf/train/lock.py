"""One run owns a run directory at a time: RUN/lock.json.

Local disks: an advisory `flock` on RUN/lock.json's companion file, held for the life of the
process, so the kernel releases it when the owner dies however it dies (kill -9 included);
lock.json only says who holds it. Object stores (gs://) have no such lock: the owner rewrites
lock.json with a heartbeat, and a lock whose heartbeat is older than `stale_after_s` belongs to
a dead owner and is taken over. Two starts within the same second on gs:// can still both win;
the heartbeat makes that window small, not empty.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import time

from mssl_tf import fileio, rundir

logger = logging.getLogger(__name__)

HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0


class RunLockedError(RuntimeError):
    """Another process holds the run directory."""


def _owner(command: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "user": _user(),
            "command": command, "started": time.time(), "heartbeat": time.time()}


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"


def describe(owner: dict | None) -> str:
    """A human description of a lock's owner."""
    if not owner:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return (f"pid {owner.get('pid', '?')} on {owner.get('host', '?')} "
            f"(user {owner.get('user', '?')}, started {started}: {owner.get('command', '?')})")


class RunLock:
    """Exclusive ownership of a run directory.

    Args:
      model_dir: the run directory.
      command: what the owner runs (shown to a refused second process).
      wait: seconds to wait for the lock (0: refuse at once; None: forever).
      stale_after_s: (gs://) a heartbeat older than this is a dead owner's.
      poll_s: seconds between tries while waiting.
    """

    def __init__(self, model_dir: str, command: str = "mssl-pretrain", wait: float | None = 0,
                 stale_after_s: float = STALE_AFTER_S, poll_s: float = 2.0):
        self.model_dir = model_dir
        self.path = rundir.path(model_dir, rundir.LOCK_JSON)
        self.command = command
        self.wait = wait
        self.stale_after_s = stale_after_s
        self.poll_s = poll_s
        self._fd: int | None = None
        self._owner: dict | None = None
        self._last_beat = 0.0

    def acquire(self) -> RunLock:
        """Takes the lock, waiting up to `wait` seconds; RunLockedError names the owner."""
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            if self._try_acquire():
                return self
            owner = self._read_owner()
            if deadline is not None and time.monotonic() >= deadline:
                raise RunLockedError(
                    f"{self.model_dir!r} is in use by {describe(owner)}. Two runs in one run "
                    "directory would interleave their history and backups. Wait for it to end, "
                    "pass --wait_for_lock to wait, or use another --model_dir. If that process "
                    f"is gone (a crashed host), delete {self.path}.")
            logger.info("Waiting for the run directory lock held by %s", describe(owner))
            time.sleep(self.poll_s)

    def _read_owner(self) -> dict | None:
        try:
            owner = fileio.read_json(self.path)
        except (FileNotFoundError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _try_acquire(self) -> bool:
        fileio.makedirs(self.model_dir)
        if fileio.is_remote(self.path):
            owner = self._read_owner()
            if owner and time.time() - float(owner.get("heartbeat", 0)) < self.stale_after_s:
                return False
            if owner:
                logger.warning("Taking over the stale lock of %s (no heartbeat for %.0f s)",
                               describe(owner), time.time() - float(owner.get("heartbeat", 0)))
        else:
            import fcntl  # noqa: PLC0415  (POSIX only; not needed for gs://)

            fd = os.open(self.path + ".flock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
        self._owner = _owner(self.command)
        fileio.write_json(self.path, self._owner)
        self._last_beat = time.monotonic()
        return True

    def heartbeat(self) -> None:
        """Refreshes the heartbeat (gs://) at most every HEARTBEAT_S seconds; cheap to call."""
        if self._owner is None or not fileio.is_remote(self.path):
            return
        if time.monotonic() - self._last_beat >= HEARTBEAT_S:
            self._owner["heartbeat"] = time.time()
            fileio.write_json(self.path, self._owner)
            self._last_beat = time.monotonic()

    def release(self) -> None:
        """Removes lock.json and drops the lock."""
        if self._owner is None:
            return
        fileio.remove(self.path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._owner = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
