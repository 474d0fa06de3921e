"""Everything a mobile-node agent talks to, played by hand-built packets from one namespace
on its link: two access routers (Router Advertisements from two link-local addresses), the
home agent (RFC 4285-authenticated BAs) and a precomputed-key correspondent (BAs with BAD).
The answers follow policies the test sets; every Mobility Header packet seen is recorded."""

from __future__ import annotations

import ipaddress
import json
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from wire import Wire

from testbed.mip6.constants import IPPROTO_ICMPV6, IPPROTO_MH, BAStatus
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.errors import CodecError
from testbed.mip6.messages import BindingAck, BindingRefreshRequest, BindingUpdate, decode, encode
from testbed.mip6.options import ReplayProtection
from testbed.mip6.packet import Packet, build_packet, internet_checksum
from testbed.mip6.sealing import seal_bad, seal_mn_ha

ALL_NODES = ipaddress.IPv6Address("ff02::1").packed


def router_advertisement(router: bytes, mac: bytes, prefix: str, *, lifetime: int = 1800,
                         preferred: int = 14400, valid: int = 86400) -> bytes:
    """A whole IPv6 packet: an RA from link-local ``router`` with one autonomous prefix."""
    net = ipaddress.IPv6Network(prefix)
    body = bytes((134, 0, 0, 0, 64, 0)) + struct.pack("!HII", lifetime, 0, 0)
    body += bytes((3, 4, net.prefixlen, 0xC0)) + struct.pack("!III", valid, preferred, 0) + net.network_address.packed
    body += bytes((1, 1)) + mac  # source link-layer address
    pseudo = router + ALL_NODES + struct.pack("!I3xB", len(body), IPPROTO_ICMPV6)
    body = body[:2] + struct.pack("!H", internet_checksum(pseudo + body)) + body[4:]
    return build_packet(router, ALL_NODES, IPPROTO_ICMPV6, body, hop_limit=255)


@dataclass
class Seen:
    t: float
    packet: Packet
    msg: object


@dataclass
class LinkPeer:
    ns: str
    ifname: str
    home: bytes
    home_agent: bytes
    correspondent: bytes
    mn_ha: object  # MnHaSecurityAssociation
    data: object  # PreconfiguredData
    # policies: a BU -> (status, seq) of the BA to send, or None for no answer
    home_policy: Callable[[BindingUpdate], tuple[int, int] | None] = lambda bu: (BAStatus.ACCEPTED, bu.seq)
    cn_policy: Callable[[BindingUpdate], tuple[int, int] | None] = lambda bu: (BAStatus.ACCEPTED, bu.seq)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        link = json.loads(subprocess.run(["ip", "-n", self.ns, "-j", "link", "show", self.ifname],
                                         capture_output=True, text=True, check=True).stdout)[0]
        self.mac = bytes.fromhex(link["address"].replace(":", ""))
        self.scope = link["ifindex"]
        self.wire = Wire(self.ns)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ sending

    def ra(self, router: str, prefix: str, **kw) -> None:
        pkt = router_advertisement(ipaddress.IPv6Address(router).packed, self.mac, prefix, **kw)
        self.wire.send(pkt, scope=self.scope)

    def brr(self, careof: bytes) -> None:
        mh = encode(BindingRefreshRequest())
        self.wire.send(build_packet(self.correspondent, careof, IPPROTO_MH, mh, rh2_address=self.home))

    # ------------------------------------------------------------------ what arrived

    def bus(self, to: bytes, since: float = 0.0) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.t >= since and s.packet.dst == to and type(s.msg) is BindingUpdate]

    # ------------------------------------------------------------------ the answering loop

    def _kbm(self, careof: bytes, dereg: bool) -> bytes:
        d = self.data
        ht = home_keygen_token(d.kcn, self.home, d.home_nonce)
        return binding_management_key(ht, None if dereg else careof_keygen_token(d.kcn, careof, d.careof_nonce))

    def _answer(self, p: Packet, bu: BindingUpdate) -> bytes | None:
        ts = next((o.timestamp for o in bu.options if type(o) is ReplayProtection), None)
        careof = p.src
        if p.dst == self.home_agent and bu.home:
            decision = self.home_policy(bu)
            if decision is None:
                return None
            status, seq = decision
            msg = BindingAck(status, seq, bu.lifetime if status < 128 else 0,
                             options=(ReplayProtection(ts),) if ts is not None else ())
            mh = seal_mn_ha(msg, self.mn_ha.spi, self.mn_ha.key, careof, self.home)
            return build_packet(self.home_agent, careof, IPPROTO_MH, mh, rh2_address=self.home)
        if p.dst == self.correspondent:
            decision = self.cn_policy(bu)
            if decision is None:
                return None
            status, seq = decision
            dereg = bu.lifetime == 0 or careof == self.home
            msg = BindingAck(status, seq, bu.lifetime if status < 128 else 0)
            mh = seal_bad(msg, self._kbm(careof, dereg), careof, self.correspondent)
            return build_packet(self.correspondent, careof, IPPROTO_MH, mh, rh2_address=self.home)
        return None

    def _run(self) -> None:
        while not self._stop.is_set():
            for t, p in self.wire.collect(0.1, lambda p: p.next_header == IPPROTO_MH, count=1):
                try:
                    msg = decode(p.payload)
                except CodecError:
                    continue
                with self._lock:
                    self.seen.append(Seen(t, p, msg))
                if type(msg) is BindingUpdate:
                    answer = self._answer(p, msg)
                    if answer is not None:
                        self.wire.send(answer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.wire.close()


def windows_over(times: list[float], limit: int, window: float = 0.98) -> list[list[float]]:
    """Runs of more than ``limit`` times within ``window`` seconds (MAX_UPDATE_RATE checks on
    arrival times: a second, less 20 ms for the jitter between sending and arriving)."""
    times = sorted(times)
    return [times[i : i + limit + 1] for i in range(len(times) - limit) if times[i + limit] - times[i] < window]


def now() -> float:
    return time.monotonic()
