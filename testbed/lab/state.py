"""The state file of a run: what it created, so that a crashed run can be cleaned up.

One JSON file per run in the state directory (``/run/mip6-testbed``, or
``$MIP6_TESTBED_STATE_DIR``), written before the run creates anything and rewritten
(atomically) as it adds resources: node shells (each holds a node's network namespace),
processes, bridges. A process is recorded as pid + kernel start time, so a recycled pid is
never mistaken for ours. The file is removed when the run has removed everything.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = "/run/mip6-testbed"


def state_dir() -> Path:
    return Path(os.environ.get("MIP6_TESTBED_STATE_DIR", DEFAULT_STATE_DIR))


def process_start_time(pid: int) -> int | None:
    """The start time (clock ticks since boot) of process ``pid``, None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] == b"Z":  # a zombie has finished; only its parent's wait is missing
        return None
    return int(fields[19])


def ticks_since_boot() -> int:
    """Now, in the clock ticks of ``process_start_time`` (a process started later has more)."""
    with open("/proc/uptime") as fh:
        uptime = float(fh.read().split()[0])
    return int(uptime * os.sysconf("SC_CLK_TCK"))


def same_process(pid: int, start_time: int | None) -> bool:
    """Whether ``pid`` is still the process that had ``start_time``."""
    return start_time is not None and process_start_time(pid) == start_time


@dataclass
class ProcessRecord:
    pid: int
    start_time: int | None
    node: str
    tag: str
    argv0: str

    @classmethod
    def of(cls, pid: int, node: str, tag: str, argv0: str) -> ProcessRecord:
        return cls(pid, process_start_time(pid), node, tag, argv0)

    def alive(self) -> bool:
        return same_process(self.pid, self.start_time)


@dataclass
class RunState:
    """What one run owns. ``save()`` writes it to ``path``."""

    run_id: str
    path: Path
    run_dir: str
    run_dir_is_temporary: bool
    volatile_dir: str
    owner: ProcessRecord
    created: float = field(default_factory=time.time)
    bridges: list[str] = field(default_factory=list)
    shells: list[ProcessRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # other files or directories of the run (keys on tmpfs)

    @classmethod
    def create(cls, run_id: str, run_dir: Path, temporary: bool, volatile_dir: Path) -> RunState:
        directory = state_dir()
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = directory / f"{run_id}.json"
        # O_EXCL: two runs never share an id.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        owner = ProcessRecord.of(os.getpid(), "", "lab", "python")
        state = cls(run_id, path, str(run_dir), temporary, str(volatile_dir), owner)
        state.save()
        return state

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data

    @classmethod
    def load(cls, path: Path) -> RunState:
        data = json.loads(path.read_text())
        return cls(
            run_id=data["run_id"], path=path, run_dir=data["run_dir"],
            run_dir_is_temporary=data["run_dir_is_temporary"], volatile_dir=data["volatile_dir"],
            owner=ProcessRecord(**data["owner"]), created=data.get("created", 0.0),
            bridges=list(data.get("bridges", [])),
            shells=[ProcessRecord(**p) for p in data.get("shells", [])],
            processes=[ProcessRecord(**p) for p in data.get("processes", [])],
            paths=list(data.get("paths", [])),
        )

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, self.path)

    def add_process(self, record: ProcessRecord) -> None:
        self.processes.append(record)
        self.save()

    def drop_process(self, pid: int) -> None:
        self.processes = [p for p in self.processes if p.pid != pid]
        self.save()

    def add_shell(self, record: ProcessRecord) -> None:
        self.shells.append(record)
        self.save()

    def add_path(self, path: str | Path) -> None:
        """A file or directory outside the run directory that clean-up must remove."""
        self.paths.append(str(path))
        self.save()

    def add_bridge(self, name: str) -> None:
        self.bridges.append(name)
        self.save()

    def remove(self) -> None:
        for path in (self.path, self.path.with_suffix(".tmp")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def list_states() -> list[Path]:
    directory = state_dir()
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.json"))
