"""One pause watcher: a process pinned to one CPU at SCHED_FIFO priority, sleeping 1 ms at a
time and recording every wake-up that came late (run by :class:`testbed.lab.pauses.PauseMonitor`).

    python -m testbed.lab.pausewatch --cpu 1 --out FILE [--priority 50] [--threshold-us 1000]

Nothing of ours at ordinary priority can delay it: a woken SCHED_FIFO task preempts every
SCHED_OTHER task on its CPU at once (the Python GIL of another process does not matter
either: this is a process of its own). A late wake-up therefore means that the CPU did not
run at all (the host paused the vCPU), or that something at real-time priority or in the
kernel held it that long.

Each late wake-up is appended to FILE as one line ``<mono start> <mono end> <real start>
<real end> <runnable>`` (ns; the bounds of the sleep that overran: the pause lies within them;
``runnable``: how long of it the watcher was woken but waiting for its CPU, from the
scheduler's own account in /proc/thread-self/schedstat), written at once (a file, not a
pipe: a reader that falls behind can never block the watcher). The two causes differ in
that last figure: when the host does not run the vCPU the timer itself fires late and the
watcher then runs at once (``runnable`` ~ 0); when the kernel (this kernel does not preempt
kernel code) or a real-time task holds the CPU the watcher was woken in time and waited. On
stdout: ``ready <policy> <priority>`` once pinned and through its first sleep, and on
SIGTERM a last line of JSON (laps, late wake-ups, the largest lateness). A watcher whose
parent dies is killed (PR_SET_PDEATHSIG) and checks its parent besides.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
SLEEP_S = 0.001
SLEEP_NS = 1_000_000


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _realtime(priority: int) -> str:
    """SCHED_FIFO at ``priority`` if allowed, else stay as we are (the parent is told)."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return "fifo"
    except (OSError, AttributeError):
        return "other"


def watch(cpu: int, out: str, priority: int, threshold_ns: int) -> int:
    parent = os.getppid()
    _die_with_parent()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us (a terminal's Ctrl-C must not)
    os.sched_setaffinity(0, {cpu})
    policy = _realtime(priority)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        stat_fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        stat_fd = -1
    gc.disable()  # nothing here makes cycles; a collection would be a late wake-up of our own
    mono, wall, sleep, write, pread = time.monotonic_ns, time.time_ns, time.sleep, os.write, os.pread

    def waited() -> int:  # ns spent runnable but not running, so far (schedstat's 2nd field)
        return int(pread(stat_fd, 128, 0).split()[1]) if stat_fd >= 0 else 0

    limit = SLEEP_NS + threshold_ns
    laps = late = 0
    worst = 0
    sleep(SLEEP_S)
    w1 = waited()
    print(f"ready {policy} {priority if policy == 'fifo' else 0}", flush=True)
    while not stopping:
        m0, t0 = mono(), wall()
        sleep(SLEEP_S)
        m1, t1 = mono(), wall()
        w0, w1 = w1, waited()
        laps += 1
        overrun = m1 - m0 - SLEEP_NS
        if overrun > worst:
            worst = overrun
        if m1 - m0 > limit:
            late += 1
            write(fd, b"%d %d %d %d %d\n" % (m0, m1, t0, t1, w1 - w0))
        if not laps & 1023 and os.getppid() != parent:
            break  # the parent is gone (and PR_SET_PDEATHSIG did not take)
    os.close(fd)
    print(json.dumps({"cpu": cpu, "laps": laps, "late": late, "worst_overrun_ms": round(worst / 1e6, 3),
                      "cpu_s": round(time.process_time(), 3)}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pausewatch", description=__doc__.splitlines()[0])
    p.add_argument("--cpu", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--priority", type=int, default=50)
    p.add_argument("--threshold-us", type=int, default=1000)
    args = p.parse_args(argv)
    return watch(args.cpu, args.out, args.priority, args.threshold_us * 1000)


if __name__ == "__main__":
    sys.exit(main())
