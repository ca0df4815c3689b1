"""Runtime: where and how a run executes (strategy, replicas, collectives, statistics, precision).

`pretrain` asks one object for everything that depends on the machine, so the training code
never branches on the backend or the device:

    runtime = Runtime()          # gin: Runtime.precision = "auto", Runtime.global_stats = True
    with runtime.scope():
        model = SSLModel(encoder, projector, loss_fn, **runtime.model_kwargs())

The precision rule ("auto") is a pure function of a device description, `choose_precision`,
so it is tested without the hardware.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field

import gin
import keras

from mssl_tf.distribute import cluster
from mssl_tf.distribute import strategy as strategy_lib

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


@dataclass(frozen=True)
class DeviceInfo:
    """What `choose_precision` needs to know about the machine.

    Attributes:
      platform: "tpu", "gpu" or "cpu".
      gpu_compute_capabilities: (major, minor) per GPU (CUDA), empty elsewhere.
      cpu_bf16: the CPU has bfloat16 arithmetic (AVX512-BF16 or AMX-BF16).
      description: a short text for the run log ("2 x NVIDIA A100 (8.0)").
    """

    platform: str
    gpu_compute_capabilities: tuple[tuple[int, int], ...] = ()
    cpu_bf16: bool = False
    description: str = ""


# Whether "auto" takes bfloat16 on CPUs with AVX512-BF16/AMX. Decided by bench/precision_cpu.py
# (BENCHMARKS.md, "Precision on the CPU"): see there for the measured speed and loss agreement.
CPU_BF16_AUTO = False


def choose_precision(device: DeviceInfo) -> tuple[str, str]:
    """The Keras dtype policy "auto" stands for on `device`, and why.

    bfloat16 where the hardware computes in it (TPU; GPUs of compute capability >= 8.0, i.e.
    A100/H100/L4 and newer; CPUs with AVX512-BF16 or AMX), float16 with loss scaling on older
    GPUs with fp16 tensor cores (7.x: V100, T4), float32 elsewhere.

    Returns:
      (policy name, reason).
    """
    if device.platform == "tpu":
        return "mixed_bfloat16", "TPU: bfloat16 matrix units"
    if device.platform == "gpu":
        caps = device.gpu_compute_capabilities
        if caps and min(caps) >= (8, 0):
            return "mixed_bfloat16", "GPU of compute capability >= 8.0: bfloat16 tensor cores"
        if caps and min(caps) >= (7, 0):
            return "mixed_float16", ("GPU of compute capability 7.x (no bfloat16): float16 tensor "
                                     "cores with dynamic loss scaling")
        return "float32", "GPU without bfloat16 or float16 tensor cores (or unknown capability)"
    if device.cpu_bf16 and CPU_BF16_AUTO:
        return "mixed_bfloat16", "CPU with bfloat16 instructions (AVX512-BF16/AMX)"
    return "float32", "CPU without bfloat16 instructions"


def _cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def describe_devices(strategy) -> DeviceInfo:
    """The DeviceInfo of this process' accelerators (TPU > GPU > CPU)."""
    if keras.backend.backend() == "jax":
        import jax  # noqa: PLC0415  (JAX backend only)

        devices = jax.devices()
        platform = devices[0].platform
        caps = tuple(tuple(int(x) for x in str(d.compute_capability).split(".")[:2])
                     for d in devices if getattr(d, "compute_capability", None))
        kind = devices[0].device_kind
        return DeviceInfo(platform, caps, _cpu_has_bf16() if platform == "cpu" else False,
                          f"{len(devices)} x {kind}")
    import tensorflow as tf  # noqa: PLC0415  (TensorFlow backend)

    if isinstance(strategy, tf.distribute.TPUStrategy):
        return DeviceInfo("tpu", description=f"{strategy.num_replicas_in_sync} TPU cores")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        caps, names = [], []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            if "compute_capability" in details:
                caps.append(tuple(details["compute_capability"]))
            names.append(details.get("device_name", gpu.name))
        return DeviceInfo("gpu", tuple(caps), description=f"{len(gpus)} x {names[0]}")
    return DeviceInfo("cpu", cpu_bf16=_cpu_has_bf16(), description=f"CPU ({os.cpu_count()} cores)")


