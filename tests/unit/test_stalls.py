"""StallMonitor: pauses of any CPU are recorded and matched against samples in both clocks."""

from __future__ import annotations

import os
import sys
import time

from testbed.lab.stalls import StallMonitor


def _inject(monitor: StallMonitor, cpu_index: int, wall: tuple[int, int], mono: tuple[int, int]) -> None:
    monitor._watchers[cpu_index].stalls.append((*wall, *mono))


def test_a_pause_seen_by_either_cpu_counts():
    m = StallMonitor(cpus={0, 1})
    m.started_ns, m.stopped_ns = 0, 1000
    _inject(m, 0, (100, 200), (10_100, 10_200))
    _inject(m, 1, (150, 300), (10_150, 10_300))  # overlaps CPU 0's pause
    _inject(m, 1, (600, 650), (10_600, 10_650))
    assert m.overlaps(250, 260) and m.overlaps(0, 100) and m.overlaps(640, 700)
    assert not m.overlaps(301, 599) and not m.overlaps(651, 900)
    assert m.overlaps_monotonic(10_280, 10_290) and not m.overlaps_monotonic(280, 290)
    assert m.between(0, 160) == [0.0, 0.0]
    # the two overlapping pauses count once: 200 + 50 of 1000
    assert m.summary() == {"pauses": 2, "paused_fraction": 0.25, "longest_ms": 0.0, "cpus": 2}
    assert m.paused_ms_monotonic(10_000, 10_250) == round(150 / 1e6, 1)
    _inject(m, 0, (0, 0), (20_000_000, 23_000_000))
    _inject(m, 1, (0, 0), (22_000_000, 25_000_000))  # overlapping pauses count once
    assert m.paused_ms_monotonic(21_000_000, 30_000_000) == 4.0
    assert m.paused_ms_monotonic(26_000_000, 30_000_000) == 0.0


def test_a_long_pause_far_before_the_window_still_overlaps_it():
    m = StallMonitor(cpus={0})
    _inject(m, 0, (0, 10_000), (0, 10_000))
    _inject(m, 0, (5_000, 5_001), (5_000, 5_001))
    assert m.overlaps(9_000, 9_500)
    assert not m.overlaps(10_001, 20_000)


def test_a_thread_kept_from_running_is_recorded():
    """Hold the GIL for 30 ms: the watcher wakes late, as it would after a host pause."""
    cpu = min(os.sched_getaffinity(0))
    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        with StallMonitor(cpus={cpu}) as m:
            deadline = time.monotonic() + 5
            while m._watchers[0].laps < 2:  # the watcher is in its loop
                assert time.monotonic() < deadline, "the watcher never ran"
                time.sleep(0.001)
            t0 = time.monotonic_ns()
            end = t0 + 30_000_000
            while time.monotonic_ns() < end:
                pass
            t1 = time.monotonic_ns()
    finally:
        sys.setswitchinterval(old)
    assert m.overlaps_monotonic(t0, t1)
    assert any(e - s >= 20_000_000 for s, e in m.stalls_monotonic)
