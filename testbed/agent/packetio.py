"""Raw packet I/O on a kernel without Mobile IPv6 (docs/host.md).

Receiving: one AF_PACKET socket (ETH_P_ALL, frames for this host and multicast) with a BPF filter,
so the agent sees whole IPv6 packets, headers included, even those the kernel itself drops
(Home Address option, type 2 routing header, IPv6-in-IPv6). Each packet comes with the
time it was received (kernel timestamp, converted to time.monotonic_ns at each read).

Sending: one raw IPv6 socket with the header included (IPPROTO_RAW): every packet the
engines build, whatever its extension headers and source address, goes out through it. Its
packets carry the mark ``AGENT_MARK``, which the agent's ICMPv6 filter lets through.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

from testbed.agent.bpf import attach, program
from testbed.agent.icmp_filter import AGENT_MARK

ETH_P_ALL = 0x0003
ETH_HLEN = 14
SO_TIMESTAMPNS = 35
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20: the socket is not handed this host's own frames
_TIMESPEC = struct.Struct("qq")
_INCOMING = (socket.PACKET_HOST, socket.PACKET_MULTICAST)  # RAs are multicast


class PacketReceiver:
    def __init__(self, interfaces: tuple[str, ...], next_headers: tuple[int, ...], *, router_advertisements: bool = False) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        attach(self._sock, program(next_headers, router_advertisements=router_advertisements))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:  # every BA the agent sends would otherwise wake it once more, to be skipped below
            self._sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:  # an older kernel: the PACKET_OUTGOING check below still skips them
            pass
        self._sock.setblocking(False)
        self._interfaces = frozenset(interfaces) if interfaces else None

    def fileno(self) -> int:
        return self._sock.fileno()

    def drain(self) -> Iterator[tuple[bytes, int, str]]:
        """Every waiting packet as (IPv6 bytes, monotonic receive time ns, interface name).

        Kernel stamps are CLOCK_REALTIME; they are moved to CLOCK_MONOTONIC with the offset
        between the two clocks read now, not once at start: the realtime clock is slewed
        (NTP), and an offset read minutes earlier was measured 90 us off here."""
        sock = self._sock
        offset = time.time_ns() - time.monotonic_ns()
        while True:
            try:
                data, ancdata, _, addr = sock.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ENETDOWN after an interface went away: nothing to read now
                return
            if addr[2] not in _INCOMING:  # skip our own and other hosts' frames
                continue
            if self._interfaces is not None and addr[0] not in self._interfaces:
                continue
            t = 0
            for level, kind, blob in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(blob)
                    t = sec * 1_000_000_000 + nsec - offset
            yield data[ETH_HLEN:], t or time.monotonic_ns(), addr[0]

    def close(self) -> None:
        self._sock.close()


class PacketSender:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, AGENT_MARK)
        self._ntop = socket.inet_ntop

    def send(self, packet: bytes) -> None:
        """Send a whole IPv6 packet; routed by its (outer) destination address."""
        self._sock.sendto(packet, (self._ntop(socket.AF_INET6, packet[24:40]), 0))

    def close(self) -> None:
        self._sock.close()
