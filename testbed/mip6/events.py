"""Typed events: one small class per event the engines emit, with its fields (as h11 does).

An event is a line of the agent's event log (JSON lines, docs/architecture.md): ``t_ns``
(the ``now`` the engine was given, time.monotonic_ns), ``node``, ``event`` (the class's
``NAME``) and the event's fields, in the order the class declares them. Fields whose default
is None are optional: left out of the line when None (a BU received by a home agent has no
``ack``; a drop names only what it knows). Values are what JSON holds (str, int, bool):
addresses are rendered as text (``addr``), so an event read back from a log
(``event_from_dict``) equals the one the engine made.

Consumers match on types (``isinstance(e, BindingCreated)``), never on strings: a misspelt
class is a NameError, a misspelt field a TypeError, an unknown event name in a log an
``UnknownEvent``. Secrets never go into events.

``ENGINE_EVENTS`` maps names to classes; the agent adds its own (``testbed.agent.events``).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import ClassVar

_BASE = ("t_ns", "node", "event")


@dataclass(slots=True)
class Event:
    """Base of every event: when (``t_ns``) and where (``node``)."""

    t_ns: int
    node: str
    NAME: ClassVar[str] = ""
    _FIELDS: ClassVar[tuple[tuple[str, bool], ...]] = ()

    def as_dict(self) -> dict:
        """The event's JSON object, as the event log writes it."""
        out = {"t_ns": self.t_ns, "node": self.node, "event": self.NAME}
        for name, optional in self._FIELDS:
            value = getattr(self, name)
            if value is None and optional:
                continue
            out[name] = value
        return out


class UnknownEvent(ValueError):
    """An event log line that names no known event, or does not fit its class."""


ENGINE_EVENTS: dict[str, type[Event]] = {}


def event_class(name: str, registry: dict[str, type[Event]] = ENGINE_EVENTS):
    """Class decorator: a keyword-only slots dataclass named ``name`` in the event log,
    entered in ``registry`` (a name used twice is an error)."""

    def wrap(cls):
        cls = dataclass(slots=True, kw_only=True)(cls)
        if name in registry:
            raise ValueError(f"event {name!r} defined twice ({registry[name].__name__} and {cls.__name__})")
        cls.NAME = name
        cls._FIELDS = tuple((f.name, f.default is None) for f in fields(cls) if f.name not in _BASE)
        registry[name] = cls
        return cls

    return wrap


def event_from_dict(obj: dict, registry: dict[str, type[Event]] = ENGINE_EVENTS) -> Event:
    """The typed event of one event-log object (``json.loads`` of a line); UnknownEvent when
    its name is not in ``registry`` or its fields are not the class's."""
    if not isinstance(obj, dict):
        raise UnknownEvent(f"an event must be a JSON object, not {type(obj).__name__}")
    name = obj.get("event")
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UnknownEvent(f"unknown event {name!r}")
    kwargs = {k: v for k, v in obj.items() if k not in _BASE}
    try:
        return cls(obj["t_ns"], obj["node"], **kwargs)
    except (KeyError, TypeError) as exc:
        raise UnknownEvent(f"event {name!r} does not fit {cls.__name__}: {exc}") from None


_HEXTETS = struct.Struct("!8H").unpack


def _layouts() -> dict[tuple[bool, ...], tuple[str, int, int]]:
    """For each pattern of zero hextets: the format of the text and the hextets it leaves
    out (RFC 5952 as ipaddress writes it: the first longest run of two or more as ``::``)."""
    out = {}
    for mask in range(256):
        zero = tuple(bool(mask >> i & 1) for i in range(8))
        best, best_len, start = 0, 0, -1
        for i in range(8):
            if not zero[i]:
                start = -1
                continue
            if start < 0:
                start = i
            if i - start + 1 > best_len:
                best, best_len = start, i - start + 1
        if best_len < 2:
            out[zero] = (":".join(["%x"] * 8), 0, 0)
        else:
            out[zero] = (":".join(["%x"] * best) + "::" + ":".join(["%x"] * (8 - best - best_len)), best, best + best_len)
    return out


