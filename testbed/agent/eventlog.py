"""The agent's event log: JSON lines, one object per event (docs/architecture.md), flushed per batch."""

from __future__ import annotations

import json
import os
from pathlib import Path


class EventLog:
    def __init__(self, path: Path, node: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.node = node
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._file = os.fdopen(fd, "a", buffering=1 << 16)
        self._dumps = json.JSONEncoder(separators=(",", ":"), default=str).encode

    def write(self, record: dict) -> None:
        self._file.write(self._dumps(record))
        self._file.write("\n")

    def event(self, t_ns: int, name: str, **fields) -> None:
        self.write({"t_ns": t_ns, "node": self.node, "event": name, **fields})

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def read_events(path: str | os.PathLike) -> list[dict]:
    """Every event of a log (a torn last line, from a killed agent, is skipped)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out
