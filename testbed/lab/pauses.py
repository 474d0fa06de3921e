"""Host pauses, told apart from our own load, while a timing measurement runs (docs/host.md).

The host pauses these VMs now and then (a few per cent of the time, 10-110 ms at a stretch,
sometimes one vCPU and not the other). No delay line, netem or agent can hide such a pause,
and a round trip or handover that spans one measures the host, not the lab. Our own load
(busy delay lines, agents, tcpdump, the measuring process's GIL) is something else: a
property of the lab that a user should see, never to be reported as a host pause.

``PauseMonitor`` therefore watches with one *process* per CPU (``testbed.lab.pausewatch``),
pinned to it at SCHED_FIFO priority, sleeping 1 ms at a time and recording every wake-up
more than ``threshold_ms`` late with monotonic and realtime bounds. Nothing at ordinary
priority can delay it. Each late wake-up also says how long the watcher was woken but kept
waiting for its CPU: then the CPU *ran*, kernel code (this kernel does not preempt it) or a
real-time task held it (``Pause.held``, reported as ``cpu_held``); otherwise the vCPU did not
run at all, which is a host pause. Over the same window the monitor reads, per CPU, the
steal time the hypervisor reports (``/proc/stat``, 8th column of the ``cpuN`` lines; it
agrees with the host pauses) and how busy the CPU was, and the CPU pressure
(``/proc/pressure/cpu``: the share of time some task waited for a CPU, i.e. our own
contention)::

    with PauseMonitor() as host:
        ...                                    # the measurement
        host.overlaps_monotonic(t0, t1)        # did any CPU pause (or was held) within [t0, t1]?
        host.paused_ms_monotonic(t0, t1)       # for how long (ms, merged): the sample is disturbed
    host.summary()                             # figures for results (see ``summary``)

Where SCHED_FIFO is not allowed (not root) the watchers run at ordinary priority and the
summary says so (``realtime: false``): their late wake-ups may then be our own load.
"""

from __future__ import annotations

import bisect
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.lab.scratch import PAUSES_PREFIX, owned_scratch_dir

WATCHER_PRIORITY = 50  # above anything of ours (nothing else runs real-time), below the kernel's own
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 3.0
PROC_STAT = Path("/proc/stat")
PROC_PRESSURE_CPU = Path("/proc/pressure/cpu")
TMP_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None


@dataclass(frozen=True, slots=True)
class Pause:
    """One late wake-up of the watcher of ``cpu``: the pause lies within these bounds (ns).
    ``runnable_ns``: how long of it the watcher was woken but waiting for its CPU."""

    cpu: int
    mono_start: int
    mono_end: int
    real_start: int
    real_end: int
    runnable_ns: int = 0

    @property
    def ms(self) -> float:
        return (self.mono_end - self.mono_start) / 1e6

    @property
    def held(self) -> bool:
        """The CPU ran, but kernel code or a real-time task kept the watcher waiting (most of
        the overrun spent runnable); else the vCPU did not run at all: a host pause."""
        overrun = self.mono_end - self.mono_start - 1_000_000
        return self.runnable_ns * 2 >= overrun


def read_cpu_times(path: Path = PROC_STAT) -> dict[int, dict[str, int]]:
    """Per CPU (``cpuN`` lines): total, idle (idle + iowait), steal, in clock ticks."""
    out: dict[int, dict[str, int]] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *fields = line.split()
        values = [int(v) for v in fields[:8]] + [0] * (8 - len(fields[:8]))
        user, nice, system, idle, iowait, irq, softirq, steal = values
        out[int(name[3:])] = {"total": user + nice + system + idle + iowait + irq + softirq + steal,
                              "idle": idle + iowait, "steal": steal}
    return out


