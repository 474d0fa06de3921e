"""The wake-up probe beside the agent benchmark: it wakes its child, reads the child's
figures back, and leaves no process behind. (No timing is asserted: figures are printed by
benchmarks/agent_bu_turnaround.py.)"""

from __future__ import annotations

import os
import time

from testbed.lab.wakeup import WakeupProbe, describe


def test_the_probe_collects_wake_ups_and_ends_its_child():
    with WakeupProbe(interval_s=0.02) as probe:
        child = probe._proc.pid
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and probe.sent < 6:
            time.sleep(0.01)
    assert probe.sent >= 6 and probe._proc.returncode == 0 and not os.path.exists(f"/proc/{child}")
    assert len(probe.samples) >= 3
    assert all(s["wake"] > 0 and s["cold"] > 0 and s["warm"] > 0 for s in probe.samples)
    summary = probe.summary()
    assert summary["samples"] == len(probe.samples) and summary["wake_median_ms"] > 0
    assert "kernel stamp -> running median" in describe(summary)
