"""The load node's end of a real link: raw sockets in a lab node's network namespace.

``LinkTransport(node_pid, correspondent)`` opens, inside the namespace of the node whose
shell is ``node_pid`` (``testbed.lab.netns``: no process is forked), an IPPROTO_RAW socket
that sends whole IPv6 packets (any source address: the emulated mobiles' home and care-of
addresses) and an AF_PACKET socket with the agents' BPF filter (Mobility Header and routing
header first) that receives what the correspondent sends back, with the kernel's receive
time. The per-packet path is plain ``sendto``/``recvmsg``: no scapy, no parsing here.

Waiting for replies, the transport polls its socket without sleeping, as packet generators
(TRex, pktgen) do. Sleeping in ``select``, every BA that found the load node asleep had to
wake it from the correspondent's CPU: the BA's send path paid the wake-up of a task on the
other vCPU (an inter-processor interrupt, a trap to the host on a VM), a cost that on a real
network falls on other machines. Measured with ``testbed load --mobiles 1000`` (a
``reserve: 100`` CN): moves at 0.36-0.39 of the engine-bound rate sleeping, 0.51-0.53
polling. The time spent polling with nothing to read is counted (``idle_ns``) and left out
of the load node's busy share, which still says whether the load node, not the
correspondent, is the bottleneck.
"""

from __future__ import annotations

import socket
import struct
import time

from testbed.agent.bpf import attach, program
from testbed.lab.netns import socket_in_netns
from testbed.mip6.constants import IPPROTO_MH, IPPROTO_ROUTING

ETH_P_ALL = 0x0003
ETH_HLEN = 14
SO_TIMESTAMPNS = 35
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33
SO_SNDBUFFORCE = 32
BUFFER_BYTES = 32 << 20
MAX_BATCH = 512
_TIMESPEC = struct.Struct("qq")


class LinkTransport:
    def __init__(self, node_pid: int, correspondent: bytes) -> None:
        self._tx = socket_in_netns(node_pid, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self._rx = socket_in_netns(node_pid, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            attach(self._rx, program((IPPROTO_MH, IPPROTO_ROUTING)))
            self._rx.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            for sock, option in ((self._rx, SO_RCVBUFFORCE), (self._tx, SO_SNDBUFFORCE)):
                sock.setsockopt(socket.SOL_SOCKET, option, BUFFER_BYTES)
            self._rx.setblocking(False)
        except OSError:
            self.close()
            raise
        self._destination = (socket.inet_ntop(socket.AF_INET6, correspondent), 0)
        self.sent = 0
        self.received = 0
        self.idle_ns = 0  # time spent polling with nothing to read

    def send(self, packet: bytes, what: str) -> int:
        self._tx.sendto(packet, self._destination)
        self.sent += 1
        return time.monotonic_ns()

    def receive(self, timeout_s: float) -> list[tuple[bytes, int]]:
        """What has arrived; if nothing has, poll (without sleeping) until something does or
        ``timeout_s`` has passed."""
        out = self._drain()
        if not out and timeout_s > 0:
            clock = time.monotonic_ns
            start = clock()
            end = start + int(timeout_s * 1e9)
            while not out:
                now = clock()
                if now >= end:
                    break
                out = self._drain()
            self.idle_ns += clock() - start
        self.received += len(out)
        return out

    def _drain(self) -> list[tuple[bytes, int]]:
        rx = self._rx
        out = []
        offset = time.time_ns() - time.monotonic_ns()  # kernel stamps are realtime
        incoming = socket.PACKET_HOST
        for _ in range(MAX_BATCH):
            try:
                data, ancdata, _, addr = rx.recvmsg(65535, 64)
            except (BlockingIOError, InterruptedError):
                break
            if addr[2] != incoming:
                continue  # our own frames going out
            t = 0
            for level, kind, blob in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(blob)
                    t = sec * 1_000_000_000 + nsec - offset
            out.append((data[ETH_HLEN:], t or time.monotonic_ns()))
        return out

    def drops(self) -> int | None:
        """Packets the kernel dropped because our receive buffer was full (PACKET_STATISTICS)."""
        try:
            raw = self._rx.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)  # packets, drops
        except OSError:
            return None
        return struct.unpack("II", raw)[1]

    def close(self) -> None:
        for sock in (self._tx, self._rx):
            try:
                sock.close()
            except (AttributeError, OSError):
                pass
