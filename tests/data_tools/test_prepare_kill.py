"""A killed `mssl-prepare` leaves no process behind (decode workers, resource tracker).

Each test starts a real conversion with two decode workers, waits until its first shard is
finished (the worker pool is then running), stops the command the way a user or a scheduler
does, and polls, with a bound, that none of the processes it had started is still alive.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from data_tools import manifest as manifest_lib
from tests.data_tools import fixtures

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _children(pid):
    """Pids of every living descendant of `pid` (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid):
    """True while `pid` runs (a zombie, waiting for a reaper, has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _foreground_signals():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(tmp_path):
    audio_dir = os.path.join(str(tmp_path), "many")
    for i in range(40):
        fixtures.write_audio(os.path.join(audio_dir, f"{i:03d}.wav"), 3.0, 48000, 300.0 + i)
    out = str(tmp_path / "out")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # A file, not a pipe, for the output: a pipe kept open by a stray child would hang the test.
    log = open(os.path.join(str(tmp_path), "stderr.txt"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_tools.prepare", "folder", "--audio_dir", audio_dir,
         "--out", out, "--tracks_per_shard", "1", "--workers", "2", "--no_progress"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True,  # its own process group, as a shell gives a job
        # and Ctrl-C's default action, as a shell gives a foreground job: a test run started in
        # the background (`pytest ... &`) inherits SIGINT ignored, and so would the command.
        preexec_fn=_foreground_signals)
    log.close()
    progress = os.path.join(out, manifest_lib.PROGRESS_DIR)
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.isdir(progress) and any(n.endswith(".tfrecord.json")
                                           for n in os.listdir(progress)):
            break
        assert proc.poll() is None, open(log.name).read()
        time.sleep(0.01)
    else:
        proc.kill()
        raise AssertionError("no shard finished in time")
    children = _children(proc.pid)
    assert len(children) >= 2, "the decode workers are not running"
    return proc, children


def _assert_all_gone(proc, children, timeout=20.0):
    proc.wait(timeout=60)
    deadline = time.time() + timeout
    while time.time() < deadline and any(_alive(p) for p in children):
        time.sleep(0.1)
    left = [p for p in children if _alive(p)]
    for pid in left:  # do not leave them to the next test
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind after {timeout:.0f} s: {left}"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "Ctrl-C"])
def test_stopped_conversion_leaves_no_process(tmp_path, how):
    proc, children = _start(tmp_path)
    if how == "Ctrl-C":  # a terminal sends SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    else:  # a scheduler or `timeout` signals the command only
        os.kill(proc.pid, getattr(signal, how))
    _assert_all_gone(proc, children)
    if how == "Ctrl-C":
        assert proc.returncode == 130
    if how == "SIGTERM":  # handled like Ctrl-C: finished shards kept, no temporary file
        assert proc.returncode == 143
        out = os.path.join(str(tmp_path), "out")
        assert not [n for n in os.listdir(out) if n.endswith(".incomplete")]