def read_pressure(path: Path = PROC_PRESSURE_CPU) -> dict[str, int] | None:
    """``{"some": us, "full": us}`` (cumulative stall totals), None without PSI."""
    try:
        text = path.read_text()
    except OSError:
        return None
    totals = {}
    for line in text.splitlines():
        kind, *fields = line.split()
        for field in fields:
            if field.startswith("total="):
                totals[kind] = int(field[6:])
    return totals or None


def merged(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping windows joined, by start."""
    out: list[list[int]] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _overlaps(windows: list[tuple[int, int]], start_ns: int, end_ns: int) -> bool:
    """Whether a window of a merged, sorted list overlaps [start_ns, end_ns]."""
    i = bisect.bisect_right(windows, (end_ns, float("inf")))
    return i > 0 and windows[i - 1][1] >= start_ns


class _Watcher:
    def __init__(self, cpu: int, path: Path, priority: int, threshold_us: int) -> None:
        self.cpu = cpu
        self.path = path
        self.policy = ""
        self.priority = 0
        self.final: dict = {}
        self._offset = 0
        self._partial = b""
        self._buffer = b""
        self.pauses: list[Pause] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.lab.pausewatch", "--cpu", str(cpu), "--out", str(path),
             "--priority", str(priority), "--threshold-us", str(threshold_us)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, close_fds=True)  # a terminal's Ctrl-C is for the measuring process

    def wait_ready(self, deadline: float) -> None:
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise RuntimeError(f"pause watcher of CPU {self.cpu} did not start within {READY_TIMEOUT_S:g} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
                raise RuntimeError(f"pause watcher of CPU {self.cpu} exited: {err[-1] if err else self.proc.wait()}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        _, policy, priority = line.decode().split()
        self.policy, self.priority = policy, int(priority)

    def read_new(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            self.pauses.append(Pause(self.cpu, *(int(x) for x in line.split())))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        for line in (self._buffer + out).decode(errors="replace").splitlines():
            if line.startswith("{"):
                self.final = json.loads(line)


class _Recorded:
    """Pauses recorded earlier (``PauseMonitor.replay``): what a watcher leaves behind."""

    def __init__(self, cpu: int, pauses: list[Pause]) -> None:
        self.cpu, self.pauses, self.policy, self.final = cpu, pauses, "fifo", {}

    def read_new(self) -> None:
        pass


class PauseMonitor:
    """Pause watchers (one process per CPU, SCHED_FIFO, pinned), steal time and CPU pressure
    over one window; see the module docstring."""

    def __init__(self, threshold_ms: float = 1.0, cpus: set[int] | None = None,
                 priority: int = WATCHER_PRIORITY) -> None:
        self.threshold_ms = threshold_ms
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self.priority = priority
        self._watchers: list[_Watcher] = []
        self._dir: Path | None = None
        self.started_ns = self.stopped_ns = 0  # realtime
        self.started_mono_ns = self.stopped_mono_ns = 0
        self._stat0: dict = {}
        self._stat1: dict = {}
        self._pressure0: dict | None = None
        self._pressure1: dict | None = None
        self._cache: tuple[int, list[tuple[int, int]], list[tuple[int, int]]] | None = None

    # -- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> PauseMonitor:  # noqa: PYI034
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> PauseMonitor:
        # tagged with this process: `testbed lab clean` removes it if we are killed
        self._dir = owned_scratch_dir(PAUSES_PREFIX, TMP_ROOT)
        try:
            for cpu in self.cpus:
                self._watchers.append(_Watcher(cpu, self._dir / f"cpu{cpu}", self.priority,
                                               int(self.threshold_ms * 1000)))
            deadline = time.monotonic() + READY_TIMEOUT_S
            for w in self._watchers:
                w.wait_ready(deadline)
        except BaseException:
            self.stop()
            raise
        self._stat0, self._pressure0 = read_cpu_times(), read_pressure()
        self.started_ns, self.started_mono_ns = time.time_ns(), time.monotonic_ns()
        return self

    def stop(self) -> None:
        if self._dir is None:
            return
        if self._watchers and not self.stopped_mono_ns:
            self.stopped_ns, self.stopped_mono_ns = time.time_ns(), time.monotonic_ns()
            self._stat1, self._pressure1 = read_cpu_times(), read_pressure()
        for w in self._watchers:
            w.stop()
            w.read_new()
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self._cache = None

    @classmethod
    def replay(cls, pauses: list[Pause], start_ns: int = 0, end_ns: int = 0) -> PauseMonitor:
        """A stopped monitor holding ``pauses`` (e.g. read back from a run's host.json),
        for the same questions; ``start_ns``/``end_ns``: its window (monotonic)."""
        monitor = cls(cpus=sorted({p.cpu for p in pauses}) or [0])
        monitor._watchers = [_Recorded(cpu, [p for p in pauses if p.cpu == cpu]) for cpu in monitor.cpus]
        monitor.started_mono_ns, monitor.stopped_mono_ns = start_ns, end_ns or start_ns + 1
        return monitor

    @property
    def realtime(self) -> bool:
        """Every watcher runs at SCHED_FIFO (else late wake-ups may be our own load)."""
        return bool(self._watchers) and all(w.policy == "fifo" for w in self._watchers)

    # -- pauses ----------------------------------------------------------------------------

    def _refresh(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        if self._dir is not None:
            for w in self._watchers:
                w.read_new()
        count = sum(len(w.pauses) for w in self._watchers)
        if self._cache is None or self._cache[0] != count:
            every = [p for w in self._watchers for p in w.pauses]
            self._cache = (count, merged([(p.mono_start, p.mono_end) for p in every]),
                           merged([(p.real_start, p.real_end) for p in every]))
        return self._cache[1], self._cache[2]

    @property
    def pauses(self) -> list[Pause]:
        """Every late wake-up of every CPU's watcher, by monotonic start."""
        self._refresh()
        return sorted((p for w in self._watchers for p in w.pauses), key=lambda p: p.mono_start)

    def pauses_of(self, cpu: int) -> list[Pause]:
        return [p for p in self.pauses if p.cpu == cpu]

    @property
    def windows_monotonic(self) -> list[tuple[int, int]]:
        """When at least one CPU was paused or held (a late wake-up of its watcher, whatever
        the cause: either disturbs a sample), as merged (start, end) in time.monotonic_ns()."""
        return self._refresh()[0]

    @property
    def windows_realtime(self) -> list[tuple[int, int]]:
        """The same in time.time_ns() (for samples stamped by other programs, e.g. ``ping -D``)."""
        return self._refresh()[1]

    def overlaps(self, start_ns: int, end_ns: int) -> bool:
        """True when a late wake-up of any CPU's watcher overlaps [start_ns, end_ns] (realtime)."""
        return _overlaps(self.windows_realtime, start_ns, end_ns)

    def overlaps_monotonic(self, start_ns: int, end_ns: int) -> bool:
        """True when a late wake-up of any CPU's watcher overlaps [start_ns, end_ns] (monotonic)."""
        return _overlaps(self.windows_monotonic, start_ns, end_ns)

    def paused_ms_monotonic(self, start_ns: int, end_ns: int) -> float:
        """How long (ms) at least one CPU was paused or held within [start_ns, end_ns] (monotonic)."""
        total = sum(max(0, min(e, end_ns) - max(s, start_ns)) for s, e in self.windows_monotonic)
        return round(total / 1e6, 1)

    def between(self, start_ns: int, end_ns: int) -> list[float]:
        """How long (ms) each pause (any CPU, merged) that began within [start_ns, end_ns]
        (realtime) lasted."""
        return [round((e - s) / 1e6, 1) for s, e in self.windows_realtime if start_ns <= s <= end_ns]

    # -- figures ---------------------------------------------------------------------------

    def _span_ns(self) -> int:
        end = self.stopped_mono_ns or time.monotonic_ns()
        return max(1, end - self.started_mono_ns)

    def summary(self) -> dict:
        """Figures of the window (fractions of it):

        - ``paused_fraction``/``pauses``/``longest_ms``: host pauses, when the vCPU did not
          run at all (at least one CPU; ``per_cpu`` each), next to ``steal_fraction``, what
          the hypervisor says it took (per CPU, the largest);
        - ``cpu_held``: when a CPU did run but kernel code (this kernel does not preempt it)
          or a real-time task kept even a real-time watcher waiting: not a host pause, not
          ordinary load either;
        - ``disturbed_fraction``: either of those (a sample overlapping one is disturbed);
        - ``load``: how busy the CPUs were and how often a task waited for one (CPU
          pressure): our own and other programs' load, which the watchers do not count.
        """
        self._refresh()
        span = self._span_ns()
        lo, hi = self.started_mono_ns, self.started_mono_ns + span
        stat1 = self._stat1 or read_cpu_times()
        pressure1 = self._pressure1 if self._stat1 else read_pressure()

        def figures(pauses: list[Pause]) -> dict:
            windows = merged([(max(p.mono_start, lo), min(p.mono_end, hi)) for p in pauses
                              if p.mono_end > lo and p.mono_start < hi])
            return {"pauses": len(windows), "fraction": round(sum(e - s for s, e in windows) / span, 4),
                    "longest_ms": round(max((e - s for s, e in windows), default=0) / 1e6, 1)}

        every = [p for w in self._watchers for p in w.pauses]
        host = figures([p for p in every if not p.held])
        held = figures([p for p in every if p.held])
        per_cpu = {}
        for w in self._watchers:
            mine = figures([p for p in w.pauses if not p.held])
            cpu = {"pauses": mine["pauses"], "paused_fraction": mine["fraction"], "longest_ms": mine["longest_ms"],
                   "held_fraction": figures([p for p in w.pauses if p.held])["fraction"], "laps": w.final.get("laps")}
            a, b = self._stat0.get(w.cpu), stat1.get(w.cpu)
            if a and b and b["total"] > a["total"]:
                ticks = b["total"] - a["total"]
                steal = b["steal"] - a["steal"]
                cpu["steal_fraction"] = round(steal / ticks, 4)
                cpu["busy_fraction"] = round(1 - (b["idle"] - a["idle"] + steal) / ticks, 4)
            per_cpu[str(w.cpu)] = cpu
        steals = [c["steal_fraction"] for c in per_cpu.values() if "steal_fraction" in c]
        busy = [c["busy_fraction"] for c in per_cpu.values() if "busy_fraction" in c]
        pressure = None
        if self._pressure0 and pressure1 and "some" in pressure1 and "some" in self._pressure0:
            pressure = round((pressure1["some"] - self._pressure0["some"]) * 1000 / span, 4)
        return {
            "monitor": {"watchers": "one process per CPU, pinned, "
                                    + (f"SCHED_FIFO priority {self.priority}" if self.realtime
                                       else "ordinary priority (SCHED_FIFO refused: pauses may be our own load)"),
                        "realtime": self.realtime, "threshold_ms": self.threshold_ms, "cpus": len(self.cpus),
                        "watcher_cpu_s": round(sum(w.final.get("cpu_s") or 0 for w in self._watchers), 3)},
            "seconds": round(span / 1e9, 2),
            "pauses": host["pauses"],
            "paused_fraction": host["fraction"],
            "longest_ms": host["longest_ms"],
            "steal_fraction": round(max(steals), 4) if steals else None,
            "cpu_held": {"pauses": held["pauses"], "fraction": held["fraction"], "longest_ms": held["longest_ms"]},
            "disturbed_fraction": figures(every)["fraction"],
            "per_cpu": per_cpu,
            "load": {"busy_fraction": round(sum(busy) / len(busy), 4) if busy else None,
                         "cpu_pressure_some": pressure},
        }


def describe(summary: dict) -> str:
    """One sentence for reports: the host's pauses, the CPU held by the kernel, then our own
    load (never called a pause)."""
    per = ", ".join(f"CPU {c} {v['paused_fraction']:.1%}" for c, v in summary["per_cpu"].items())
    steal = summary.get("steal_fraction")
    held = summary["cpu_held"]
    load = summary["load"]
    text = (f"host pauses: {summary['paused_fraction']:.1%} of {summary['seconds']:g} s ({per}; "
            f"{summary['pauses']} pauses, longest {summary['longest_ms']:g} ms)"
            + (f", steal time up to {steal:.1%} per CPU" if steal is not None else ""))
    if held["pauses"]:
        text += (f"; CPU held by kernel code or a real-time task: {held['fraction']:.1%} "
                 f"({held['pauses']} times, longest {held['longest_ms']:g} ms)")
    if not summary["monitor"]["realtime"]:
        text += " [watchers NOT real-time: these may include our own load]"
    if load.get("busy_fraction") is not None:
        text += f"; load (not pauses): CPUs {load['busy_fraction']:.0%} busy"
        if load.get("ours_fraction") is not None:
            text += f" (this run {load['ours_fraction']:.0%}, other programs {load['others_fraction']:.0%})"
        if load.get("cpu_pressure_some") is not None:
            text += f", a task waited for a CPU {load['cpu_pressure_some']:.0%} of the time"
    return text


TRUSTED_DISTURBED = 0.01  # at most this share of the time disturbed for "trusted"
TRUSTED_LONGEST_MS = 20.0
UNTRUSTED = 0.10  # host pauses, steal or CPU held this much: timing from here is not trusted
OTHER_LOAD_BUSY = 0.25  # with nothing of ours running, CPUs this busy: others load the machine


def timing_verdict(summary: dict, *, idle: bool = False) -> tuple[str, list[str]]:
    """("trusted" | "usable" | "not trusted", reasons) for timing results from this machine.

    trusted: under 1 % of the time disturbed (host pauses or the CPU held), none over 20 ms;
    usable: more than that, but under 10 %: judge on undisturbed samples only (the testbed's
    verdicts do); not trusted: 10 % or more, or the watchers could not run at real-time
    priority (then our own load and pauses cannot be told apart). ``idle``: nothing of ours
    ran in the window, so busy CPUs mean other programs load the machine (usable at best).
    """
    reasons = []
    if not summary["monitor"]["realtime"]:
        return "not trusted", ["the pause watchers could not run at SCHED_FIFO priority (run as root): "
                               "host pauses and load cannot be told apart"]
    paused, held = summary["paused_fraction"], summary["cpu_held"]["fraction"]
    steal = summary.get("steal_fraction") or 0.0
    worst = max(summary["longest_ms"], summary["cpu_held"]["longest_ms"])
    if paused >= UNTRUSTED or steal >= UNTRUSTED or held >= UNTRUSTED:
        return "not trusted", [f"host pauses {paused:.1%}, steal {steal:.1%}, CPU held {held:.1%} of the time: "
                               f"too few undisturbed samples to judge sub-millisecond figures"]
    level = "trusted"
    if summary["disturbed_fraction"] >= TRUSTED_DISTURBED or worst > TRUSTED_LONGEST_MS:
        level = "usable"
        reasons.append(f"disturbed {summary['disturbed_fraction']:.1%} of the time (longest {worst:g} ms): "
                       "judge on the undisturbed samples (the testbed's verdicts do)")
    busy = summary["load"].get("busy_fraction")
    if idle and busy is not None and busy >= OTHER_LOAD_BUSY:
        level = "usable"
        reasons.append(f"other programs kept the CPUs {busy:.0%} busy: our figures will share the CPUs with them")
    if summary["monitor"]["cpus"] < 2:
        level = "usable"
        reasons.append("one CPU: delay lines, agents and captures share it")
    return level, reasons or ["host pauses and CPU holds are rare and short here"]
