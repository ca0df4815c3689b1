"""Runtime: the precision "auto" stands for, decided from device descriptions."""

import pytest

from mssl_tf.distribute import runtime
from mssl_tf.distribute.runtime import DeviceInfo, Runtime, choose_precision


@pytest.mark.parametrize("device,policy", [
    (DeviceInfo("tpu"), "mixed_bfloat16"),
    (DeviceInfo("gpu", ((9, 0),)), "mixed_bfloat16"),            # H100
    (DeviceInfo("gpu", ((8, 0), (8, 0))), "mixed_bfloat16"),      # 2 x A100
    (DeviceInfo("gpu", ((8, 9),)), "mixed_bfloat16"),             # L4
    (DeviceInfo("gpu", ((7, 5),)), "mixed_float16"),              # T4: no bf16
    (DeviceInfo("gpu", ((7, 0),)), "mixed_float16"),              # V100: no bf16
    (DeviceInfo("gpu", ((8, 0), (7, 0))), "mixed_float16"),       # mixed: the weakest decides
    (DeviceInfo("gpu", ((6, 1),)), "float32"),                    # P4: no fp16 tensor cores
    (DeviceInfo("gpu", ()), "float32"),                           # capability unknown
    (DeviceInfo("cpu", cpu_bf16=False), "float32"),
])
def test_auto_precision(device, policy):
    chosen, reason = choose_precision(device)
    assert chosen == policy and reason


def test_cpu_bf16_follows_the_measured_switch(monkeypatch):
    monkeypatch.setattr(runtime, "CPU_BF16_AUTO", True)
    assert choose_precision(DeviceInfo("cpu", cpu_bf16=True))[0] == "mixed_bfloat16"
    monkeypatch.setattr(runtime, "CPU_BF16_AUTO", False)
    assert choose_precision(DeviceInfo("cpu", cpu_bf16=True))[0] == "float32"


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="Runtime.precision = 'bf16'.*mixed_bfloat16"):
        Runtime(precision="bf16")
    with pytest.raises(ValueError, match="Runtime.steps_per_execution must be >= 1"):
        Runtime(steps_per_execution=0)


def test_start_on_this_machine_sets_the_policy():
    rt = Runtime(precision="float32").start()
    import keras
    assert rt.replicas == 1 and rt.is_chief and rt.policy == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "1 replica(s)" in rt.summary()
