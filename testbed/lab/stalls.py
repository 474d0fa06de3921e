"""Detecting pauses of the machine while a timing measurement runs.

Our 2-core VMs are paused by their host at times: 5-800 ms at a stretch, more than half of
the wall time, whatever runs inside (measured with a 1 ms sleep loop at load 0.6, also under
SCHED_FIFO). The two vCPUs are mostly paused together, but not always: measured with one
sleep loop pinned to each, each vCPU was paused 64 % of 10 s and both at once 51 %, so a
single watcher misses the pauses of the CPU it does not run on. No delay line, netem or
agent can hide such a pause, and a ping whose round trip spans one measures the host, not
the lab.

``StallMonitor`` runs one thread pinned to each CPU this process may use; each sleeps 1 ms at
a time and records every wake-up that came more than ``threshold_ms`` late, with wall-clock
(CLOCK_REALTIME) bounds, so that samples stamped by other programs (``ping -D``) can be
checked against them, and CLOCK_MONOTONIC bounds for samples stamped in monotonic time (the
agents' event logs). A late wake-up also happens when the CPU is merely busy; that errs on
the side of calling a sample disturbed.
"""

from __future__ import annotations

import bisect
import os
import threading
import time


class _CpuWatcher(threading.Thread):
    def __init__(self, cpu: int | None, threshold_ns: int, stopping: threading.Event) -> None:
        super().__init__(daemon=True, name=f"stall-monitor-{cpu}")
        self.cpu = cpu
        self.threshold_ns = threshold_ns
        self.stopping = stopping
        self.stalls: list[tuple[int, int, int, int]] = []  # realtime start, end; monotonic start, end
        self.laps = 0  # sleeps completed: the watcher is watching once this moves

    def run(self) -> None:
        if self.cpu is not None:
            try:
                os.sched_setaffinity(0, {self.cpu})  # 0: this thread
            except OSError:
                pass
        limit = 1_000_000 + self.threshold_ns
        wall, mono = time.time_ns, time.monotonic_ns
        while not self.stopping.is_set():
            m0, t0 = mono(), wall()
            time.sleep(0.001)
            m1, t1 = mono(), wall()
            self.laps += 1
            if m1 - m0 > limit:
                self.stalls.append((t0, t1, m0, m1))


class StallMonitor:
    def __init__(self, threshold_ms: float = 1.0, cpus: set[int] | None = None) -> None:
        self.threshold_ns = int(threshold_ms * 1e6)
        if cpus is None:
            cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else {None}
        self._stopping = threading.Event()
        self._watchers = [_CpuWatcher(cpu, self.threshold_ns, self._stopping) for cpu in sorted(cpus, key=str)]
        self.started_ns = 0
        self.stopped_ns = 0
        self.started_mono_ns = 0
        self.stopped_mono_ns = 0

    def __enter__(self) -> StallMonitor:  # noqa: PYI034
        self.started_ns, self.started_mono_ns = time.time_ns(), time.monotonic_ns()
        for watcher in self._watchers:
            watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        for watcher in self._watchers:
            watcher.join(5)
        self.stopped_ns, self.stopped_mono_ns = time.time_ns(), time.monotonic_ns()

    def _records(self) -> list[tuple[int, int, int, int]]:
        return sorted(r for w in self._watchers for r in list(w.stalls))

    @property
    def stalls(self) -> list[tuple[int, int]]:
        """Every pause any CPU saw, as (start, end) in time.time_ns(), by start."""
        return [(r[0], r[1]) for r in self._records()]

    @property
    def stalls_monotonic(self) -> list[tuple[int, int]]:
        """The same pauses as (start, end) in time.monotonic_ns()."""
        return sorted((r[2], r[3]) for r in self._records())

    @staticmethod
    def _overlaps(windows: list[tuple[int, int]], start_ns: int, end_ns: int) -> bool:
        i = bisect.bisect_right(windows, (end_ns, float("inf")))
        longest = max((e - s for s, e in windows), default=0)
        j = bisect.bisect_left(windows, (start_ns - longest, -1))
        return any(e >= start_ns for _, e in windows[j:i])

    def overlaps(self, start_ns: int, end_ns: int) -> bool:
        """True when a recorded pause overlaps [start_ns, end_ns] (wall clock)."""
        return self._overlaps(self.stalls, start_ns, end_ns)

    def overlaps_monotonic(self, start_ns: int, end_ns: int) -> bool:
        """True when a recorded pause overlaps [start_ns, end_ns] (monotonic clock)."""
        return self._overlaps(self.stalls_monotonic, start_ns, end_ns)

    @staticmethod
    def _merged(windows: list[tuple[int, int]]) -> list[list[int]]:
        merged: list[list[int]] = []
        for s, e in sorted(windows):
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        return merged

    def paused_ms_monotonic(self, start_ns: int, end_ns: int) -> float:
        """How long (ms) at least one CPU was paused within [start_ns, end_ns] (monotonic)."""
        total = sum(max(0, min(e, end_ns) - max(s, start_ns)) for s, e in self._merged(self.stalls_monotonic))
        return round(total / 1e6, 1)

    def between(self, start_ns: int, end_ns: int) -> list[float]:
        """How long (ms) each pause recorded between two wall-clock times lasted."""
        return [round((e - s) / 1e6, 1) for s, e in self.stalls if start_ns <= s <= end_ns]

    def summary(self) -> dict:
        """Pauses seen; ``paused_fraction``: share of the time at least one CPU was paused."""
        span = max(1, (self.stopped_ns or time.time_ns()) - self.started_ns)
        merged = self._merged(self.stalls)
        paused = sum(e - s for s, e in merged)
        longest = max((e - s for s, e in merged), default=0)
        return {"pauses": len(merged), "paused_fraction": round(paused / span, 3),
                "longest_ms": round(longest / 1e6, 1), "cpus": len(self._watchers)}