_LAYOUTS = _layouts()


@lru_cache(maxsize=4096)
def addr(a: bytes | None) -> str | None:
    """Render a 16-octet address for an event, as ``str(ipaddress.IPv6Address(a))`` does,
    from a format laid out once per pattern of zero hextets: about 5x quicker, and under load
    every BU names a care-of address the cache has not seen. IPv4-mapped addresses go through
    ipaddress, whose text for them depends on the Python version."""
    if a is None:
        return None
    h = _HEXTETS(a)
    if h[5] == 0xFFFF and not (h[0] or h[1] or h[2] or h[3] or h[4]):
        return str(ipaddress.IPv6Address(a))
    fmt, cut, end = _LAYOUTS[(not h[0], not h[1], not h[2], not h[3], not h[4], not h[5], not h[6], not h[7])]
    return fmt % (h[:cut] + h[end:]) if end else fmt % h


# ---------------------------------------------------------------- every engine


@event_class("drop")
class Drop(Event):
    """An input dropped, and why; the other fields name what the engine knew of it."""

    reason: str
    src: str | None = None
    dst: str | None = None
    home: str | None = None
    careof: str | None = None
    outer_src: str | None = None
    peer: str | None = None
    mechanism: str | None = None
    status: int | None = None
    seq: int | None = None
    expected: int | None = None
    ours: int | None = None
    authenticated: bool | None = None
    option: int | None = None


@event_class("store_failed")
class StoreFailed(Event):
    """A sequence record could not be read or made durable: nothing that depends on it was
    sent. ``retry_t_ns``: when a mobile node tries again."""

    home: str | None = None
    peer: str | None = None
    seq: int | None = None
    reason: str
    retry_t_ns: int | None = None


@event_class("rekey_required")
class RekeyRequired(Event):
    """R13: a precomputed key may not move the sequence number further; a new Kcn is needed.
    ``home`` at a CN, ``peer`` at an MN; ``step`` when a step would have crossed the bound."""

    home: str | None = None
    peer: str | None = None
    key_id: str
    advance: int
    step: int | None = None
    reason: str


@event_class("error_not_sent")
class ErrorNotSent(Event):
    """An error message (Binding Error, ICMPv6 Parameter Problem) the rules kept back."""

    what: str
    reason: str
    status: int | None = None
    home: str | None = None
    to: str


@event_class("icmp_sent")
class IcmpSent(Event):
    type: int
    code: int
    pointer: int
    to: str


# ---------------------------------------------------------------- correspondent node and home agent


@event_class("bu_received")
class BuReceived(Event):
    """A Binding Update arrived (``ack`` at a correspondent node only)."""

    home: str
    careof: str
    seq: int
    lifetime: int
    ack: bool | None = None
    home_reg: bool


@event_class("bu_rejected")
class BuRejected(Event):
    home: str
    seq: int
    last_seq: int | None = None
    reason: str
    status: int | None = None


@event_class("ba_sent")
class BaSent(Event):
    home: str
    careof: str
    status: int
    seq: int
    authenticated: bool


@event_class("ba_not_sent")
class BaNotSent(Event):
    """TEST ONLY (testbed/mip6/weakening.py): a weakened engine left out a BA it owed."""

    status: int
    reason: str


@event_class("be_sent")
class BeSent(Event):
    status: int
    home: str
    to: str


@event_class("hoti_received")
class HotiReceived(Event):
    home: str


@event_class("hot_sent")
class HotSent(Event):
    home: str
    nonce_index: int


@event_class("coti_received")
class CotiReceived(Event):
    careof: str


@event_class("cot_sent")
class CotSent(Event):
    careof: str
    nonce_index: int


@event_class("binding_created")
class BindingCreated(Event):
    home: str
    careof: str
    seq: int
    mechanism: str
    lifetime: int


@event_class("binding_updated")
class BindingUpdated(Event):
    """An existing binding moved to another care-of address."""

    home: str
    careof: str
    seq: int
    mechanism: str
    lifetime: int


