"""Test set-up: TensorFlow backend with 2 logical CPU devices (for the 2-replica tests)."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

try:
    import tensorflow as tf  # noqa: E402
except ImportError:  # the keras-only core can be tested on JAX without TensorFlow
    tf = None

if tf is not None:
    _cpus = tf.config.list_physical_devices("CPU")
    try:
        # Must happen before TensorFlow initialises its devices: two logical CPUs make
        # MirroredStrategy(["/cpu:0", "/cpu:1"]) a real 2-replica strategy.
        tf.config.set_logical_device_configuration(
            _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    except RuntimeError:
        pass


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from fixed seeds and the float32 policy.

    (No keras.backend.clear_session() here: it costs ~1 s per test on 2 cores and no test
    depends on fresh global name counters.)
    """
    import keras
    keras.utils.set_random_seed(1234)
    yield
    keras.mixed_precision.set_global_policy("float32")


_MIRRORED = None


@pytest.fixture
def mirrored_strategy():
    """One MirroredStrategy over the 2 logical CPUs, shared by the whole test process.

    Several MirroredStrategy objects over the same devices in one process can collide in their
    collective instance keys (TF then aborts every later collective), so tests share this one.
    """
    global _MIRRORED
    if _MIRRORED is None:
        # Start this strategy's collective keys clear of any strategy created before it (what
        # TensorFlow's own test harness does).
        tf.distribute.MirroredStrategy._collective_key_base += 100000  # noqa: SLF001
        _MIRRORED = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return _MIRRORED
