"""float32 vs mixed_bfloat16 pre-training on this machine's CPU: speed and loss agreement.

    python bench/precision_cpu.py [--steps 24] [--batch 16] [--repeats 2] [--json-out F]

Runs `mssl_tf.train.pretrain` (the demo's VICReg encoder and projector, no augmentation, on
synthetic shards) for the same steps from the same seed in each precision, alternating the two
`--repeats` times in one invocation, each run in its own process. Reports pairs/s (steps after
the first two, which compile) and the largest relative difference between the two precisions'
per-step losses. This is the measurement behind `Runtime.precision = "auto"` choosing bfloat16 on
CPUs with AVX512-BF16/AMX (`mssl_tf.distribute.runtime.CPU_BF16_AUTO`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

WORKER = r"""
import json, sys, time
import keras
from mssl_tf import gin_utils
from mssl_tf.train import experiment
from mssl_tf.train.tensorboard import read_scalars
run, data, precision, steps, batch = sys.argv[1:6]
times = []
class Clock(keras.callbacks.Callback):
    def on_train_batch_end(self, b, logs=None):
        times.append(time.perf_counter())
gin_utils.parse(["experiments/demo_vicreg.gin"], [
    f"pretrain.data_dir = '{data}'", f"Runtime.precision = '{precision}'",
    f"pretrain.global_batch = {batch}", f"TrainLoop.max_steps = {steps}", "pretrain.epochs = 50",
    "pretrain.augmenter = None", "TrainLoop.log_every_steps = 1", "TrainLoop.progress = False",
    "TwoViewInput.seed = 0", "TrainLoop.collapse_monitors = False"])
keras.utils.set_random_seed(0)
experiment.pretrain(run, loop=experiment.TrainLoop(callbacks=(Clock(),)))
loss = [v for _, v in read_scalars(run + "/logs/train")["loss"]]
timed = times[2:]
rate = (len(timed) - 1) * int(batch) / (timed[-1] - timed[0])
print(json.dumps({"precision": precision, "pairs_per_s": rate, "loss": loss}))
"""


def main() -> None:
    """Runs the A/B and prints one JSON line per run and a summary line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json-out", default=None)
    args = parser.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        subprocess.run([sys.executable, "-c",
                        "import sys; from mssl_tf.data.synthetic import write_synthetic_dataset;"
                        "write_synthetic_dataset(sys.argv[1], num_tracks={'train': 64}, "
                        "seconds=2.0)", data], check=True, env=env)
        results = []
        for r in range(args.repeats):
            for precision in ("float32", "mixed_bfloat16"):
                run = os.path.join(tmp, f"run-{precision}-{r}")
                out = subprocess.run([sys.executable, "-c", WORKER, run, data, precision,
                                      str(args.steps), str(args.batch)], env=env, cwd=root,
                                     capture_output=True, text=True, check=True)
                line = json.loads(out.stdout.strip().splitlines()[-1])
                line["round"] = r
                results.append(line)
                print(json.dumps({k: v for k, v in line.items() if k != "loss"}), flush=True)
    f32 = [x for x in results if x["precision"] == "float32"]
    bf16 = [x for x in results if x["precision"] == "mixed_bfloat16"]
    rel = max(abs(a - b) / abs(a) for x, y in zip(f32, bf16)
              for a, b in zip(x["loss"], y["loss"]))
    summary = {"summary": True, "steps": args.steps, "batch": args.batch,
               "float32_pairs_per_s": [round(x["pairs_per_s"], 2) for x in f32],
               "bf16_pairs_per_s": [round(x["pairs_per_s"], 2) for x in bf16],
               "speedup": [round(y["pairs_per_s"] / x["pairs_per_s"], 2)
                           for x, y in zip(f32, bf16)],
               "max_rel_loss_diff": round(rel, 4),
               "final_loss_float32": [round(x["loss"][-1], 4) for x in f32],
               "final_loss_bf16": [round(x["loss"][-1], 4) for x in bf16]}
    print(json.dumps(summary))
    if args.json_out:
        with open(args.json_out, "a") as f:
            for line in results + [summary]:
                f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