@event_class("binding_refreshed")
class BindingRefreshed(Event):
    """An existing binding renewed at the same care-of address."""

    home: str
    careof: str
    seq: int
    mechanism: str
    lifetime: int


@event_class("binding_deleted")
class BindingDeleted(Event):
    home: str
    seq: int
    mechanism: str


@event_class("binding_expired")
class BindingExpired(Event):
    home: str
    careof: str
    seq: int


# ---------------------------------------------------------------- home agent


@event_class("home_binding_created")
class HomeBindingCreated(Event):
    home: str
    careof: str
    seq: int
    lifetime: int


@event_class("home_binding_updated")
class HomeBindingUpdated(Event):
    home: str
    careof: str
    seq: int
    lifetime: int


@event_class("home_binding_refreshed")
class HomeBindingRefreshed(Event):
    home: str
    careof: str
    seq: int
    lifetime: int


@event_class("home_binding_deleted")
class HomeBindingDeleted(Event):
    home: str
    seq: int


@event_class("home_binding_expired")
class HomeBindingExpired(Event):
    home: str
    careof: str
    seq: int


HOME_BINDING_ADDED = (HomeBindingCreated, HomeBindingUpdated)
"""Events after which the home address is routed into the home agent's tunnel."""
HOME_BINDING_REMOVED = (HomeBindingDeleted, HomeBindingExpired)
"""Events after which it is not any more."""


@event_class("tunnelled_to_careof")
class TunnelledToCareof(Event):
    home: str
    careof: str
    src: str


@event_class("hot_tunnelled")
class HotTunnelled(Event):
    home: str
    careof: str
    src: str


@event_class("reverse_tunnelled")
class ReverseTunnelled(Event):
    home: str
    dst: str
    careof: str


@event_class("hoti_forwarded")
class HotiForwarded(Event):
    home: str
    dst: str
    careof: str


# ---------------------------------------------------------------- mobile node


@event_class("coa_usable")
class CoaUsable(Event):
    careof: str
    at_home: bool


@event_class("send_deferred")
class SendDeferred(Event):
    """MAX_UPDATE_RATE (RFC 6275 11.8): a message held back until ``until_t_ns``."""

    peer: str
    what: str
    until_t_ns: int
    reason: str


@event_class("bu_sent")
class BuSent(Event):
    peer: str
    mechanism: str
    seq: int
    careof: str
    lifetime: int


@event_class("ba_received")
class BaReceived(Event):
    """``authenticated`` for a correspondent's BA (a home agent's is always authenticated)."""

    peer: str
    mechanism: str
    status: int
    seq: int
    authenticated: bool | None = None


@event_class("home_registered")
class HomeRegistered(Event):
    careof: str
    lifetime: int
    at_home: bool


@event_class("cn_registered")
class CnRegistered(Event):
    peer: str
    mechanism: str
    careof: str
    seq: int
    lifetime: int


@event_class("binding_refused")
class BindingRefused(Event):
    peer: str
    mechanism: str
    status: int
    seq: int | None = None
    authenticated: bool | None = None


@event_class("binding_refresh")
class BindingRefresh(Event):
    """A bound entry renews its binding before it runs out."""

    peer: str
    mechanism: str
    careof: str | None
    lifetime: int


@event_class("retransmit")
class Retransmit(Event):
    peer: str
    what: str
    timeout_ms: int


@event_class("hoti_sent")
class HotiSent(Event):
    peer: str
    tunnelled: bool


@event_class("coti_sent")
class CotiSent(Event):
    peer: str
    careof: str


@event_class("hot_received")
class HotReceived(Event):
    peer: str
    nonce_index: int


@event_class("cot_received")
class CotReceived(Event):
    peer: str
    nonce_index: int


@event_class("be_received")
class BeReceived(Event):
    peer: str
    status: int


@event_class("be_ignored")
class BeIgnored(Event):
    peer: str
    status: int
    reason: str


@event_class("brr_received")
class BrrReceived(Event):
    peer: str
