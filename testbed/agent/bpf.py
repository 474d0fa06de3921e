"""A classic BPF filter for the agents' AF_PACKET sockets: only the IPv6 frames an agent
handles reach user space (Mobility Header, destination options, routing header,
IPv6-in-IPv6, and optionally ICMPv6 Router Advertisements)."""

from __future__ import annotations

import ctypes
import socket
import struct

SO_ATTACH_FILTER = 26
ETH_P_IPV6 = 0x86DD

# BPF opcodes
_LD_H_ABS = 0x28
_LD_B_ABS = 0x30
_JEQ_K = 0x15
_RET_K = 0x06

_ETHERTYPE = 12
_NEXT_HEADER = 14 + 6
_ICMP_TYPE = 14 + 40
ROUTER_ADVERTISEMENT = 134


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def program(next_headers: tuple[int, ...], *, router_advertisements: bool = False) -> list[tuple[int, int, int, int]]:
    """Instructions (code, jt, jf, k): accept IPv6 frames whose first next header is one of
    ``next_headers`` (and RAs when asked), drop everything else."""
    checks = list(next_headers)
    n = len(checks)
    extra = 3 if router_advertisements else 0  # jeq 58, ld icmp type, jeq 134
    prog = [(_LD_H_ABS, 0, 0, _ETHERTYPE)]
    # jump to drop (last instruction) if not IPv6
    total = 1 + 1 + 1 + n + extra + 2
    drop = total - 1
    accept = total - 2
    prog.append((_JEQ_K, 0, drop - 2, ETH_P_IPV6))
    prog.append((_LD_B_ABS, 0, 0, _NEXT_HEADER))
    for i, nh in enumerate(checks):
        here = len(prog)
        last = i == n - 1 and not router_advertisements
        prog.append((_JEQ_K, accept - here - 1, (drop - here - 1) if last else 0, nh))
    if router_advertisements:
        here = len(prog)
        prog.append((_JEQ_K, 0, drop - here - 1, socket.IPPROTO_ICMPV6))
        prog.append((_LD_B_ABS, 0, 0, _ICMP_TYPE))
        here = len(prog)
        prog.append((_JEQ_K, accept - here - 1, drop - here - 1, ROUTER_ADVERTISEMENT))
    prog.append((_RET_K, 0, 0, 0xFFFF))
    prog.append((_RET_K, 0, 0, 0))
    assert len(prog) == total
    return prog


def attach(sock: socket.socket, prog: list[tuple[int, int, int, int]]) -> None:
    raw = b"".join(struct.pack("HBBI", *ins) for ins in prog)
    buf = ctypes.create_string_buffer(raw)
    fprog = _SockFprog(len(prog), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
