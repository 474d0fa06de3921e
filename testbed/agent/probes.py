"""The probe stream: numbered, timestamped UDP datagrams from the CN to the MN's home address.

Sent route-optimised (to the care-of address with a type 2 routing header) once the CN has a
binding, through the home network otherwise. The MN tells the two paths apart (type 2
routing header, or tunnelled by the home agent) and logs number, path and one-way delay
(all namespaces share one monotonic clock, docs/host.md).
"""

from __future__ import annotations

import ipaddress
import math
import struct
from dataclasses import dataclass

from testbed.mip6.constants import IPPROTO_IPV6, IPPROTO_UDP
from testbed.mip6.errors import CodecError
from testbed.mip6.packet import Packet, build_packet, internet_checksum, parse_packet

MAGIC = b"MIP6PRB1"
MIN_RATE, MAX_RATE = 0.01, 10000.0  # probes per second
MAX_COUNT = 10**9
_BODY = struct.Struct("!8sQQ")  # magic, number, sent at (monotonic ns)
_UDP = struct.Struct("!HHHH")


def udp_datagram(src: bytes, final_dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header and payload; the checksum covers the final destination (RFC 6275 6.4)."""
    length = 8 + len(payload)
    pseudo = src + final_dst + struct.pack("!I3xB", length, IPPROTO_UDP)
    checksum = internet_checksum(pseudo + _UDP.pack(sport, dport, length, 0) + payload) or 0xFFFF
    return _UDP.pack(sport, dport, length, checksum) + payload


def probe_packet(src: bytes, home: bytes, careof: bytes | None, port: int, number: int, t_ns: int) -> bytes:
    payload = _BODY.pack(MAGIC, number, t_ns)
    udp = udp_datagram(src, home, port, port, payload)
    if careof is None:
        return build_packet(src, home, IPPROTO_UDP, udp)
    return build_packet(src, careof, IPPROTO_UDP, udp, rh2_address=home)


@dataclass(frozen=True, slots=True)
class ProbeArrival:
    number: int
    sent_ns: int
    path: str  # "direct" (route-optimised) or "tunnelled"
    to: bytes  # the address it arrived at (care-of address)


def probe_in(packet: Packet, port: int) -> ProbeArrival | None:
    """The probe an arriving packet carries, if any (route-optimised or tunnelled)."""
    path = "direct"
    to = packet.dst
    if packet.next_header == IPPROTO_IPV6:
        try:
            packet = parse_packet(packet.payload)
        except CodecError:
            return None
        path = "tunnelled"
    elif packet.rh2_address is None:
        path = "home"
    if packet.next_header != IPPROTO_UDP or len(packet.payload) < 8 + _BODY.size:
        return None
    dport = int.from_bytes(packet.payload[2:4], "big")
    if dport != port:
        return None
    magic, number, sent = _BODY.unpack_from(packet.payload, 8)
    if magic != MAGIC:
        return None
    return ProbeArrival(number, sent, path, to)


def parse_probe_request(request: dict) -> tuple[bytes, float, int | None]:
    """``probe_start``'s arguments: (home address, rate per second, count or None for no end).
    ValueError naming the argument and what is wrong with it."""
    home_text = request.get("home")
    if not isinstance(home_text, str):
        raise ValueError("home: expected the mobile node's home address")
    try:
        home = ipaddress.IPv6Address(home_text)
    except ValueError:
        raise ValueError(f"home: {home_text[:60]!r} is not an IPv6 address") from None
    if home.is_multicast or home.is_unspecified or home.is_loopback:
        raise ValueError(f"home: {home} is not a unicast address")
    rate = request.get("rate", 100)
    if type(rate) not in (int, float) or not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"rate: {str(rate)[:40]!r} is not a number of probes per second in {MIN_RATE:g}..{MAX_RATE:g}")
    count = request.get("count")
    if count is not None and (type(count) is not int or not 1 <= count <= MAX_COUNT):
        raise ValueError(f"count: {str(count)[:40]!r} is not a whole number of probes in 1..{MAX_COUNT}")
    return home.packed, float(rate), count
