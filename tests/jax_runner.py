"""The one way tests run code on the JAX backend: a fresh Python process (Keras' backend is fixed
at import, and this test process runs on TensorFlow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_jax(code: str, *args: str, devices: int = 1, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs `code` (with `args` in sys.argv[1:]) under KERAS_BACKEND=jax on `devices` CPU devices.

    Raises:
      AssertionError: the process failed (with the end of its stderr).
    """
    run_env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
                   TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run_env.update(env or {})
    if devices > 1:
        run_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=run_env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def last_json(proc: subprocess.CompletedProcess) -> dict:
    """The JSON object a script printed on its last line."""
    return json.loads(proc.stdout.strip().splitlines()[-1])
