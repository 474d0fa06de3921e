"""The mobile node's preferred default route, replaced with one netlink message at once.

The kernel carries out an rtnetlink request while the sending call runs: the route is in
place when ``replace`` returns, and its answer (an acknowledgement or an error) is already
queued on the socket. So the MN can send its BUs right after, instead of waiting for the
answer through the event loop as the asynchronous pyroute2 socket does (that wait, with the
delete of the old route before it, took most of the time from a usable care-of address to
the BUs on the wire). A replace of the default route with the same priority swaps its
gateway: no delete of the old route is needed first.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct

RTM_NEWROUTE = 24
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x4, 0x100, 0x400
RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 4, 5, 6
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 4, 0, 1
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst len, src len, tos, table, protocol, scope, type, flags
_RTA = struct.Struct("=HH")  # length, type


def _attr(kind: int, payload: bytes) -> bytes:
    return _RTA.pack(_RTA.size + len(payload), kind) + payload + bytes(-len(payload) % 4)


def replace_default_message(gateway: ipaddress.IPv6Address, ifindex: int, priority: int, seq: int) -> bytes:
    """RTM_NEWROUTE (create or replace) for ``::/0 via gateway dev ifindex metric priority``."""
    body = (_RTMSG.pack(socket.AF_INET6, 0, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
            + _attr(RTA_GATEWAY, gateway.packed) + _attr(RTA_OIF, struct.pack("=I", ifindex))
            + _attr(RTA_PRIORITY, struct.pack("=I", priority)))
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), RTM_NEWROUTE, flags, seq, 0) + body


def errors_in(data: bytes) -> list[tuple[int, int]]:
    """(sequence number, errno) of every NLMSG_ERROR in ``data`` that is an error (not an ack)."""
    out = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size:
            break
        if kind == NLMSG_ERROR and pos + _NLMSGHDR.size + 4 <= len(data):
            (err,) = struct.unpack_from("=i", data, pos + _NLMSGHDR.size)
            if err:
                out.append((seq, -err))
        pos += (length + 3) & ~3
    return out


class DefaultRoute:
    """A NETLINK_ROUTE socket of this network namespace that replaces the default route."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def replace(self, gateway: ipaddress.IPv6Address, ifindex: int, priority: int) -> str | None:
        """Make ``gateway`` the default router at ``priority``; None once done, else why not."""
        self._seq += 1
        try:
            self._sock.send(replace_default_message(gateway, ifindex, priority, self._seq))
            while True:  # the answer was queued while send ran: this does not wait
                data = self._sock.recv(65536, socket.MSG_DONTWAIT)
                refused = [err for seq, err in errors_in(data) if seq == self._seq]
                if refused:
                    return os.strerror(refused[0])
                if any(seq == self._seq for seq in _sequences(data)):
                    return None
        except BlockingIOError:
            return "no answer from the kernel"
        except OSError as exc:
            return exc.strerror or str(exc)

    def close(self) -> None:
        self._sock.close()


def _sequences(data: bytes) -> list[int]:
    out = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, _, _, seq, _ = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size:
            break
        out.append(seq)
        pos += (length + 3) & ~3
    return out
