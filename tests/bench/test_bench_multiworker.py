"""bench/multiworker.py: 1 and 2 processes train as one job and report comparable rows."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from bench import multiworker  # noqa: E402


@pytest.mark.slow
def test_one_and_two_tf_processes_give_rows_and_ratios(tmp_path):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 cores")
    out = tmp_path / "rows.jsonl"
    rows = multiworker.main(["--backend", "tensorflow", "--global-batch", "4", "--steps", "1",
                             "--warmup", "1", "--tiny", "--json-out", str(out),
                             "--timeout", "300", "--configs", "1proc_1core,2proc_1core"])
    by_config = {r["config"]: r for r in rows}
    assert set(by_config) == {"1proc_1core", "2proc_1core"}  # as asked: 1proc_all left out
    two = by_config["2proc_1core"]
    assert two["processes"] == 2 and two["replicas"] == 2
    assert len(two["pairs_per_s_per_process"]) == 2
    assert two["scaling"] == pytest.approx(
        two["pairs_per_s"] / by_config["1proc_1core"]["pairs_per_s"], rel=1e-2)
    assert by_config["1proc_1core"]["replicas"] == 1
    assert "vs_1proc_all" not in two
    assert [json.loads(line)["config"] for line in out.read_text().splitlines()] == [
        "1proc_1core", "2proc_1core"]


def test_ratios_keep_three_significant_digits():
    # 3.5 / 148.49 = 0.02357...: rounding to 3 decimals gave 0.024, 2 % off the row's own figures.
    assert multiworker._ratio(3.5, 148.49) == 0.0236
    assert multiworker._ratio(296.98, 148.49) == 2.0
