"""Detecting pauses of the whole machine while a timing measurement runs.

Our 2-core VMs are paused by their host at times: both vCPUs stop together for 5-500 ms,
several times a second, whatever runs inside (measured with a 1 ms sleep loop at load 0.6,
also under SCHED_FIFO). No delay line, netem or agent can hide that, and a ping whose round
trip spans such a pause measures the host, not the lab. ``StallMonitor`` sleeps 1 ms at a
time in a thread and records every wake-up that came more than ``threshold_ms`` late, with
wall-clock (CLOCK_REALTIME) bounds, so that samples stamped by other programs (``ping -D``)
can be checked against them.
"""

from __future__ import annotations

import bisect
import threading
import time


class StallMonitor(threading.Thread):
    def __init__(self, threshold_ms: float = 1.0) -> None:
        super().__init__(daemon=True, name="stall-monitor")
        self.threshold_ns = int(threshold_ms * 1e6)
        self.stalls: list[tuple[int, int]] = []  # (start, end) in time.time_ns()
        self._stopping = threading.Event()
        self.started_ns = 0
        self.stopped_ns = 0

    def run(self) -> None:
        while not self._stopping.is_set():
            t0 = time.time_ns()
            time.sleep(0.001)
            t1 = time.time_ns()
            if t1 - t0 - 1_000_000 > self.threshold_ns:
                self.stalls.append((t0, t1))

    def __enter__(self) -> StallMonitor:  # noqa: PYI034
        self.started_ns = time.time_ns()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self.join(5)
        self.stopped_ns = time.time_ns()

    def overlaps(self, start_ns: int, end_ns: int) -> bool:
        """True when a recorded pause overlaps [start_ns, end_ns] (wall clock)."""
        starts = [s for s, _ in self.stalls]
        i = bisect.bisect_right(starts, end_ns)
        return any(e >= start_ns for _, e in self.stalls[max(0, i - 64):i])

    def between(self, start_ns: int, end_ns: int) -> list[float]:
        """How long (ms) each pause recorded between two wall-clock times lasted."""
        return [round((e - s) / 1e6, 1) for s, e in self.stalls if start_ns <= s <= end_ns]

    def summary(self) -> dict:
        span = max(1, (self.stopped_ns or time.time_ns()) - self.started_ns)
        paused = sum(e - s for s, e in self.stalls)
        longest = max((e - s for s, e in self.stalls), default=0)
        return {"pauses": len(self.stalls), "paused_fraction": round(paused / span, 3),
                "longest_ms": round(longest / 1e6, 1)}
