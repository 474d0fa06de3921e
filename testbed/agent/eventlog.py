"""The agent's event log: JSON lines, one object per event (docs/architecture.md), flushed per batch.

The agent writes typed events (``testbed.mip6.events``, ``testbed.agent.events``); a tool
reading a log gets them back typed with ``read_typed_events`` (or the plain objects with
``read_events``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from testbed.agent.events import decode_event
from testbed.mip6.events import Event


class EventLog:
    def __init__(self, path: Path, node: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.node = node
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._file = os.fdopen(fd, "a", buffering=1 << 16)

    def write(self, event: Event) -> None:
        self._file.write(event.json_line() + "\n")

    def emit(self, kind: type[Event], t_ns: int, **fields) -> None:
        """Write an event of class ``kind`` of this log's node."""
        self.write(kind(t_ns, self.node, **fields))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def read_events(path: str | os.PathLike) -> list[dict]:
    """Every event of a log as its JSON object (a torn last line, from a killed agent, is skipped)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def read_typed_events(path: str | os.PathLike) -> list[Event]:
    """Every event of a log, typed (``testbed.agent.events.decode_event``; a torn last line is
    skipped, an unknown event is an error: ``UnknownEvent``)."""
    return [decode_event(obj) for obj in read_events(path)]
