"""RunLock: one process owns a run directory; others are refused (naming it) or wait."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from mssl_tf import fileio
from mssl_tf.train import lock as lock_lib
from mssl_tf.train.lock import RunLock, RunLockedError

HOLDER = textwrap.dedent("""
    import sys, time
    from mssl_tf.train.lock import RunLock
    with RunLock(sys.argv[1], command="holder-process"):
        print("LOCKED", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _start_holder(model_dir, seconds):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, model_dir, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "LOCKED"
    return proc


def test_second_owner_is_refused_with_the_owner_named(tmp_path):
    run = str(tmp_path / "run")
    holder = _start_holder(run, 60)
    try:
        with pytest.raises(RunLockedError, match=rf"in use by pid {holder.pid} .*holder-process"
                                                 r".*--wait_for_lock"):
            RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_killed_owner_leaves_no_lock(tmp_path):
    run = str(tmp_path / "run")
    holder = _start_holder(run, 60)
    holder.kill()  # SIGKILL: no cleanup ran, lock.json is still there
    holder.wait(timeout=30)
    assert os.path.exists(os.path.join(run, "lock.json"))
    with RunLock(run) as lock:
        assert json.load(open(lock.path))["pid"] == os.getpid()
    assert not os.path.exists(os.path.join(run, "lock.json"))


def test_waiting_for_the_lock(tmp_path):
    run = str(tmp_path / "run")
    holder = _start_holder(run, 2)
    try:
        t0 = time.monotonic()
        with RunLock(run, wait=60, poll_s=0.2):
            waited = time.monotonic() - t0
        assert 0.5 < waited < 30
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()


def test_object_store_lock_uses_a_heartbeat(tmp_path, monkeypatch):
    """On gs:// (no flock) a fresh heartbeat refuses, a stale one is taken over."""
    monkeypatch.setattr(lock_lib.fileio, "is_remote", lambda path: True)
    run = str(tmp_path / "run")
    fileio.makedirs(run)
    owner = {"host": "other-host", "pid": 4242, "command": "mssl-pretrain", "started": time.time(),
             "heartbeat": time.time()}
    fileio.write_json(os.path.join(run, "lock.json"), owner)
    with pytest.raises(RunLockedError, match="pid 4242 on other-host"):
        RunLock(run, stale_after_s=600).acquire()
    owner["heartbeat"] = time.time() - 3600
    fileio.write_json(os.path.join(run, "lock.json"), owner)
    with RunLock(run, stale_after_s=600) as lock:
        assert fileio.read_json(lock.path)["pid"] == os.getpid()


def test_pretrain_refuses_a_run_directory_in_use(tmp_path):
    """Two mssl-pretrain on one --model_dir: the second is refused before it writes anything."""
    from mssl_tf import gin_utils
    from mssl_tf.data.synthetic import write_synthetic_dataset
    from mssl_tf.train import experiment

    data = str(tmp_path / "data")
    write_synthetic_dataset(data, num_tracks={"train": 8}, seconds=0.3)
    run = str(tmp_path / "run")
    holder = _start_holder(run, 60)
    try:
        gin_utils.parse(["experiments/smoke.gin"], [f"pretrain.data_dir = '{data}'",
                                                     "TrainLoop.progress = False"])
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            experiment.pretrain(run)
        assert sorted(os.listdir(run)) == ["lock.json", "lock.json.flock"]
    finally:
        holder.kill()
        holder.wait(timeout=30)
