"""What the engines return: actions for the agent to carry out, in order.

Engines never do I/O: each call (``receive``, ``handle_timer``, ``move``) returns a list of
actions.

- ``Send``: a whole IPv6 packet to put on the wire.
- ``Persist``: a sequence record to make durable *before* the actions that follow it. Its
  ``guards`` says how many of the actions right after it depend on it (the ``Send`` of the BA
  or BU that carries the number, and the events that tell of it). The agent writes the record
  and goes on only once it is durable; when the write fails, it carries out none of the
  guarded actions and calls the engine's ``persist_failed(persist, reason, now)``, which puts
  the engine back as it was before the input and returns what to do instead (a
  ``store_failed`` event, a drop, a retry).
- events (``testbed.mip6.events``): lines for the event log.

So "durable before the packet leaves" (R4) is visible in the order of the actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from testbed.mip6.events import Event
from testbed.mip6.persistence import SeqRecord


class Send(NamedTuple):
    """A whole IPv6 packet to send (a named tuple: immutable, and quick to make on the
    per-packet path)."""

    packet: bytes  # a whole IPv6 packet, headers included
    what: str = ""  # short description for logs ("BU", "HoTI tunnelled", ...)


@dataclass(slots=True)
class Persist:
    store_key: str  # the record's key (never key material)
    record: SeqRecord
    guards: int = 0  # how many of the actions right after this one need it durable
    undo: object = field(default=None, repr=False, compare=False)  # the engine's, for persist_failed


Action = Send | Persist | Event


def carry_out(actions: list, write: Callable[[Persist], str | None],
              persist_failed: Callable[[Persist, str], list]) -> list:
    """The actions as an agent carries them out, in order, without the I/O: each ``Persist``
    is handed to ``write``, which returns None once the record is durable, else why not; the
    actions a failed one guards are replaced by ``persist_failed(persist, reason)``'s (carried
    out in turn). Returns what was carried out, Persists included (the simulated network
    and the tests; the agent has its own loop, on the per-packet path)."""
    out: list = []
    skip = 0
    for action in actions:
        if skip:
            skip -= 1
            continue
        if type(action) is Persist:
            reason = write(action)
            if reason is not None:
                skip = action.guards
                out += carry_out(persist_failed(action, reason), write, persist_failed)
                continue
        out.append(action)
    return out
