"""ICMPv6 Parameter Problem for unrecognised options (RFC 8200 section 4.2, RFC 4443), and
the checks every engine makes before it sends an error message.

A packet whose Hop-by-Hop or Destination Options header holds an unrecognised option whose
action bits are 01, 10 or 11 is discarded, however authentic its Mobility Header; for 10,
and for 11 when the destination was not multicast, the sender gets an ICMPv6 Parameter
Problem (code 2) pointing at the option. No error goes to a source that is not a unicast
address, in answer to an ICMPv6 error message, or beyond the engine's rate limit (RFC 4443
section 2.4 (e), (f)).
"""

from __future__ import annotations

import struct

from testbed.mip6.constants import IPPROTO_ICMPV6
from testbed.mip6.actions import Action, Send
from testbed.mip6.events import Drop, ErrorNotSent, IcmpSent, addr
from testbed.mip6.packet import Packet, build_packet, internet_checksum
from testbed.mip6.ratelimit import TokenBucket

ICMP_PARAMETER_PROBLEM = 4
PP_UNRECOGNISED_OPTION = 2
IPV6_MIN_MTU = 1280
_ACTIONS = {1: "01", 2: "10", 3: "11"}


def is_unicast(address: bytes) -> bool:
    """Neither multicast nor the unspecified address: a source an error may be sent to."""
    return address[0] != 0xFF and any(address)


def is_icmp_error(packet: Packet) -> bool:
    return packet.next_header == IPPROTO_ICMPV6 and len(packet.payload) > 0 and packet.payload[0] < 128


def parameter_problem(src: bytes, dst: bytes, code: int, pointer: int, invoking: bytes) -> bytes:
    """A whole IPv6 packet: ICMPv6 Parameter Problem from ``src`` to ``dst`` quoting as much of
    ``invoking`` as fits in the minimum MTU (RFC 4443 3.4)."""
    quoted = invoking[: IPV6_MIN_MTU - 40 - 8]
    body = struct.pack("!BBHI", ICMP_PARAMETER_PROBLEM, code, 0, pointer) + quoted
    pseudo = src + dst + struct.pack("!I3xB", len(body), IPPROTO_ICMPV6)
    checksum = internet_checksum(pseudo + body)
    return build_packet(src, dst, IPPROTO_ICMPV6, body[:2] + struct.pack("!H", checksum) + body[4:], hop_limit=255)


class UnrecognisedOptions:
    """For engines: discard a packet with an unrecognised option that must not be skipped."""

    _icmp_limit: TokenBucket
    address: bytes
    node: str

    def _unrecognised_option(self, packet: Packet, data: bytes, now: int) -> list[Action]:
        pointer, action = packet.unknown_option
        otype = data[pointer]
        out: list[Action] = [Drop(
            now, self.node, reason=f"unrecognised option type {otype} with action bits {_ACTIONS[action]} in an "
                                   "extension header (RFC 8200 4.2): packet discarded", src=addr(packet.src), option=otype)]
        if action == 1 or (action == 3 and packet.dst[0] == 0xFF):
            return out
        if not is_unicast(packet.src) or is_icmp_error(packet):
            out.append(ErrorNotSent(now, self.node, what="Parameter Problem", to=addr(packet.src),
                                    reason="the offending packet's source is not unicast or it is an ICMPv6 error"))
            return out
        if not self._icmp_limit.take(now):
            out.append(ErrorNotSent(now, self.node, what="Parameter Problem", to=addr(packet.src),
                                    reason="rate limit (RFC 4443 2.4 (f))"))
            return out
        src = packet.dst if packet.dst[0] != 0xFF else self.address
        pkt = parameter_problem(src, packet.src, PP_UNRECOGNISED_OPTION, pointer, data)
        out.append(Send(pkt, "ICMPv6 Parameter Problem"))
        out.append(IcmpSent(now, self.node, type=ICMP_PARAMETER_PROBLEM, code=PP_UNRECOGNISED_OPTION,
                            pointer=pointer, to=addr(packet.src)))
        return out
