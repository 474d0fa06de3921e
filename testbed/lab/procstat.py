"""CPU time and memory of a process, and what the machine did meanwhile, from /proc.

- ``cpu_seconds(pid)``: user + system time of a whole process (``/proc/<pid>/stat`` utime +
  stime, in clock ticks of 1/``SC_CLK_TCK`` s, usually 10 ms: count over many operations).
- ``rss_bytes(pid)``: its resident set size (``/proc/<pid>/statm``).
- ``HostSample``: load average, the kernel's steal time per CPU (time the host ran something
  else while a vCPU wanted to run: the host's pauses), CPU pressure (our own contention),
  and every process's CPU time, so that a run can say what else was busy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

CLOCK_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; comm may hold spaces


def cpu_seconds(pid: int) -> float:
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_S  # utime, stime (fields 14, 15)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * PAGE_BYTES


def filesystem_type(path: str | os.PathLike) -> str:
    """The type of the file system ``path`` is on (ext4, tmpfs, ...), from /proc/self/mounts."""
    target = os.path.realpath(path)
    best, kind = "", "unknown"
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            mount = parts[1].replace("\\040", " ")
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, kind = mount, parts[2]
    return kind


def _steal_ticks() -> dict[str, int]:
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3:4].isdigit():
                parts = line.split()
                out[parts[0]] = int(parts[8])  # steal
    return out


def _cpu_pressure_us() -> int | None:
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _process_ticks() -> dict[int, tuple[str, int]]:
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        out[int(name)] = (comm, int(fields[11]) + int(fields[12]))
    return out


@dataclass
class HostSample:
    t: float = field(default_factory=time.monotonic)
    loadavg: tuple[float, float, float] = field(default_factory=lambda: os.getloadavg())
    steal: dict[str, int] = field(default_factory=_steal_ticks)
    pressure_us: int | None = field(default_factory=_cpu_pressure_us)
    processes: dict[int, tuple[str, int]] = field(default_factory=_process_ticks)

    def since(self, start: HostSample, ours: set[int] = frozenset(), top: int = 5) -> dict:
        """What the machine did between ``start`` and this sample: steal (host pauses) per CPU,
        the share of the time some task waited for a CPU, and the busiest processes that are
        not in ``ours`` (pids of this run), with their CPU seconds."""
        span = max(1e-9, self.t - start.t)
        steal = {cpu: round((self.steal.get(cpu, 0) - start.steal.get(cpu, 0)) * CLOCK_TICK_S, 2)
                 for cpu in self.steal}
        others = []
        for pid, (comm, ticks) in self.processes.items():
            if pid in ours or pid == os.getpid():
                continue
            before = start.processes.get(pid, (comm, 0))[1]
            if ticks - before > 0:
                others.append((round((ticks - before) * CLOCK_TICK_S, 2), pid, comm))
        others.sort(reverse=True)
        pressure = None
        if self.pressure_us is not None and start.pressure_us is not None:
            pressure = round((self.pressure_us - start.pressure_us) / 1e6 / span, 3)
        return {
            "seconds": round(span, 2),
            "loadavg_1min_before": round(start.loadavg[0], 2),
            "loadavg_1min_after": round(self.loadavg[0], 2),
            "steal_s": steal,
            "cpu_pressure_some": pressure,
            "other_busy": [{"pid": pid, "comm": comm, "cpu_s": cpu} for cpu, pid, comm in others[:top]],
        }
