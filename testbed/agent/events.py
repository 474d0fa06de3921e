"""The events an agent logs itself (beside its engine's, ``testbed.mip6.events``), and the
decoder of a whole event log: one JSON line to its typed event.

``LOG_EVENTS`` maps every name an agent's log can hold to its class; ``decode_event`` turns a
line's object into the typed event (``UnknownEvent`` for a name no class has, or fields that
do not fit it), so a tool reading logs matches on types as the agent does.
"""

from __future__ import annotations

from testbed.mip6.events import ENGINE_EVENTS, Event, UnknownEvent, event_class, event_from_dict

AGENT_EVENTS: dict[str, type[Event]] = {}


@event_class("agent_started", AGENT_EVENTS)
class AgentStarted(Event):
    role: str
    pid: int


@event_class("store_read_only", AGENT_EVENTS)
class StoreReadOnly(Event):
    """The sequence store's file system is read-only: ``reason`` (the path and the error), and
    its ``effect`` on what the agent serves."""

    reason: str
    effect: str


@event_class("agent_stopped", AGENT_EVENTS)
class AgentStopped(Event):
    pass


@event_class("reloaded", AGENT_EVENTS)
class Reloaded(Event):
    peers: int


@event_class("reload_failed", AGENT_EVENTS)
class ReloadFailed(Event):
    reason: str


@event_class("internal_error", AGENT_EVENTS)
class InternalError(Event):
    """A callback failed, or an engine raised on an input (``where``): logged, the agent goes on."""

    where: str | None = None
    message: str | None = None
    error: str | None = None


@event_class("packet_sent", AGENT_EVENTS)
class PacketSent(Event):
    """A packet left: ``t_ns`` when the agent's send returned, ``trigger_t_ns`` the input it
    answers (a packet's kernel receive stamp, a timer, a move), ``woke_t_ns`` when the agent
    woke to handle it, ``wire_t_ns`` the kernel's transmit stamp (software, taken as the device
    took the packet; the agent asks for one on the first sends after each wake-up), absent when
    there is none. On a veth the send returns only after the peer's receive work (a delay
    line's or another node's socket, its wake-up) ran on the sender's CPU: ``wire_t_ns`` is
    when the packet left, ``t_ns`` when the agent could go on."""

    what: str
    trigger_t_ns: int
    woke_t_ns: int
    wire_t_ns: int | None = None

    @property
    def left_ns(self) -> int:
        """When the packet left: its transmit stamp, or when the send returned if it has none."""
        return self.wire_t_ns or self.t_ns


@event_class("durable_write", AGENT_EVENTS)
class DurableWrite(Event):
    """A sequence record made durable (one pwrite and one fdatasync), logged after the packets
    it guarded left: ``t_ns`` when the write began, ``end_t_ns`` when it ended, ``key`` the
    record's key (never key material: ``testbed.mip6.persistence.check_key``)."""

    end_t_ns: int
    key: str


@event_class("send_failed", AGENT_EVENTS)
class SendFailed(Event):
    what: str
    error: str


@event_class("route_failed", AGENT_EVENTS)
class RouteFailed(Event):
    home: str
    command: str
    error: str


@event_class("probe_received", AGENT_EVENTS)
class ProbeReceived(Event):
    number: int
    path: str
    to: str
    sent_t_ns: int
    one_way_us: float


@event_class("movement", AGENT_EVENTS)
class MovementEvent(Event):
    """The MN's care-of address is usable (``t_ns``), after the RA of ``ra_t_ns``."""

    prefix: str
    router: str
    careof: str
    ra_t_ns: int


@event_class("ra_ignored", AGENT_EVENTS)
class RaIgnored(Event):
    router: str
    reason: str
    prefixes: list


@event_class("ra_new_prefix", AGENT_EVENTS)
class RaNewPrefix(Event):
    prefix: str
    router: str
    home: bool
    router_lifetime: int


@event_class("home_route_failed", AGENT_EVENTS)
class HomeRouteFailed(Event):
    error: str


@event_class("default_route_failed", AGENT_EVENTS)
class DefaultRouteFailed(Event):
    """The one-message replace of the MN's default route was refused (the slower way follows)."""

    router: str
    error: str


@event_class("home_address_failed", AGENT_EVENTS)
class HomeAddressFailed(Event):
    command: str
    error: str


LOG_EVENTS: dict[str, type[Event]] = {**ENGINE_EVENTS, **AGENT_EVENTS}
"""Every event an agent's log can hold, by name."""


def decode_event(obj: dict) -> Event:
    """The typed event of one event-log object; UnknownEvent if it is none of ``LOG_EVENTS``."""
    return event_from_dict(obj, LOG_EVENTS)


__all__ = ["AGENT_EVENTS", "LOG_EVENTS", "UnknownEvent", "decode_event"]
