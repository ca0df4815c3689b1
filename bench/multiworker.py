"""Scaling over processes: pairs/s of the pre-training step with 1 and with 2 worker processes.

    python bench/multiworker.py [--backend tensorflow,jax] [--objective ntxent]
        [--global-batch 32] [--steps 6] [--warmup 2] [--projector 512-128] [--json-out F]

Three configurations per backend, in this order, in the same invocation:

- `1proc_1core`: one process pinned to one core (the per-core reference);
- `1proc_all`: one process on every core the benchmark may use;
- `2proc_1core`: two processes on 127.0.0.1, one core each, one replica each, as one job
  (TensorFlow: MultiWorkerMirroredStrategy from TF_CONFIG, gradients all-reduced over gRPC;
  JAX: jax.distributed + DataParallel, collectives over gloo). Statistics and negatives over
  the global batch, gathered across the processes.

Every configuration trains the same SSLModel (full SampleCNN, projector, objective, optimizer)
on the same global batch of in-memory clips (no augmentation, no input pipeline: the step and
its communication are measured). `scaling` = 2proc pairs/s over 1proc_1core pairs/s (2.0 is
linear; the pairs/s of two processes is that of the one whose clock started last, after a
barrier); `vs_1proc_all` compares two processes with one process using the same cores.

Caveats: on one 2-core machine the two "hosts" share memory bandwidth and caches, the loopback
network is faster than any real one, and other work on the machine moves bare numbers; only
ratios within one invocation mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402

CROP_LEN = 59049
# --tiny (tests): a 4-block SampleCNN on 243-sample clips.
TINY_CROP_LEN = 243
TINY_WIDTHS = (8, 8, 16, 16)


# Process layouts, in the order they run: one process pinned to one core, one process on every
# core, two processes pinned to one core each.
CONFIGS = ("1proc_1core", "1proc_all", "2proc_1core")


def _pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


def worker(args) -> None:
    """One process of one configuration: build, warm up, time `args.steps` steps, emit a row."""
    _pin(args.core)
    if args.core is not None:
        # One core: one thread per pool (TF and XLA would otherwise start one per visible CPU).
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
    import keras
    import numpy as np

    from mssl_tf import distribute, losses
    from mssl_tf.models import SSLModel, build_projector, build_sample_cnn

    backend = keras.backend.backend()
    if backend == "tensorflow" and args.core is not None:
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    strategy = distribute.get_strategy()
    processes = int(os.environ.get(common_env("PROCESSES"), "1"))
    index = int(os.environ.get(common_env("INDEX"), "0"))
    per_process = args.global_batch // processes
    crop_len, widths, rep_dim = (TINY_CROP_LEN, TINY_WIDTHS, 8) if args.tiny else (
        CROP_LEN, None, 512)
    rng = np.random.default_rng(index)
    views = {k: rng.uniform(-1, 1, (per_process, crop_len)).astype("float32")
             for k in ("view_a", "view_b")}

    def build():
        keras.utils.set_random_seed(0)
        encoder = (build_sample_cnn(rep_dim, crop_len=crop_len, widths=widths) if widths
                   else build_sample_cnn(rep_dim, crop_len=crop_len))
        kind = "vicreg" if args.objective == "vicreg" else "clmr"
        projector = build_projector(kind, "16-8" if args.tiny else args.projector, rep_dim)
        model = SSLModel(encoder, projector, losses.get_loss(args.objective),
                         collectives=distribute.TFCollectives() if backend == "tensorflow"
                         else None)
        model.compile(optimizer=keras.optimizers.SGD(1e-3))
        model.build_from_views(crop_len)
        return model

    if backend == "tensorflow":
        import tensorflow as tf
        with strategy.scope():
            model = build()

        def make_dataset(ctx):
            batch = ctx.get_per_replica_batch_size(args.global_batch)
            return tf.data.Dataset.from_tensors({k: v[:batch] for k, v in views.items()}).repeat()

        data = strategy.distribute_datasets_from_function(make_dataset)

        def run(steps):
            model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)

        def barrier():
            # A cross-worker all-reduce: no worker starts its clock while another still compiles.
            strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
    else:
        model = build()
        tiled = {k: np.concatenate([v] * max(args.steps, args.warmup)) for k, v in views.items()}

        def run(steps):
            part = {k: v[:steps * per_process] for k, v in tiled.items()}
            model.fit(part, batch_size=per_process, epochs=1, verbose=0, shuffle=False)

        def barrier():
            if processes > 1:
                from jax.experimental import multihost_utils
                multihost_utils.sync_global_devices("mssl_bench_start")

    run(args.warmup)  # compilation, first collectives
    barrier()
    start = time.perf_counter()
    run(args.steps)
    seconds = time.perf_counter() - start
    common.emit_result({
        "backend": backend, "objective": args.objective, "global_batch": args.global_batch,
        "processes": processes, "index": index, "replicas": distribute.num_replicas(strategy),
        "pinned_core": args.core, "steps": args.steps,
        "step_ms": round(1000 * seconds / args.steps, 1),
        "pairs_per_s": round(args.global_batch * args.steps / seconds, 2),
        "device": common.cpu_description()})


def common_env(name: str) -> str:
    return f"MSSL_BENCH_{name}"


def _command(args, core: int | None) -> list[str]:
    argv = [sys.executable, os.path.abspath(__file__), "--worker", "--objective", args.objective,
            "--global-batch", str(args.global_batch), "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--projector", args.projector]
    argv += ["--tiny"] if args.tiny else []
    return argv + (["--core", str(core)] if core is not None else [])


def run_config(args, backend: str, name: str, cores: list[int | None]) -> dict | None:
    """Runs one configuration (one process per entry of `cores`) and returns the chief's row."""
    from mssl_tf.distribute import cluster

    base = {"KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu",
            common_env("PROCESSES"): str(len(cores))}
    envs = []
    ports = cluster.free_ports(len(cores)) if len(cores) > 1 else []
    for i in range(len(cores)):
        env = dict(base, **{common_env("INDEX"): str(i)})
        if len(cores) > 1 and backend == "tensorflow":
            env["TF_CONFIG"] = cluster.local_tf_config(ports, i)
        if len(cores) > 1 and backend == "jax":
            env.update({cluster.ENV_COORDINATOR: f"127.0.0.1:{ports[0]}",
                        cluster.ENV_NUM_PROCESSES: str(len(cores)),
                        cluster.ENV_PROCESS_ID: str(i)})
        envs.append(env)
    results: list = [None] * len(cores)

    def launch(i):
        results[i], tail = common.run_worker(_command(args, cores[i]), envs[i],
                                             timeout_s=args.timeout)
        if results[i] is None:
            sys.stderr.write(f"[{backend} {name} process {i} failed]\n{tail}")

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(len(cores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if any(r is None for r in results):
        return None
    row = dict(results[0], config=name)
    # The processes run the same synchronised steps; the one that started its clock last waited
    # least for the others, so its time is the job's (the barrier makes the gap small).
    row["pairs_per_s_per_process"] = [r["pairs_per_s"] for r in results]
    row["pairs_per_s"] = max(row["pairs_per_s_per_process"])
    row["step_ms"] = min(r["step_ms"] for r in results)
    return row


def _ratio(a: float, b: float) -> float:
    """`a / b` to three significant digits (a ratio of 0.0236 must not print as 0.024)."""
    return float(f"{a / b:.3g}")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="tensorflow,jax")
    parser.add_argument("--objective", default="ntxent", choices=["ntxent", "vicreg"])
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--projector", default="512-128")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--json-out", default=None)
    parser.add_argument("--tiny", action="store_true",
                        help="a 4-block SampleCNN on 243-sample clips (tests)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"which of {', '.join(CONFIGS)} to run (comma-separated)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return []
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        sys.exit("bench/multiworker.py needs at least 2 cores (one per process)")
    if args.global_batch % 2:
        sys.exit("--global-batch must be even (two processes share it)")
    wanted = common.comma_list(args.configs)
    unknown = sorted(set(wanted) - set(CONFIGS))
    if unknown:
        sys.exit(f"--configs: unknown {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    rows = []
    for backend in common.comma_list(args.backend):
        got = {}
        layouts = {"1proc_1core": [cores[0]], "1proc_all": [None], "2proc_1core": cores[:2]}
        for name in CONFIGS:
            if name not in wanted:
                continue
            config = layouts[name]
            row = run_config(args, backend, name, config)
            if row is None:
                continue
            got[name] = row
            rows.append(row)
        if "2proc_1core" in got:
            two = got["2proc_1core"]
            if "1proc_1core" in got:
                two["scaling"] = _ratio(two["pairs_per_s"], got["1proc_1core"]["pairs_per_s"])
            if "1proc_all" in got:
                two["vs_1proc_all"] = _ratio(two["pairs_per_s"], got["1proc_all"]["pairs_per_s"])
        for row in got.values():
            row.update(time=common.utc_stamp(),
                       versions=common.package_versions(["tensorflow", "keras", "jax"]))
            print(json.dumps(row), flush=True)
    common.write_json_lines(args.json_out, rows)
    return rows


if __name__ == "__main__":
    main()
