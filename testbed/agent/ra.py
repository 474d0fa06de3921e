"""Router Advertisements as the mobile node's movement detection reads them, and the Router
Solicitation it sends when its link changes (RFC 4861)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from testbed.mip6.constants import IPPROTO_ICMPV6
from testbed.mip6.errors import CodecError
from testbed.mip6.packet import parse_packet

ICMP_RA = 134
ICMP_RS = 133
OPT_PREFIX_INFORMATION = 3
PIO_AUTONOMOUS = 0x40
ALL_ROUTERS = "ff02::2"


@dataclass(frozen=True, slots=True)
class RouterAdvertisement:
    router: ipaddress.IPv6Address  # link-local source
    prefixes: tuple[ipaddress.IPv6Network, ...]  # autonomous, valid and preferred lifetimes > 0
    router_lifetime: int  # 0: not a default router (RFC 4861 6.3.4)
    home_agent: bool  # H flag (RFC 6275 7.1)
    deprecated: tuple[ipaddress.IPv6Network, ...] = ()  # autonomous, valid, preferred lifetime 0 (RFC 4862 5.5.4)

    @property
    def default_router(self) -> bool:
        return self.router_lifetime > 0


def parse_ra(packet: bytes) -> RouterAdvertisement | None:
    """The RA in an IPv6 packet, or None if it is not a well-formed RA."""
    try:
        p = parse_packet(packet)
    except CodecError:
        return None
    if p.next_header != IPPROTO_ICMPV6 or p.hop_limit != 255:
        return None
    router = ipaddress.IPv6Address(p.src)
    if not router.is_link_local:  # RFC 4861 6.1.2: an RA comes from a link-local address
        return None
    return parse_ra_message(p.payload, router)


def parse_ra_message(body: bytes, router: ipaddress.IPv6Address | str) -> RouterAdvertisement | None:
    """An ICMPv6 Router Advertisement message (from its type octet on), or None if it is not
    one. Prefixes: autonomous ones with a valid lifetime, usable ones (a preferred lifetime
    too) apart from deprecated ones; a truncated option ends the list."""
    if len(body) < 16 or body[0] != ICMP_RA:
        return None
    flags = body[5]
    lifetime = int.from_bytes(body[6:8], "big")
    prefixes = []
    deprecated = []
    pos = 16
    while pos + 2 <= len(body):
        otype, olen = body[pos], body[pos + 1] * 8
        if olen == 0 or pos + olen > len(body):
            break
        if otype == OPT_PREFIX_INFORMATION and olen == 32:
            plen, pflags = body[pos + 2], body[pos + 3]
            valid = int.from_bytes(body[pos + 4 : pos + 8], "big")
            preferred = int.from_bytes(body[pos + 8 : pos + 12], "big")
            if pflags & PIO_AUTONOMOUS and valid > 0 and plen <= 128:
                net = ipaddress.IPv6Network((body[pos + 16 : pos + 32], plen), strict=False)
                if not net.is_link_local:
                    (prefixes if preferred > 0 else deprecated).append(net)
        pos += olen
    return RouterAdvertisement(ipaddress.IPv6Address(router), tuple(prefixes), lifetime, bool(flags & 0x20),
                               tuple(deprecated))


class RouterSolicitor:
    """Sends Router Solicitations on one interface (the kernel fills the ICMPv6 checksum)."""

    def __init__(self, interface: str) -> None:
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        self._scope = socket.if_nametoindex(interface)

    def solicit(self) -> None:
        try:
            self._sock.sendto(bytes((ICMP_RS, 0, 0, 0, 0, 0, 0, 0)), (ALL_ROUTERS, 0, 0, self._scope))
        except OSError:
            pass  # no link-local address yet, or the link is down: the next RA will do

    def close(self) -> None:
        self._sock.close()
