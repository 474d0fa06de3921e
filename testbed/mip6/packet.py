"""IPv6 packets as Mobile IPv6 uses them: the fixed header, the type 2 routing header, the
Home Address destination option, the Mobility Header checksum and IPv6-in-IPv6.

Options in Hop-by-Hop and Destination Options headers other than Pad1, PadN, the Home
Address option (destination options only) and Router Alert (hop-by-hop only) are
unrecognised: one whose two high-order type bits ("action") are not 00 must not be skipped
(RFC 8200 section 4.2). ``parse_packet`` records the first such option in
``Packet.unknown_option`` (its offset in the packet and its action bits); the engines
discard the packet and answer as RFC 8200 says (``testbed.mip6.icmp``).

``build_packet`` writes the headers in the order RFC 6275 6.3/6.4 require (IPv6, routing
header type 2, destination options with the Home Address option, upper layer). For a
Mobility Header payload it fills in the checksum over the right pseudo-header: source = the
home address when a Home Address option is present, destination = the home address of the
type 2 routing header when present (the final destination).
"""

from __future__ import annotations

import struct
from array import array
from typing import NamedTuple

from testbed.mip6.constants import (
    ADDRESS_LEN,
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_MH,
    IPPROTO_ROUTING,
    OPT_HOME_ADDRESS,
    ROUTING_TYPE_2,
)
from testbed.mip6.errors import CodecError

IPV6_HEADER_LEN = 40
_IPV6 = struct.Struct("!IHBB16s16s")
_LITTLE = array("H", b"\x01\x00")[0] == 1  # the machine's byte order

# Destination options header carrying only the Home Address option:
# next header, length 2 (24 octets), PadN(4) to reach 8n+6, then type 201 length 16.
_DSTOPTS_HAO_PREFIX = b"\x02" + b"\x01\x02\x00\x00" + bytes((OPT_HOME_ADDRESS, ADDRESS_LEN))
# Type 2 routing header: next header, length 2, routing type 2, segments left 1, reserved.
_RH2_PREFIX = bytes((2, ROUTING_TYPE_2, 1)) + b"\x00\x00\x00\x00"


class Packet(NamedTuple):
    """A parsed IPv6 packet, down to its upper-layer protocol. (A named tuple, immutable: it is
    made for every packet an agent reads, and a frozen dataclass took about three times as
    long to build.)"""

    src: bytes
    dst: bytes
    hop_limit: int
    next_header: int  # the upper-layer protocol (135 MH, 41 IPv6, 58 ICMPv6, ...)
    payload: bytes  # the upper-layer octets
    home_address: bytes | None = None  # Home Address destination option
    rh2_address: bytes | None = None  # type 2 routing header's home address
    routing_type: int | None = None  # routing header type when one is present
    segments_left: int = 0
    # The first unrecognised option whose action bits say "do not skip" (RFC 8200 4.2):
    # (offset of its type octet in the packet, action bits 1..3), else None.
    unknown_option: tuple[int, int] | None = None

    @property
    def mh_source(self) -> bytes:
        """Source address as the Mobility Header pseudo-header and the MN's identity see it."""
        return self.home_address if self.home_address is not None else self.src

    @property
    def final_destination(self) -> bytes:
        return self.rh2_address if self.rh2_address is not None else self.dst


def internet_checksum(data: bytes) -> int:
    """RFC 1071 one's complement sum of 16-bit words, complemented."""
    if len(data) & 1:
        data += b"\x00"
    words = array("H", data)
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    if _LITTLE:
        total = ((total & 0xFF) << 8) | (total >> 8)
    return (~total) & 0xFFFF


def mh_checksum(src: bytes, dst: bytes, mh: bytes) -> int:
    """Checksum of a Mobility Header whose checksum field is zero, RFC 6275 6.1.1."""
    pseudo = src + dst + struct.pack("!I3xB", len(mh), IPPROTO_MH)
    return internet_checksum(pseudo + mh)


def with_mh_checksum(src: bytes, dst: bytes, mh: bytes) -> bytes:
    """Return ``mh`` with its checksum field filled for the given pseudo-header addresses."""
    zeroed = mh[:4] + b"\x00\x00" + mh[6:]
    return zeroed[:4] + struct.pack("!H", mh_checksum(src, dst, zeroed)) + zeroed[6:]


