"""Helpers shared by the benchmarks: device descriptions, worker subprocesses, JSON lines.

Framework-free on import (no TensorFlow, JAX or torch at module level), so a benchmark can start
one worker process per backend and each worker imports only the framework it measures.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterable

#: Prefix of the one stdout line a worker process uses to hand its result to the parent.
RESULT_PREFIX = "BENCH_RESULT "


def cpu_description() -> str:
    """CPU model and the number of cores this process may run on, e.g. "Intel Xeon ... x2 cores"."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 0
    return f"cpu: {model} x{cores} cores"


def keras_device_description(backend: str) -> str:
    """The accelerator (or CPU) the given Keras backend computes on, already imported."""
    if backend == "jax":
        import jax
        dev = jax.devices()[0]
        if dev.platform == "cpu":
            return cpu_description()
        return f"{dev.platform}: {dev.device_kind} x{len(jax.devices())}"
    if backend == "tensorflow":
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            return f"gpu: {name} x{len(gpus)}"
        return cpu_description()
    return f"{backend}: unknown device"


def keras_peak_memory_gb(backend: str) -> float | None:
    """Peak accelerator memory of this process in GB where the backend reports it, else None."""
    try:
        if backend == "jax":
            import jax
            stats = jax.devices()[0].memory_stats() or {}
            peak = stats.get("peak_bytes_in_use")
        elif backend == "tensorflow":
            import tensorflow as tf
            if not tf.config.list_physical_devices("GPU"):
                return None
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        else:
            return None
    except (RuntimeError, ValueError, KeyError):
        return None
    return None if peak is None else round(peak / 1e9, 2)


def emit_result(result: dict) -> None:
    """Prints a worker's result as one tagged JSON line for the parent process."""
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_worker(argv: list[str], env_overrides: dict[str, str], timeout_s: float | None = None
               ) -> tuple[dict | None, str]:
    """Runs a worker command and returns (its result dict or None, the tail of its output).

    The worker's own output is passed through to stderr as it comes (compile logs, warnings),
    so a long benchmark shows progress; only the tagged line is parsed. A worker still running
    after `timeout_s` seconds is killed (its result is then None).
    """
    env = dict(os.environ)
    env.update(env_overrides)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYTHONUNBUFFERED", "1")
    found: list[dict] = []
    tail: list[str] = []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)

    def pump():
        for line in proc.stdout:
            if line.startswith(RESULT_PREFIX):
                found.append(json.loads(line[len(RESULT_PREFIX):]))
                continue
            tail.append(line)
            del tail[:-30]
            sys.stderr.write(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        tail.append(f"[killed after {timeout_s:.0f} s]\n")
    reader.join(timeout=10)
    if proc.returncode != 0:
        tail.append(f"[exit code {proc.returncode}]\n")
    return (found[-1] if found and proc.returncode == 0 else None), "".join(tail)


def write_json_lines(path: str | None, rows: Iterable[dict]) -> None:
    """Appends rows as JSON lines to `path` (nothing when path is None)."""
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def comma_list(text: str, cast=str) -> list:
    """Parses "a,b,c" into [cast(a), cast(b), cast(c)] (empty items dropped)."""
    return [cast(item.strip()) for item in str(text).split(",") if item.strip()]


def utc_stamp() -> str:
    """The current UTC time as 2026-01-31T12:00:00Z."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions(names: Iterable[str]) -> dict:
    """Installed versions of the given packages ("tensorflow" also finds tensorflow-cpu)."""
    from importlib import metadata
    out = {}
    for name in names:
        for dist in {"tensorflow": ("tensorflow", "tensorflow-cpu")}.get(name, (name,)):
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def add_ratios(row: dict, done: list[dict], match_keys: Iterable[str]) -> None:
    """Adds `ratio_vs_torch_<mode>` to a non-torch row from the torch rows in `done`.

    A torch row is a reference for `row` when every key of `match_keys` is equal in both; the
    ratio is row pairs/s over reference pairs/s (above 1: faster than the reference).
    """
    if row.get("backend") == "torch" or "pairs_per_s" not in row:
        return
    for ref in done:
        if (ref.get("backend") == "torch" and "pairs_per_s" in ref
                and all(ref.get(k) == row.get(k) for k in match_keys)):
            mode = ref["impl"].split("_", 1)[1]
            row[f"ratio_vs_torch_{mode}"] = round(row["pairs_per_s"] / ref["pairs_per_s"], 3)


def time_parts(parts: dict, warmup: int, reps: int, sync=lambda out: None) -> dict:
    """Median milliseconds of each zero-argument callable in `parts`.

    Each callable runs `warmup` times untimed, then `reps` times, each call timed up to
    `sync(output)` (which must wait for the device work of that output to finish).
    """
    medians = {}
    for name, fn in parts.items():
        for _ in range(warmup):
            sync(fn())
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            sync(fn())
            times.append(time.perf_counter() - start)
        times.sort()
        medians[name] = round(1000.0 * times[len(times) // 2], 1)
    return medians


# Learning rates only keep the benchmarked steps finite; speed does not depend on them.
LEARNING_RATES = {"sgd": 1e-3, "adam": 3e-4, "lars": 0.2}


def make_tracks(num_tracks: int, track_len: int, seed: int):
    """Synthetic int16 tracks (num_tracks, track_len): band-limited noise at music-like levels."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_tracks, track_len), dtype=np.float32)
    x[:, 1:] += 0.9 * x[:, :-1]  # some low-pass colour, so the clips are not white noise
    x *= 0.1 / x.std(axis=1, keepdims=True)
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
