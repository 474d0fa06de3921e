"""Raw packet I/O on a kernel without Mobile IPv6 (docs/host.md).

Receiving: one AF_PACKET socket (ETH_P_ALL, frames for this host and multicast) with a BPF filter,
so the agent sees whole IPv6 packets, headers included, even those the kernel itself drops
(Home Address option, type 2 routing header, IPv6-in-IPv6). Each packet comes with the
time it was received (kernel timestamp, converted to time.monotonic_ns at each read).

Sending: one raw IPv6 socket with the header included (IPPROTO_RAW): every packet the
engines build, whatever its extension headers and source address, goes out through it. Its
packets carry the mark ``AGENT_MARK``, which the agent's ICMPv6 filter lets through. A send
can ask for the kernel's transmit stamp (``PacketSender.send(..., stamp=True)``).
"""

from __future__ import annotations

import errno
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
SO_TIMESTAMPING = 37
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
IPV6_RECVERR = 25
ENOMSG = 42
SO_EE_ORIGIN_TIMESTAMPING = 4
_EXTENDED_ERR = struct.Struct("IBBBBII")  # struct sock_extended_err: ee_data is the stamp's number
_ERRQUEUE = socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
STAMP_SLACK = 64  # late stamps read (and dropped) beyond the expected ones, per call
_STAMP_REQUEST = [(socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("I", SOF_TIMESTAMPING_TX_SOFTWARE))]
SCM_TS_OPT_ID = 81  # Linux 6.13: the stamp's number given with the packet
_U32 = struct.Struct("I")
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
    """Sends whole IPv6 packets; on request, with the kernel's transmit stamp.

    ``send(packet, stamp=True)`` asks the kernel, for that packet alone (an SO_TIMESTAMPING
    control message, Linux 4.13+), for a software transmit stamp, taken as the device takes
    the packet; it comes back on the socket's error queue with the packet's number, and
    ``stamps()`` collects them. The number is ours, given with the packet (SCM_TS_OPT_ID,
    Linux 6.13+); an older kernel numbers the stamped sends itself (SOF_TIMESTAMPING_OPT_ID),
    and since a send that fails may or may not have been counted, stamping then stops at the
    first such failure rather than risk giving a packet another's stamp. A kernel that refuses
    the socket option leaves every send unstamped (``stamping`` False).
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, AGENT_MARK)
        self._ntop = socket.inet_ntop
        self._next_stamp = 0  # the number of the next stamped send
        self._own_numbers: bool | None = None  # SCM_TS_OPT_ID taken (None: not tried yet)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING,
                                  SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)
            self.stamping = True
        except OSError:
            self.stamping = False

    def send(self, packet: bytes, stamp: bool = False) -> int | None:
        """Send a whole IPv6 packet; routed by its (outer) destination address. With ``stamp``
        (and stamping available), the number its transmit stamp will carry in ``stamps()``."""
        address = (self._ntop(socket.AF_INET6, packet[24:40]), 0)
        if not (stamp and self.stamping):
            self._sock.sendto(packet, address)
            return None
        number = self._next_stamp
        if self._own_numbers is not False:
            try:
                self._sock.sendmsg((packet,), _STAMP_REQUEST + [(socket.SOL_SOCKET, SCM_TS_OPT_ID, _U32.pack(number))],
                                   0, address)
            except OSError as exc:
                if self._own_numbers is not None or exc.errno != errno.EINVAL:
                    raise
                self._own_numbers = False  # a kernel before 6.13: it counts the stamped sends
            else:
                self._own_numbers = True
                self._next_stamp = (number + 1) & 0xFFFFFFFF
                return number
        try:
            self._sock.sendmsg((packet,), _STAMP_REQUEST, 0, address)
        except OSError:
            self.stamping = False  # counted or not: the kernel's numbers can no longer be followed
            raise
        self._next_stamp = number + 1
        return number

    def stamps(self, expected: int) -> dict[int, int]:
        """The transmit stamps waiting on the error queue: number -> time (time.monotonic_ns,
        moved from the kernel's realtime stamp with the offset read now). Read until the queue
        is empty (at most ``expected`` + STAMP_SLACK): a packet that waited (for neighbour
        discovery, in a queue) is stamped when it leaves, after its send returned, and its
        stamp comes in a later call, where the caller no longer wants it."""
        out: dict[int, int] = {}
        if not self.stamping:
            return out
        offset = time.time_ns() - time.monotonic_ns()
        recvmsg = self._sock.recvmsg
        for _ in range(expected + STAMP_SLACK):
            try:
                _, ancdata, _, _ = recvmsg(0, 256, _ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                break
            t = number = None
            for level, kind, blob in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                    sec, nsec = _TIMESPEC.unpack_from(blob)  # the first of three: the software stamp
                    t = sec * 1_000_000_000 + nsec - offset
                elif level == socket.IPPROTO_IPV6 and kind == IPV6_RECVERR:
                    errno_, origin, *_, number = _EXTENDED_ERR.unpack_from(blob)
                    if errno_ != ENOMSG or origin != SO_EE_ORIGIN_TIMESTAMPING:
                        number = None
            if t and number is not None:
                out[number] = t
        return out

    def close(self) -> None:
        self._sock.close()