def mh_checksum_ok(packet: Packet) -> bool:
    """True when the Mobility Header's checksum is right for ``packet``'s pseudo-header.

    The checksum covers the Mobility Header as its Header Len delimits it (RFC 6275 6.1.1),
    not octets that may follow it in the IPv6 payload; a Header Len running past the payload
    is a bad checksum too."""
    payload = packet.payload
    if len(payload) < 6:
        return False
    length = (payload[1] + 1) * 8
    if length > len(payload):
        return False
    mh = payload[:length] if length < len(payload) else payload
    pseudo = packet.mh_source + packet.final_destination + struct.pack("!I3xB", length, IPPROTO_MH)
    return internet_checksum(pseudo + mh) == 0


def build_packet(
    src: bytes,
    dst: bytes,
    next_header: int,
    payload: bytes,
    *,
    home_address: bytes | None = None,
    rh2_address: bytes | None = None,
    hop_limit: int = 64,
    flow_label: int = 0,
) -> bytes:
    """Build a whole IPv6 packet. Mobility Header payloads get their checksum filled."""
    if len(src) != ADDRESS_LEN or len(dst) != ADDRESS_LEN:
        raise CodecError("IPv6 addresses must be 16 octets")
    if not isinstance(hop_limit, int) or not 0 <= hop_limit <= 255 or not 0 <= next_header <= 255:
        raise CodecError(f"hop limit {hop_limit!r} or next header {next_header!r} does not fit 8 bits")
    if next_header == IPPROTO_MH:
        payload = with_mh_checksum(
            home_address if home_address is not None else src,
            rh2_address if rh2_address is not None else dst,
            payload,
        )
    ext = b""
    nh = next_header
    if home_address is not None:
        if len(home_address) != ADDRESS_LEN:
            raise CodecError("home address must be 16 octets")
        ext = bytes((nh,)) + _DSTOPTS_HAO_PREFIX + home_address
        nh = IPPROTO_DSTOPTS
    if rh2_address is not None:
        if len(rh2_address) != ADDRESS_LEN:
            raise CodecError("type 2 routing header address must be 16 octets")
        ext = bytes((nh,)) + _RH2_PREFIX + rh2_address + ext
        nh = IPPROTO_ROUTING
    length = len(ext) + len(payload)
    if length > 0xFFFF:
        raise CodecError("IPv6 payload longer than 65535 octets")
    head = _IPV6.pack((6 << 28) | (flow_label & 0xFFFFF), length, nh, hop_limit, src, dst)
    return head + ext + payload


def mh_packet(src: bytes, dst: bytes, mh: bytes, rh2_address: bytes | None = None) -> bytes:
    """``build_packet(src, dst, IPPROTO_MH, mh, rh2_address=...)`` for a Mobility Header
    whose checksum field is zero (as ``encode`` and the sealing functions return it), the same
    octets with fewer steps: the engines' replies on the per-packet path."""
    final = dst if rh2_address is None else rh2_address
    length = len(mh)
    checksum = internet_checksum(src + final + _PSEUDO_TAIL.pack(length, IPPROTO_MH) + mh)
    mh = mh[:4] + _U16.pack(checksum) + mh[6:]
    if rh2_address is None:
        return _IPV6.pack(0x60000000, length, IPPROTO_MH, 64, src, dst) + mh
    if len(rh2_address) != ADDRESS_LEN:
        raise CodecError("type 2 routing header address must be 16 octets")
    return (_IPV6.pack(0x60000000, length + 24, IPPROTO_ROUTING, 64, src, dst)
            + _RH2_MH + rh2_address + mh)


_PSEUDO_TAIL = struct.Struct("!I3xB")
_U16 = struct.Struct("!H")
_RH2_MH = bytes((IPPROTO_MH,)) + _RH2_PREFIX


OPT_ROUTER_ALERT = 5  # hop-by-hop (RFC 2711)


