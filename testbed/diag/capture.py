"""Read a pcap or pcapng capture with scapy and yield the IPv6 packet of every frame.

scapy only reads the file format (pcap, pcapng, gzip); the link layer is stripped here so
the IPv6 octets reach our codec exactly as captured. Link types: Ethernet (with 802.1Q/ad
tags), Linux cooked v1/v2, raw IP (DLT_RAW, LINKTYPE_IPV6), BSD null/loopback.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

ETH_P_IPV6 = 0x86DD
_VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
_AF_INET6 = (10, 24, 28, 30)  # Linux, BSDs, FreeBSD, macOS

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_BSD = 12
LINKTYPE_RAW_OPENBSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = {
    LINKTYPE_NULL: "BSD null",
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW_BSD: "raw IP",
    LINKTYPE_RAW_OPENBSD: "raw IP",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LOOP: "OpenBSD loopback",
    LINKTYPE_LINUX_SLL: "Linux cooked",
    LINKTYPE_IPV6: "raw IPv6",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2",
}


class CaptureError(Exception):
    """The capture file is missing, unreadable, not a capture, or of an unsupported link type."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame that carries IPv6: its 1-based number and the IPv6 octets."""

    number: int
    ipv6: bytes
    wire_len: int  # octets on the wire, of the whole frame
    captured_len: int  # octets captured, of the whole frame
    t_ns: int = 0  # capture timestamp, realtime ns (0 when the file gave none)

    @property
    def truncated(self) -> bool:
        return self.captured_len < self.wire_len


def ipv6_octets(linktype: int, frame: bytes) -> bytes | None:
    """The IPv6 packet inside a link-layer frame, or None if the frame does not carry IPv6."""
    if linktype == LINKTYPE_ETHERNET:
        pos = 12
        while pos + 2 <= len(frame):
            ethertype = struct.unpack_from("!H", frame, pos)[0]
            if ethertype in _VLAN_TPIDS:
                pos += 4
                continue
            return frame[pos + 2 :] if ethertype == ETH_P_IPV6 else None
        return None
    if linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16 or struct.unpack_from("!H", frame, 14)[0] != ETH_P_IPV6:
            return None
        return frame[16:]
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20 or struct.unpack_from("!H", frame, 0)[0] != ETH_P_IPV6:
            return None
        return frame[20:]
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(frame) < 4:
            return None
        families = {struct.unpack_from("<I", frame)[0], struct.unpack_from("!I", frame)[0]}
        return frame[4:] if families.intersection(_AF_INET6) else None
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD, LINKTYPE_IPV6):
        return frame if frame and frame[0] >> 4 == 6 else None
    raise CaptureError(f"link type {linktype} is not supported")


def _open_reader(path: str):
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapReader

    if not os.path.exists(path):
        raise CaptureError(f"{path}: no such file")
    if not os.path.isfile(path):
        raise CaptureError(f"{path}: not a regular file")
    try:
        return RawPcapReader(path)
    except Scapy_Exception:
        raise CaptureError(f"{path}: not a pcap or pcapng capture") from None
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _timestamp_ns(reader, meta) -> int:
    """The frame's capture time in realtime ns (pcap: micro- or nanosecond; pcapng: tsresol)."""
    if getattr(meta, "tshigh", None) is not None:
        ticks = (meta.tshigh << 32) | meta.tslow
        resolution = getattr(meta, "tsresol", None) or 1_000_000
        return ticks * 1_000_000_000 // resolution
    sec, frac = getattr(meta, "sec", None), getattr(meta, "usec", None)
    if sec is None or frac is None:
        return 0
    return sec * 1_000_000_000 + (frac if getattr(reader, "nano", False) else frac * 1000)


def read_frames(path: str | os.PathLike) -> Iterator[Frame]:
    """Yield every IPv6-carrying frame of the capture at ``path``; frames without IPv6 are skipped.

    Raises CaptureError (one line, naming the file) for a missing or unreadable file, a
    file that is not a capture, or an unsupported link type.
    """
    from scapy.error import Scapy_Exception

    source = os.fspath(path)
    reader = _open_reader(source)
    try:
        number = 0
        while True:
            try:
                data, meta = reader._read_packet()
            except EOFError:
                return
            except (Scapy_Exception, struct.error, ValueError, OSError) as exc:  # a corrupt pcapng block
                raise CaptureError(f"{source}: corrupt capture after frame {number}: {exc}") from None
            number += 1
            linktype = getattr(meta, "linktype", None)
            if linktype is None:
                linktype = reader.linktype
            if linktype not in SUPPORTED_LINKTYPES:
                raise CaptureError(
                    f"{source}: link type {linktype} is not supported (frame {number}); "
                    "supported: Ethernet, Linux cooked v1/v2, raw IPv6, BSD null/loopback"
                )
            ipv6 = ipv6_octets(linktype, bytes(data))
            if ipv6 is None:
                continue
            caplen = getattr(meta, "caplen", None)  # pcapng metadata has none
            captured = len(data) if caplen is None else min(caplen, len(data))  # a cut-off last record
            wire = getattr(meta, "wirelen", None) or captured
            yield Frame(number, ipv6, wire, captured, _timestamp_ns(reader, meta))
    finally:
        reader.close()
