"""The agent's event log: JSON lines, one object per event (docs/architecture.md), flushed per batch.

The agent writes typed events (``testbed.mip6.events``, ``testbed.agent.events``); a tool
reading a log gets them back typed with ``read_typed_events`` (or the plain objects with
``read_events``).
"""

from __future__ import annotations

import json
import os
import re
import typing
from pathlib import Path

from dataclasses import fields

from testbed.agent.events import decode_event
from testbed.mip6.events import Event


class EventLog:
    """Lines are kept in a list and written by ``flush`` in one ``write`` (the agent flushes
    after each batch of inputs; MAX_PENDING lines flush at once)."""

    MAX_PENDING = 1024

    def __init__(self, path: Path, node: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.node = node
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self._lines: list[str] = []

    def write(self, event: Event) -> None:
        self._lines.append(json_line(event))
        if len(self._lines) >= self.MAX_PENDING:
            self.flush()

    def write_all(self, events) -> None:
        """``write`` each of ``events``, in order (the agent's per-batch path: one call)."""
        lines = self._lines
        writers = _WRITERS
        for event in events:
            writer = writers.get(type(event))
            lines.append(writer(event) if writer is not None else json_line(event))
        if len(lines) >= self.MAX_PENDING:
            self.flush()

    def emit(self, kind: type[Event], t_ns: int, **fields) -> None:
        """Write an event of class ``kind`` of this log's node."""
        self.write(kind(t_ns, self.node, **fields))

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        lines.append("")
        data = memoryview("\n".join(lines).encode())
        while data:
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
_string = json.encoder.encode_basestring_ascii  # what _encode does with a str (ensure_ascii)
_int = int.__repr__
_BASE = ("t_ns", "node", "event")


def generic_line(event: Event) -> str:
    """The event's log line (without its newline): ``as_dict`` as compact ASCII JSON, ``str``
    for what JSON does not hold. What each class's own writer (``json_line``) must equal."""
    return _encode(event.as_dict())


def json_line(event: Event) -> str:
    """``generic_line(event)``, through a writer made once per event class (``_writer``)."""
    kind = type(event)
    writer = _WRITERS.get(kind)
    if writer is None:
        writer = _WRITERS[kind] = _writer(kind)
    return writer(event)


def _json_value(value) -> str:
    """One field's JSON, as ``_encode`` writes it: str, int and bool directly, anything else
    (a float, an int subclass, a list) by ``_encode`` itself."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return _int(value)
    if kind is bool:
        return "true" if value else "false"
    return _encode(value)


def _writer(cls):
    """``cls``'s line writer: one f-string with the field names and event name laid out once,
    the same text as ``generic_line`` (a property test holds them equal), five times quicker.
    An agent writes four or five lines per BU (bu_received, the binding's event, ba_sent,
    packet_sent, durable_write); through the generic encoder they took longer than the engine's
    whole work on the BU. Each field is written by what its annotation says it holds (str, int,
    bool), checked per value: a value of another type goes through ``_json_value``."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.name != "event"]
    optional = {f.name for f in fields(cls) if f.default is None and f.name not in _BASE}
    if not re.fullmatch(r"[a-z0-9_]+", cls.NAME) or not all(n.isidentifier() for n in names):
        raise ValueError(f"event {cls.NAME!r}: a name the line writer cannot lay out")

    def value(i: int, name: str, text: bool = False) -> str:
        """The expression writing field ``i``; ``text``: a str (else an int may stand as itself)."""
        v = f"a{i}"
        kind = hints.get(name)
        if kind in (str, str | None):
            return f"(_s({v}) if type({v}) is str else _v({v}))"
        if kind in (int, int | None):  # an exact int formats as its repr
            return f"({v}{'.__repr__()' if text else ''} if type({v}) is int else _v({v}))"
        if kind in (bool, bool | None):
            return f"(\"true\" if {v} is True else \"false\" if {v} is False else _v({v}))"
        return f"_v({v})"

    namespace = {"_v": _json_value, "_s": _string}
    pieces = []
    for i, name in enumerate(names):
        key = f'"{name}":' if i == 0 else f',"{name}":'
        if name in optional:
            namespace[f"k{i}"] = key
            pieces.append(f'{{"" if a{i} is None else k{i} + {value(i, name, text=True)}}}')
        else:
            pieces.append(key + "{" + value(i, name) + "}")
        if name == "node":
            pieces.append(f',"event":"{cls.NAME}"')
    loads = "; ".join(f"a{i} = self.{name}" for i, name in enumerate(names))
    source = f"def json_line(self):\n    {loads}\n    return f'{{{{{''.join(pieces)}}}}}'\n"
    exec(source, namespace)  # noqa: S102 - source built from the dataclass's own (checked) names and types
    return namespace["json_line"]


_WRITERS: dict[type, object] = {}


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
