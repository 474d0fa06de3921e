"""Raw IPv6 on one end of a namespace pair, from the test process itself (sockets created in
the namespace): send many packets quickly and collect what arrives, for flood tests."""

from __future__ import annotations

import select
import socket
import time

from netns_pair import ns_socket

from testbed.mip6.errors import CodecError
from testbed.mip6.packet import Packet, parse_packet

ETH_P_ALL = 0x0003


class Wire:
    def __init__(self, ns: str) -> None:
        self.rx = ns_socket(ns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.rx.setblocking(False)
        self.tx = ns_socket(ns, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def send(self, packet: bytes, scope: int = 0) -> None:
        self.tx.sendto(packet, (socket.inet_ntop(socket.AF_INET6, packet[24:40]), 0, 0, scope))

    def drain(self) -> None:
        while True:
            try:
                self.rx.recv(65535)
            except BlockingIOError:
                return

    def collect(self, deadline_s: float, want=lambda p: True, count: int | None = None,
                multicast: bool = False) -> list[tuple[float, Packet]]:
        """(monotonic time, packet) of each incoming IPv6 packet ``want`` accepts, until the
        deadline or ``count`` of them."""
        out: list[tuple[float, Packet]] = []
        end = time.monotonic() + deadline_s
        kinds = (socket.PACKET_HOST, socket.PACKET_MULTICAST) if multicast else (socket.PACKET_HOST,)
        while count is None or len(out) < count:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.rx], [], [], left)[0]:
                break
            try:
                frame, addr = self.rx.recvfrom(65535)
            except BlockingIOError:
                continue
            if addr[2] not in kinds or frame[12:14] != b"\x86\xdd":
                continue
            try:
                p = parse_packet(frame[14:])
            except CodecError:
                continue
            if want(p):
                out.append((time.monotonic(), p))
        return out

    def close(self) -> None:
        self.rx.close()
        self.tx.close()


def with_dest_option(packet: bytes, option_type: int) -> bytes:
    """``packet`` (with a Home Address option) with an extra 8 octets in its Destination
    Options header: ``option_type`` with 2 data octets, then PadN(2)."""
    assert packet[6] == 60
    hdr_len = (packet[41] + 1) * 8
    ext = bytearray(packet[40 : 40 + hdr_len])
    ext[1] += 1
    ext[2:2] = bytes((option_type, 2, 0, 0, 1, 2, 0, 0))  # ahead of the HAO's PadN: HAO stays at 8n+6
    body = bytes(ext) + packet[40 + hdr_len :]
    return packet[:4] + len(body).to_bytes(2, "big") + packet[6:40] + body
