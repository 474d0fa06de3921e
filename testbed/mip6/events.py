"""Structured events and the actions the engines return.

Engines never do I/O: each call returns a list of actions. ``Send`` carries a whole IPv6
packet for the agent to put on the wire; ``Event`` is one line of the event log (JSON
lines, docs/architecture.md): ``t_ns`` (the ``now`` the engine was given, time.monotonic_ns),
``node``, ``event`` and the event's fields. Secrets never go into events.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Send:
    packet: bytes  # a whole IPv6 packet, headers included
    what: str = ""  # short description for logs ("BU", "HoTI tunnelled", ...)


@dataclass(frozen=True, slots=True)
class Event:
    t_ns: int
    node: str
    event: str
    fields: dict

    def as_dict(self) -> dict:
        return {"t_ns": self.t_ns, "node": self.node, "event": self.event, **self.fields}


Action = Send | Event


class EventSource:
    """For engines: events stamped with the engine's ``now`` and its ``node`` name."""

    node: str

    def _event(self, now: int, name: str, **fields) -> Event:
        return Event(now, self.node, name, fields)

    def _drop(self, now: int, reason: str, **fields) -> Event:
        return Event(now, self.node, "drop", {"reason": reason, **fields})


@lru_cache(maxsize=4096)
def addr(a: bytes | None) -> str | None:
    """Render a 16-octet address for an event (cached: the same few addresses recur)."""
    return None if a is None else str(ipaddress.IPv6Address(a))
