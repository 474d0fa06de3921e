"""Watching mobile nodes: router advertisements heard and addresses usable, with times.

For each watched node two sockets are opened inside its network namespace
(:func:`testbed.lab.netns.socket_in_netns`; a socket stays in the namespace it was created
in): a raw ICMPv6 socket that only passes Router Advertisements (kernel receive
time stamps, ``SO_TIMESTAMPNS``), and a netlink socket subscribed to IPv6 address events
(after a dump of the current addresses; messages parsed with pyroute2). One background thread reads all of them and
records each event with its ``time.monotonic_ns()``; waiting is a condition wait with a
deadline.

An address is *usable* when it is neither tentative (unless optimistic) nor dad-failed.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

from pyroute2.netlink import NLM_F_DUMP, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_GETADDR, RTM_NEWADDR
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from testbed.agent.ra import ICMP_RA as ND_ROUTER_ADVERT
from testbed.agent.movement import usable
from testbed.agent.ra import parse_ra_message
from testbed.lab.errors import LabTimeout
from testbed.lab.netns import socket_in_netns

log = logging.getLogger("testbed.lab")

RTMGRP_IPV6_IFADDR = 0x100
NLMSG_DONE = 3
ICMP6_FILTER = 1
SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
MAX_RAS = 4096


@dataclass(frozen=True)
class RouterAdvert:
    t_ns: int
    source: str
    ifindex: int
    prefixes: tuple[str, ...]
    home_agent: bool
    router_lifetime: int


@dataclass(frozen=True)
class CareOfAddress:
    """A usable care-of address and when things happened (``time.monotonic_ns()``)."""

    node: str
    address: str
    prefix: str
    ra_ns: int | None  # first RA with the prefix after ``since_ns`` (None if not required)
    usable_ns: int  # when the MN had both heard that RA and a usable address on the prefix
    since_ns: int | None  # the reference (usually the move)


@dataclass
class _Addr:
    flags: int
    usable_since: int | None


class NodeWatch:
    """RA and address events of one node (see the module docstring)."""

    def __init__(self, node: str, pid: int) -> None:
        self.node = node
        self.ras: deque[RouterAdvert] = deque(maxlen=MAX_RAS)
        self.addrs: dict[tuple[int, str], _Addr] = {}
        self.cond = threading.Condition()
        self.ra_sock = socket_in_netns(pid, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            blocked = [0xFFFFFFFF] * 8
            blocked[ND_ROUTER_ADVERT >> 5] &= ~(1 << (ND_ROUTER_ADVERT & 31))
            self.ra_sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("@8I", *blocked))
            self.ra_sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.ra_sock.setblocking(False)
            self.nl_sock = socket_in_netns(pid, socket.AF_NETLINK, socket.SOCK_RAW,
                                           socket.NETLINK_ROUTE)
        except BaseException:
            self.ra_sock.close()
            raise
        try:
            self.nl_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.nl_sock.bind((0, RTMGRP_IPV6_IFADDR))
            self.nl_sock.setblocking(False)
            request = ifaddrmsg()
            request["family"] = socket.AF_INET6
            request["header"]["type"] = RTM_GETADDR
            request["header"]["flags"] = NLM_F_REQUEST | NLM_F_DUMP
            request["header"]["sequence_number"] = 1
            request.encode()
            self.nl_sock.send(request.data)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for sock in (getattr(self, "ra_sock", None), getattr(self, "nl_sock", None)):
            if sock is not None:
                sock.close()

    # -- reading (watcher thread) ---------------------------------------------------------

    def read_ra(self) -> None:
        while True:
            try:
                data, ancdata, _flags, addr = self.ra_sock.recvmsg(
                    4096, socket.CMSG_SPACE(_TIMESPEC.size))
            except BlockingIOError:
                return
            now = time.monotonic_ns()
            t_ns = now
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(cdata) >= _TIMESPEC.size:
                    sec, nsec = _TIMESPEC.unpack_from(cdata)
                    # realtime stamp -> monotonic (all namespaces share the clocks)
                    t_ns = min(now, sec * 1_000_000_000 + nsec - (time.time_ns() - time.monotonic_ns()))
            router = addr[0].split("%")[0]
            ra = parse_ra_message(data, router)
            if ra is None:
                continue
            with self.cond:
                self.ras.append(RouterAdvert(t_ns, router, addr[3], tuple(str(p) for p in ra.prefixes),
                                             ra.home_agent, ra.router_lifetime))
                self.cond.notify_all()

    def read_netlink(self) -> None:
        while True:
            try:
                data = self.nl_sock.recv(1 << 16)
            except BlockingIOError:
                return
            now = time.monotonic_ns()
            changed = False
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if kind in (RTM_NEWADDR, RTM_DELADDR):
                    msg = ifaddrmsg(data[offset:offset + length])
                    msg.decode()
                    if msg["family"] == socket.AF_INET6:
                        changed |= self._on_addr(kind, msg, now)
                offset += (length + 3) & ~3
            if changed:
                with self.cond:
                    self.cond.notify_all()

    def _on_addr(self, kind: int, msg: ifaddrmsg, now: int) -> bool:
        address = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
        if not address:
            return False
        key = (msg["index"], f"{address}/{msg['prefixlen']}")
        flags = msg.get_attr("IFA_FLAGS")
        flags = msg["flags"] if flags is None else flags
        with self.cond:
            if kind == RTM_DELADDR:
                self.addrs.pop(key, None)
                return True
            old = self.addrs.get(key)
            since = old.usable_since if old else None
            if usable(flags):
                since = since if since is not None else now
            else:
                since = None
            self.addrs[key] = _Addr(flags, since)
        return True

    # -- queries (any thread) -------------------------------------------------------------

    def usable_addresses(self, prefix: str | None = None) -> list[str]:
        net = ipaddress.IPv6Network(prefix) if prefix else None
        with self.cond:
            return [key[1].split("/")[0] for key, a in self.addrs.items()
                    if a.usable_since is not None and
                    (net is None or ipaddress.IPv6Address(key[1].split("/")[0]) in net)]

    def _find(self, net: ipaddress.IPv6Network, since_ns: int | None, require_ra: bool):
        ra = None
        if require_ra:
            for adv in self.ras:
                if (since_ns is None or adv.t_ns >= since_ns) and str(net) in adv.prefixes:
                    ra = adv
                    break
            if ra is None:
                return None
        best = None
        for (_idx, key), a in self.addrs.items():
            addr = ipaddress.IPv6Address(key.split("/")[0])
            if a.usable_since is not None and addr in net and (
                    best is None or a.usable_since < best[1]):
                best = (str(addr), a.usable_since)
        if best is None:
            return None
        usable_ns = max(best[1], ra.t_ns) if ra else best[1]
        return CareOfAddress(self.node, best[0], str(net), ra.t_ns if ra else None,
                             usable_ns, since_ns)

    def wait_for_coa(self, prefix: str, *, since_ns: int | None = None, require_ra: bool = True,
                     timeout: float = 2.0) -> CareOfAddress:
        """Block until the node has heard an RA with ``prefix`` at or after ``since_ns`` (if
        ``require_ra``) and has a usable address on it. LabTimeout after ``timeout`` s."""
        net = ipaddress.IPv6Network(prefix)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = self._find(net, since_ns, require_ra)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    heard = any(str(net) in adv.prefixes and (since_ns is None or adv.t_ns >= since_ns)
                                for adv in self.ras)
                    raise LabTimeout(
                        f"{self.node}: no usable address on {net} within {timeout:g} s "
                        f"(RA with that prefix {'heard' if heard else 'not heard'}; usable "
                        f"addresses: {', '.join(k[1] for k, a in self.addrs.items() if a.usable_since) or 'none'})")
                self.cond.wait(remaining)


class Watcher:
    """One thread reading the sockets of every NodeWatch."""

    def __init__(self) -> None:
        self.watches: dict[str, NodeWatch] = {}
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lab-watcher", daemon=True)
        self._thread.start()

    def watch(self, node: str, pid: int) -> NodeWatch:
        with self._lock:
            if node in self.watches:
                return self.watches[node]
            w = NodeWatch(node, pid)
            self.watches[node] = w
            self._selector.register(w.ra_sock, selectors.EVENT_READ, w.read_ra)
            self._selector.register(w.nl_sock, selectors.EVENT_READ, w.read_netlink)
        os.write(self._wake_w, b"x")
        return w

    def _run(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select():
                if key.data is None:
                    try:
                        os.read(self._wake_r, 4096)
                    except BlockingIOError:
                        pass
                    continue
                try:
                    key.data()
                except OSError as exc:
                    log.debug("watcher: %s", exc)

    def close(self) -> None:
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        self._thread.join(timeout=2)
        with self._lock:
            for w in self.watches.values():
                w.close()
            self.watches.clear()
        self._selector.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
