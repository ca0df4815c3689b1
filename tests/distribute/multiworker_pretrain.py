"""Worker of the end-to-end multi-process pre-training tests: `mssl-pretrain` in one process.

Run as a script, once per process, by tests/distribute/test_multiworker_pretrain.py:

    python multiworker_pretrain.py MODEL_DIR DATA_DIR KILL_AT_STEP

It parses experiments/smoke.gin as `mssl-pretrain` does and calls `experiment.pretrain` on the
shared MODEL_DIR. KERAS_BACKEND and the cluster variables (TF_CONFIG, or MSSL_COORDINATOR/
MSSL_NUM_PROCESSES/MSSL_PROCESS_ID) make it one worker of a cluster. KILL_AT_STEP > 0: the
process kills itself (SIGKILL) when the optimizer is about to take that step (0: never).

Every write of this process under MODEL_DIR is recorded (a Python audit hook on open/rename/
replace/remove/mkdir/copy, plus TensorFlow summary writers, which write from C++), and the last
line of stdout is a JSON object: {"final_step", "is_chief", "writes": [paths under MODEL_DIR]}.
"""

import json
import os
import signal
import sys

model_dir, data_dir, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
ROOT = os.path.realpath(model_dir)
WRITES: set[str] = set()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _note(path) -> None:
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return
    if real == ROOT or real.startswith(ROOT + os.sep):
        WRITES.add(os.path.relpath(real, ROOT))


def _audit(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        if isinstance(path, (str, bytes)) and (
                (isinstance(mode, str) and any(c in mode for c in "wax+"))
                or (mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)):
            _note(path)
    elif event in ("os.rename", "os.replace", "shutil.copyfile", "shutil.move"):
        _note(args[1])
    elif event in ("os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree"):
        _note(args[0])


sys.addaudithook(_audit)

import keras  # noqa: E402

from mssl_tf import gin_utils  # noqa: E402
from mssl_tf.train import experiment  # noqa: E402


class KillAt(keras.callbacks.Callback):
    """SIGKILL before optimizer step `kill_at` (the backups of the steps before it are done)."""

    def on_train_batch_begin(self, batch, logs=None):
        if kill_at and int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) + 1 \
                == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        create = tf.summary.create_file_writer

        def recorded_writer(logdir, *args, **kwargs):
            _note(logdir)
            return create(logdir, *args, **kwargs)

        tf.summary.create_file_writer = recorded_writer
    gin_utils.parse(["experiments/smoke.gin"], [f"pretrain.data_dir = '{data_dir}'",
                    "TrainLoop.progress = False", "TrainLoop.log_every_steps = 1"],
                    model_dir=model_dir)
    result = experiment.pretrain(model_dir, loop=experiment.TrainLoop(callbacks=(KillAt(),)))
    from mssl_tf.distribute import cluster  # noqa: PLC0415

    print(json.dumps({"final_step": int(result["step"]), "is_chief": cluster.is_chief(),
                      "writes": sorted(WRITES)}), flush=True)


if __name__ == "__main__":
    main()