@gin.configurable(denylist=["tpu"])
@dataclass
class Runtime:
    """The machine side of a run; every field can be bound in gin (`Runtime.precision = ...`).

    Attributes:
      tpu: Cloud TPU name or "local" (from `mssl-pretrain --tpu`), None for GPUs/CPU.
      devices: explicit devices for MirroredStrategy (tests: ["/cpu:0", "/cpu:1"]).
      precision: "auto" (see `choose_precision`), "float32", "mixed_bfloat16" or
        "mixed_float16".
      global_stats: objective statistics (VICReg) and negatives (NT-Xent) over the global batch
        of all replicas (facebookresearch/vicreg); False = per replica.
      stats_group_size: statistics and negatives within groups of this many rows of the
        gathered global batch, averaged (the thesis' TPU v3-8: the per-core batch); the same on
        any replica count. None = per `global_stats`. See `SSLModel(stats_group_size=)`.
      steps_per_execution: optimizer steps per compiled call (50-200 on TPU).
      jit_compile: XLA ("auto" lets Keras decide).
      communication: all-reduce of a TF_CONFIG cluster ("auto", "ring" or "nccl").
    """

    tpu: str | None = None
    devices: list[str] | None = None
    precision: str = "auto"
    global_stats: bool = True
    stats_group_size: int | None = None
    steps_per_execution: int = 1
    jit_compile: str | bool = "auto"
    communication: str = "auto"
    strategy: object = field(default=None, init=False, repr=False)
    replicas: int = field(default=1, init=False)
    policy: str = field(default="float32", init=False)
    device: DeviceInfo | None = field(default=None, init=False)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"Runtime.precision = {self.precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)}.")
        if int(self.steps_per_execution) < 1:
            raise ValueError(f"Runtime.steps_per_execution must be >= 1, got "
                             f"{self.steps_per_execution}.")

    def start(self) -> Runtime:
        """Connects to the devices, creates the strategy and sets the dtype policy."""
        # First: a multi-worker strategy and jax.distributed must set the runtime up before any
        # other TensorFlow op or JAX computation of the process.
        self.strategy = strategy_lib.get_strategy(self.tpu, self.devices, self.communication)
        self.replicas = strategy_lib.num_replicas(self.strategy)
        self.device = describe_devices(self.strategy)
        if self.precision == "auto":
            self.policy, reason = choose_precision(self.device)
            logger.info("Precision %s (auto: %s)", self.policy, reason)
        else:
            self.policy = self.precision
        keras.mixed_precision.set_global_policy(self.policy)
        return self

    @property
    def is_chief(self) -> bool:
        """True in the one process that writes the run directory (the others write nothing)."""
        return bool(cluster.is_chief(self.strategy))

    def distribute_dataset(self, make_dataset, global_batch: int):
        """The training input: `make_dataset(input_context)` -> a tf.data.Dataset.

        One host: `make_dataset(None)` yields global batches and Keras splits them over the
        replicas. Several hosts (a TF_CONFIG cluster, a TPU, JAX processes): every host builds
        its own pipeline over its own shard files (`input_context`), batching its share.
        """
        if keras.backend.backend() == "jax":
            import jax  # noqa: PLC0415  (JAX backend only)

            if jax.process_count() > 1:
                return make_dataset(cluster.jax_input_context(global_batch))
            return make_dataset(None)
        import tensorflow as tf  # noqa: PLC0415  (TensorFlow backend)

        per_host = (isinstance(self.strategy, tf.distribute.TPUStrategy)
                    or cluster.num_tf_workers(cluster.read_tf_config()) > 1)
        if per_host:
            return self.strategy.distribute_datasets_from_function(make_dataset)
        return make_dataset(None)

    def scope(self):
        """The context to create the model and optimizer in."""
        if self.strategy is not None and hasattr(self.strategy, "scope"):
            return self.strategy.scope()
        return contextlib.nullcontext()

    def per_replica_batch(self, global_batch: int) -> int:
        """Checks that the global batch splits evenly over the replicas."""
        return strategy_lib.check_global_batch(global_batch, self.replicas)

    def model_kwargs(self) -> dict:
        """The SSLModel arguments that depend on the runtime (collectives, statistics)."""
        on_tf = keras.backend.backend() == "tensorflow"
        collectives = None
        if on_tf:
            from mssl_tf.distribute.collectives import TFCollectives  # noqa: PLC0415

            collectives = TFCollectives()
        # On JAX the loss sees the global batch: per-replica statistics need explicit groups.
        return {"collectives": collectives, "global_stats": self.global_stats,
                "stats_groups": 1 if on_tf else self.replicas,
                "stats_group_size": self.stats_group_size}

    def compile_kwargs(self) -> dict:
        """The `Model.compile` arguments that depend on the runtime."""
        return {"jit_compile": self.jit_compile,
                "steps_per_execution": int(self.steps_per_execution)}

    def summary(self) -> str:
        """One line for the run log."""
        device = self.device.description if self.device else "?"
        return (f"{keras.backend.backend()} backend, {device}, {self.replicas} replica(s), "
                f"precision {self.policy}, statistics {self._statistics_scope()}")

    def _statistics_scope(self) -> str:
        if self.stats_group_size:
            return f"in groups of {self.stats_group_size} rows"
        return "global" if self.global_stats else "per replica"
