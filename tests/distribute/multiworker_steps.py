"""Worker of the multi-process equivalence tests: a few optimizer steps of a tiny SSLModel.

Run as a script, once per process, by tests/distribute/test_multiworker.py:

    python multiworker_steps.py OUT_DIR single|multi

KERAS_BACKEND picks TensorFlow (a cluster from TF_CONFIG -> MultiWorkerMirroredStrategy) or JAX
(MSSL_COORDINATOR/MSSL_NUM_PROCESSES/MSSL_PROCESS_ID -> jax.distributed + DataParallel).
"single" runs one process on the whole global batch and writes the initial weights
(init_OBJECTIVE.npz) and the final ones (single_OBJECTIVE.npz). "multi" loads the initial
weights, feeds each process its own slice of every global batch (TF: through
`distribute_datasets_from_function` and the InputContext, as the trainer does; JAX: process-local
arrays) and writes process P's final weights to multi_OBJECTIVE_P.npz. Both objectives train
with global statistics: VICReg with LARS, NT-Xent with SGD.
"""

import json
import os
import sys

import keras
import numpy as np

from mssl_tf import distribute, losses, optim
from mssl_tf.models import SSLModel, build_projector, build_sample_cnn

CROP = 243  # 3**5: a 4-block SampleCNN
WIDTHS = (8, 8, 16, 16)
GLOBAL_BATCH = 8
STEPS = 3
OBJECTIVES = ("vicreg", "ntxent")


def data() -> dict[str, np.ndarray]:
    """STEPS global batches of both views, the same in every process."""
    rng = np.random.default_rng(0)
    return {k: rng.uniform(-1, 1, (STEPS * GLOBAL_BATCH, CROP)).astype("float32")
            for k in ("view_a", "view_b")}


def process_slice(arrays: dict, index: int, count: int) -> dict:
    """Rows of process `index` of `count`: its contiguous share of every global batch."""
    per = GLOBAL_BATCH // count
    rows = np.concatenate([np.arange(s * GLOBAL_BATCH + index * per,
                                     s * GLOBAL_BATCH + (index + 1) * per) for s in range(STEPS)])
    return {k: v[rows] for k, v in arrays.items()}


def build(objective: str, on_tf: bool) -> SSLModel:
    keras.utils.set_random_seed(0)
    encoder = build_sample_cnn(8, crop_len=CROP, widths=WIDTHS, synchronized_bn=on_tf)
    projector = build_projector("vicreg" if objective == "vicreg" else "clmr", "16-8", 8)
    if on_tf:
        for layer in projector.layers:
            if "bn" in layer.name:
                layer.synchronized = True
    optimizer = (optim.LARS(learning_rate=0.02) if objective == "vicreg"
                 else keras.optimizers.SGD(1e-3))
    model = SSLModel(encoder, projector, losses.get_loss(objective),
                     collectives=distribute.TFCollectives() if on_tf else None)
    # JAX: one XLA program per step, as the trainer runs it (jit_compile=False would run the
    # step op by op, compiling every primitive on its own: ~20 s of a 40 s process).
    # TensorFlow: a tf.function without XLA, as under MultiWorkerMirroredStrategy on CPU.
    model.compile(optimizer=optimizer, jit_compile=not on_tf)
    model.build_from_views(CROP)
    return model


def main(out_dir: str, mode: str) -> None:
    on_tf = keras.backend.backend() == "tensorflow"
    # First, before any other op: a multi-worker strategy / jax.distributed configure the runtime.
    strategy = distribute.get_strategy()
    if on_tf:
        import tensorflow as tf
        index = strategy.cluster_resolver.task_id if mode == "multi" else 0
        count = strategy.extended._num_workers if mode == "multi" else 1
    else:
        import jax
        index, count = jax.process_index(), jax.process_count()
    info = {"index": index, "count": count, "replicas": distribute.num_replicas(strategy),
            "is_chief": distribute.is_chief(strategy)}
    arrays = data()
    for objective in OBJECTIVES:
        if mode == "single":
            model = build(objective, on_tf)
            np.savez(os.path.join(out_dir, f"init_{objective}.npz"), *model.get_weights())
            if on_tf:
                ds = tf.data.Dataset.from_tensor_slices(arrays).batch(GLOBAL_BATCH)
                model.fit(ds, epochs=1, steps_per_epoch=STEPS, verbose=0)
            else:
                model.fit(arrays, batch_size=GLOBAL_BATCH, epochs=1, verbose=0, shuffle=False)
            name = f"single_{objective}.npz"
        else:
            init = np.load(os.path.join(out_dir, f"init_{objective}.npz"))
            start = [init[f"arr_{i}"] for i in range(len(init.files))]
            if on_tf:
                with strategy.scope():
                    model = build(objective, on_tf)
                model.set_weights(start)

                def make_dataset(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
                    part = process_slice(arrays, ctx.input_pipeline_id, ctx.num_input_pipelines)
                    per_replica = ctx.get_per_replica_batch_size(GLOBAL_BATCH)
                    return tf.data.Dataset.from_tensor_slices(part).batch(per_replica)

                ds = strategy.distribute_datasets_from_function(make_dataset)
                model.fit(ds, epochs=1, steps_per_epoch=STEPS, verbose=0)
            else:
                model = build(objective, on_tf)
                model.set_weights(start)
                # Each process feeds its own rows; Keras assembles the global batch.
                model.fit(process_slice(arrays, index, count), batch_size=GLOBAL_BATCH // count,
                          epochs=1, verbose=0, shuffle=False)
            name = f"multi_{objective}_{index}.npz"
        np.savez(os.path.join(out_dir, name), *[np.asarray(w) for w in model.get_weights()])
    print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
