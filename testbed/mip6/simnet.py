"""A sans-I/O network for running MN, CN and HA engines together in one process.

Packets are bytes, time is simulated nanoseconds, delivery follows the outer destination
address after a configured one-way delay. A packet for a mobile node's home address while it
is away goes to the home agent's engine (the home link's owner), which decides to tunnel it.
Used by the unit tests (engines talking through real encoded packets) and to check the
analytical handover model of docs/protocol.md section 7. No sockets, threads or clocks.

Each node's ``Persist`` actions go to its own "disk" (``durable[name]``, a dict of records),
before the actions they guard, as an agent carries them out; ``persist_failure`` can make a
write fail (the node's engine is then told, and the guarded actions are not carried out).
A node restarted from its disk gets those records (``records(name)``).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Callable, Protocol

from testbed.mip6.actions import Persist, Send, carry_out
from testbed.mip6.events import Event
from testbed.mip6.packet import parse_packet
from testbed.mip6.persistence import SeqRecord


class Engine(Protocol):
    def receive(self, data: bytes, now: int) -> list: ...
    def handle_timer(self, now: int) -> list: ...
    def next_timer(self) -> int | None: ...
    def persist_failed(self, persist: Persist, reason: str, now: int) -> list: ...


@dataclass
class SimNode:
    name: str
    engine: Engine
    addresses: set[bytes]
    timer_at: int | None = None


@dataclass
class SimNetwork:
    """Nodes joined by one-way delays; ``delay(a, b)`` in ns between node names."""

    delay: Callable[[str, str], int]
    now: int = 0
    nodes: dict[str, SimNode] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    durable: dict[str, dict[str, SeqRecord]] = field(default_factory=dict)  # node -> its records on "disk"
    persist_failure: Callable[[str, Persist], str | None] | None = None  # a reason: that write fails
    unroutable: list[tuple[int, str, bytes]] = field(default_factory=list)  # (t, from, packet)
    wire: list[tuple[int, str, str, bytes]] = field(default_factory=list)  # (t, from, to, packet)
    home_agent_of: dict[bytes, str] = field(default_factory=dict)  # home address -> HA node
    filters: list[Callable[[str, str, bytes], bool]] = field(default_factory=list)  # False: drop
    _queue: list = field(default_factory=list)
    _seq: itertools.count = field(default_factory=itertools.count)

    def add(self, name: str, engine: Engine, *addresses: bytes) -> SimNode:
        node = SimNode(name, engine, set(addresses))
        self.nodes[name] = node
        return node

    def set_addresses(self, name: str, *addresses: bytes) -> None:
        self.nodes[name].addresses = set(addresses)

    def owner(self, address: bytes) -> str | None:
        for node in self.nodes.values():
            if address in node.addresses:
                return node.name
        return self.home_agent_of.get(address)

    # ------------------------------------------------------------------ driving

    def records(self, name: str) -> dict[str, SeqRecord]:
        """What node ``name`` has on its disk (a copy: the records a restarted agent reads)."""
        return dict(self.durable.get(name, {}))

    def apply(self, source: str, actions: list) -> None:
        """Carry out an engine's actions in order: records to its disk before what they
        guard, packets scheduled, events recorded."""
        self._carry_out(source, actions)
        self._rearm(source)

    def _carry_out(self, source: str, actions: list) -> None:
        engine = self.nodes[source].engine
        disk = self.durable.setdefault(source, {})

        def write(persist: Persist) -> str | None:
            reason = self.persist_failure(source, persist) if self.persist_failure is not None else None
            if reason is None:
                disk[persist.store_key] = persist.record
            return reason

        for action in carry_out(actions, write, lambda p, reason: engine.persist_failed(p, reason, self.now)):
            kind = type(action)
            if kind is Send:
                self.transmit(source, action.packet)
            elif isinstance(action, Event):
                self.events.append(action)
            elif kind is not Persist:
                raise TypeError(f"{source}: not an action: {action!r}")

    def transmit(self, source: str, packet: bytes) -> None:
        dst = parse_packet(packet).dst
        target = self.owner(dst)
        if target is None:
            self.unroutable.append((self.now, source, packet))
            return
        if not all(f(source, target, packet) for f in self.filters):
            return
        at = self.now + self.delay(source, target)
        heapq.heappush(self._queue, (at, next(self._seq), "packet", target, packet, source))

    def inject(self, source: str, packet: bytes, at: int | None = None) -> None:
        """Put a packet on the wire as if ``source`` sent it (an attacker, a replay)."""
        dst = parse_packet(packet).dst
        target = self.owner(dst)
        when = self.now if at is None else at
        heapq.heappush(self._queue, (when + self.delay(source, target), next(self._seq), "packet", target, packet, source))

    def call(self, name: str, fn: Callable[[int], list]) -> None:
        """Run ``fn(now)`` on a node's engine (a move, say) and carry out its actions."""
        self.apply(name, fn(self.now))

    def _rearm(self, name: str) -> None:
        node = self.nodes[name]
        at = node.engine.next_timer()
        if at is not None and at != node.timer_at:
            node.timer_at = at
            heapq.heappush(self._queue, (max(at, self.now), next(self._seq), "timer", name, at, None))
        elif at is None:
            node.timer_at = None

    def step(self) -> bool:
        if not self._queue:
            return False
        at, _, kind, name, payload, source = heapq.heappop(self._queue)
        self.now = max(self.now, at)
        node = self.nodes[name]
        if kind == "packet":
            self.wire.append((self.now, source, name, payload))
            self.apply(name, node.engine.receive(payload, self.now))
        elif node.timer_at == payload:
            node.timer_at = None
            self.apply(name, node.engine.handle_timer(self.now))
            due = node.engine.next_timer()
            if due is not None and due <= self.now:  # an agent would wake for it again at once, for ever
                raise RuntimeError(f"{name}: a timer still due at {due} after handle_timer({self.now})")
        return True

    def run_until(self, condition: Callable[[], bool], deadline_ns: int) -> bool:
        """Step until ``condition()`` holds (True) or simulated time passes the deadline (False)."""
        limit = self.now + deadline_ns
        while not condition():
            if not self._queue or self._queue[0][0] > limit:
                self.now = max(self.now, min(limit, self._queue[0][0]) if self._queue else limit)
                return condition()
            self.step()
        return True

    def run_for(self, duration_ns: int) -> None:
        limit = self.now + duration_ns
        while self._queue and self._queue[0][0] <= limit:
            self.step()
        self.now = limit

    def events_of(self, kind: type[Event], node: str | None = None) -> list:
        """The events of class ``kind`` (of ``node`` only, when given), in order."""
        return [e for e in self.events if isinstance(e, kind) and (node is None or e.node == node)]