def _parse_options(data: bytes, start: int, end: int, destination: bool) -> tuple[bytes | None, int | None]:
    """The home address a Destination Options header carries (None if none), and the
    offset of its first unrecognised option that must not be skipped (None if none)."""
    pos = start + 2
    home = None
    unknown = None
    while pos < end:
        otype = data[pos]
        if otype == 0:  # Pad1
            pos += 1
            continue
        if pos + 2 > end:
            raise CodecError("truncated destination or hop-by-hop option")
        olen = data[pos + 1]
        if pos + 2 + olen > end:
            raise CodecError("destination or hop-by-hop option overruns its header")
        if otype == OPT_HOME_ADDRESS and destination:
            if olen != ADDRESS_LEN:
                raise CodecError(f"Home Address option of length {olen}")
            if home is not None:
                raise CodecError("more than one Home Address option")
            home = bytes(data[pos + 2 : pos + 18])
        elif otype > 1 and otype >> 6 and unknown is None and (destination or otype != OPT_ROUTER_ALERT):
            unknown = pos
        pos += 2 + olen
    return home, unknown


_HAO_ONLY = _DSTOPTS_HAO_PREFIX  # a Destination Options header holding just the Home Address option
_HAO_END = IPV6_HEADER_LEN + 8 + ADDRESS_LEN
_NOT_UPPER = (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT)


def parse_packet(data: bytes) -> Packet:
    """Parse an IPv6 packet; raise CodecError if it is malformed or truncated."""
    if len(data) < IPV6_HEADER_LEN:
        raise CodecError(f"IPv6 packet shorter than 40 octets ({len(data)})")
    vtf, plen, nh, hop_limit, src, dst = _IPV6.unpack_from(data, 0)
    if vtf >> 28 != 6:
        raise CodecError(f"IP version {vtf >> 28}, not 6")
    end = IPV6_HEADER_LEN + plen
    if end > len(data):
        raise CodecError(f"payload length {plen} exceeds the {len(data) - 40} octets present")
    if (nh == IPPROTO_DSTOPTS and end >= _HAO_END and data[41:48] == _HAO_ONLY
            and data[40] not in _NOT_UPPER):
        # The common case of a mobile node's packet, a Destination Options header holding only
        # the Home Address option (as build_packet lays it out) before the upper layer: what
        # the loop below would find, without walking the options.
        return Packet(src, dst, hop_limit, data[40], bytes(data[_HAO_END:end]), bytes(data[48:_HAO_END]))
    return _walk(data, nh, hop_limit, src, dst, end)


def _walk(data: bytes, nh: int, hop_limit: int, src: bytes, dst: bytes, end: int) -> Packet:
    """The extension headers walked one by one, down to the upper layer."""
    pos = IPV6_HEADER_LEN
    home = rh2 = None
    rtype = None
    segleft = 0
    unknown = None
    while nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT):
        if pos + 8 > end:
            raise CodecError(f"truncated extension header {nh}")
        next_nh = data[pos]
        hlen = 8 if nh == IPPROTO_FRAGMENT else (data[pos + 1] + 1) * 8
        if pos + hlen > end:
            raise CodecError(f"extension header {nh} overruns the packet")
        if nh == IPPROTO_FRAGMENT:
            raise CodecError("fragmented packets are not handled")
        if nh == IPPROTO_ROUTING:
            if rtype is not None:
                raise CodecError("more than one routing header")
            rtype = data[pos + 2]
            segleft = data[pos + 3]
            if rtype == ROUTING_TYPE_2:
                if data[pos + 1] != 2:
                    raise CodecError(f"type 2 routing header of length {data[pos + 1]}")
                rh2 = bytes(data[pos + 8 : pos + 24])
        else:  # destination or hop-by-hop options
            found, bad = _parse_options(data, pos, pos + hlen, nh == IPPROTO_DSTOPTS)
            if found is not None:
                if home is not None:
                    raise CodecError("more than one Home Address option")
                home = found
            if bad is not None and unknown is None:
                unknown = (bad, data[bad] >> 6)
        pos += hlen
        nh = next_nh
    return Packet(src, dst, hop_limit, nh, bytes(data[pos:end]), home, rh2, rtype, segleft, unknown)
