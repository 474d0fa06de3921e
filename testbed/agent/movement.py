"""Movement detection for the mobile node (RFC 6275 11.5), without kernel Mobile IPv6.

An RA from a router advertising a prefix other than the current one means the MN has moved.
Only a default router counts: an RA with router lifetime 0 (a router leaving, RFC 4861
6.3.4) is no reason to move, and a deprecated prefix (preferred lifetime 0) or address is
not used for a new care-of address (RFC 4862 5.5.4). At most MAX_UPDATE_RATE moves are acted
on per second; of a burst of RAs only the newest counts, so an RA flood cannot drive the
node (and its signalling) faster than that.
The care-of address is the node's address in that prefix, usable as soon as the kernel
adds it (optimistic DAD), learnt from netlink (pyroute2), not from ``ip`` text. The old
care-of address and default router linger after a move (docs/host.md), so the detector also
installs a preferred default route through the new router. When the link comes up again it
sends a Router Solicitation rather than wait for the next unsolicited RA.

A mobile node may have several interfaces (one NIC per access network, a handover taking
one down and bringing another up: docs/multihost.md): the RA's interface is the one the
care-of address is looked for on and the default route goes through.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.rtnl import RTMGRP_IPV6_IFADDR, RTMGRP_LINK

from testbed.agent.defaultroute import DefaultRoute
from testbed.agent.events import DefaultRouteFailed, HomeAddressFailed, HomeRouteFailed, RaIgnored, RaNewPrefix
from testbed.agent.ra import RouterAdvertisement, RouterSolicitor
from testbed.mip6.constants import MAX_UPDATE_RATE, SECOND_NS
from testbed.mip6.ratelimit import UpdateRateLimit

IFA_F_OPTIMISTIC = 0x04
IFA_F_DADFAILED = 0x08
IFA_F_DEPRECATED = 0x20
IFA_F_TENTATIVE = 0x40
ROUTE_PRIORITY = 1  # beats the kernel's RA-learnt default routes (metric 1024)


@dataclass(frozen=True, slots=True)
class Movement:
    prefix: ipaddress.IPv6Network
    router: ipaddress.IPv6Address
    careof: ipaddress.IPv6Address
    ra_t_ns: int  # when the RA that revealed the move arrived
    usable_t_ns: int  # when the care-of address was usable


def usable(flags: int) -> bool:
    if flags & (IFA_F_DADFAILED | IFA_F_DEPRECATED):
        return False
    return not flags & IFA_F_TENTATIVE or bool(flags & IFA_F_OPTIMISTIC)


class MovementDetector:
    def __init__(self, interface: str | Sequence[str], home_address: ipaddress.IPv6Address, home_prefix: ipaddress.IPv6Network,
                 on_move: Callable[[Movement], None], log: Callable[..., None]) -> None:
        self.interfaces = (interface,) if isinstance(interface, str) else tuple(interface)
        self.interface = self.interfaces[0]  # the one in use (an RA's moves it)
        self.home_address = home_address
        self.home_prefix = home_prefix
        self.prefix: ipaddress.IPv6Network | None = None
        self.router: ipaddress.IPv6Address | None = None
        self._on_move = on_move
        self._log = log
        self._pending: tuple[ipaddress.IPv6Network, ipaddress.IPv6Address, int, int] | None = None
        self._indexes = {name: socket.if_nametoindex(name) for name in self.interfaces}
        self._ifindex = self._indexes[self.interface]
        self._monitor: AsyncIPRoute | None = None
        self._ipr: AsyncIPRoute | None = None
        self._tasks: list[asyncio.Task] = []
        self._ras: asyncio.Queue = asyncio.Queue()
        self._solicitors = {self._indexes[name]: RouterSolicitor(name) for name in self.interfaces}
        self._default_route = DefaultRoute()
        self._route_installed = False
        self._moves = UpdateRateLimit(MAX_UPDATE_RATE, SECOND_NS)
        self._ignored_logged: dict[tuple[str, str], int] = {}

    async def start(self) -> None:
        self._ipr = AsyncIPRoute()
        self._monitor = AsyncIPRoute()
        await self._monitor.bind(groups=RTMGRP_IPV6_IFADDR | RTMGRP_LINK)
        # The first requests of a pyroute2 socket are slow: make them now, not during a move.
        await self._ipr.link_lookup(ifname=self.interface)
        self._tasks = [asyncio.create_task(self._watch()), asyncio.create_task(self._handle_ras())]
        for solicitor in self._solicitors.values():
            solicitor.solicit()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._route_installed and self._ipr is not None and self.router is not None:
            try:
                await self._ipr.route("del", dst="::/0", gateway=str(self.router), oif=self._ifindex,
                                      priority=ROUTE_PRIORITY, family=socket.AF_INET6)
            except Exception:
                pass
        for sock in (self._monitor, self._ipr):
            if sock is not None:
                sock.close()
        self._default_route.close()
        for solicitor in self._solicitors.values():
            solicitor.close()

    # ------------------------------------------------------------------ inputs

    def on_router_advertisement(self, ra: RouterAdvertisement, t_ns: int, interface: str | None = None) -> None:
        """Queue an RA from a default router with a usable prefix (that arrived on
        ``interface``, default the one in use); one task handles them in order, so a move is
        acted on once."""
        if ra.prefixes and ra.default_router:
            index = self._indexes.get(interface, self._ifindex) if interface is not None else self._ifindex
            self._ras.put_nowait((ra, t_ns, index))
        elif ra.prefixes or ra.deprecated:
            reason = ("router lifetime 0: not a default router (RFC 4861 6.3.4)" if not ra.default_router
                      else "only deprecated prefixes (RFC 4862 5.5.4)")
            key = (str(ra.router), reason)
            if t_ns - self._ignored_logged.get(key, -SECOND_NS) >= SECOND_NS:  # once a second per router and reason
                self._ignored_logged[key] = t_ns
                self._log(RaIgnored, t_ns, router=str(ra.router), reason=reason,
                          prefixes=[str(p) for p in ra.prefixes + ra.deprecated])

    async def _handle_ras(self) -> None:
        while True:
            ra, t_ns, index = await self._ras.get()
            while not self._ras.empty():  # a burst of RAs: only the newest says where we are
                ra, t_ns, index = self._ras.get_nowait()
            prefix = ra.prefixes[0]
            if prefix == self.prefix and ra.router == self.router and index == self._ifindex:
                continue
            if self._pending is not None and self._pending[0] == prefix:
                continue
            wait = self._moves.wait_ns(b"", 0, time.monotonic_ns())
            if wait:  # MAX_UPDATE_RATE moves within the last second: wait, then look again
                await asyncio.sleep(wait / 1e9)
                if not self._ras.empty():
                    continue  # newer RAs came meanwhile; they decide
            self._moves.record(b"", 0, time.monotonic_ns())
            self._pending = (prefix, ra.router, t_ns, index)
            self._log(RaNewPrefix, t_ns, prefix=str(prefix), router=str(ra.router),
                      home=prefix == self.home_prefix, router_lifetime=ra.router_lifetime)
            if prefix == self.home_prefix:
                await self._commit(self.home_address)  # back home: the home address is the address in use
            else:
                await self._check_addresses()

    async def _watch(self) -> None:
        async for msg in self._monitor.get():
            event = msg.get("event")
            if (event == "RTM_NEWADDR" and self._pending is not None
                    and msg.get("index") == self._pending[3]):
                await self._consider(msg)
            elif event == "RTM_NEWLINK" and msg.get("index") in self._solicitors:
                if msg.get("IFLA_OPERSTATE") == "UP":
                    self._solicitors[msg["index"]].solicit()

    async def _check_addresses(self) -> None:
        async for msg in await self._ipr.addr("dump", family=socket.AF_INET6, index=self._pending[3]):
            if self._pending is None:
                return
            await self._consider(msg)

    async def _consider(self, msg) -> None:
        text = msg.get("IFA_ADDRESS")
        if not text:
            return
        address = ipaddress.IPv6Address(text)
        flags = msg.get("IFA_FLAGS") or msg.get("flags") or 0
        if address in self._pending[0] and usable(flags):
            await self._commit(address)

    async def _commit(self, careof: ipaddress.IPv6Address) -> None:
        prefix, router, ra_t, index = self._pending
        self._pending = None
        now = time.monotonic_ns()
        old_router, old_index = self.router, self._ifindex
        self._ifindex = index
        self.interface = next(name for name, i in self._indexes.items() if i == index)
        was_home = self.prefix == self.home_prefix
        self.prefix, self.router = prefix, router
        if prefix == self.home_prefix and not was_home:
            await self._home_address("replace")  # at home the MN answers for its home address itself
        elif was_home and prefix != self.home_prefix:
            await self._home_address("del", old_index)
            await self._forget_home_link(old_index)
        await self._use_router(old_router, router, old_index)
        self._on_move(Movement(prefix, router, careof, ra_t, now))

    async def _forget_home_link(self, index: int) -> None:
        """Away from home the home prefix is not on-link any more: the kernel's prefix route
        (and SLAAC address) from the home link would send the home agent's traffic nowhere."""
        try:
            await self._ipr.route("del", dst=str(self.home_prefix), oif=index, family=socket.AF_INET6)
        except Exception as exc:
            self._log(HomeRouteFailed, time.monotonic_ns(), error=str(exc))
        async for msg in await self._ipr.addr("dump", family=socket.AF_INET6, index=index):
            text = msg.get("IFA_ADDRESS")
            if text and ipaddress.IPv6Address(text) in self.home_prefix:
                try:
                    await self._ipr.addr("del", index=index, address=text, prefixlen=msg["prefixlen"])
                except Exception:
                    pass

    async def _home_address(self, command: str, index: int | None = None) -> None:
        try:
            await self._ipr.addr(command, index=self._ifindex if index is None else index, address=str(self.home_address),
                                 prefixlen=self.home_prefix.prefixlen, flags=0x02)  # IFA_F_NODAD
        except Exception as exc:
            self._log(HomeAddressFailed, time.monotonic_ns(), command=command, error=str(exc))

    async def _use_router(self, old: ipaddress.IPv6Address | None, router: ipaddress.IPv6Address,
                          old_index: int | None = None) -> None:
        """The preferred default route through ``router`` on the interface in use, in place
        before the BUs go: one netlink message carried out while it is sent
        (testbed/agent/defaultroute.py), the route through ``old`` (on ``old_index``, the
        interface used before) replaced by it. Should the kernel refuse, the old way (delete,
        then replace, through pyroute2) is tried."""
        old_index = self._ifindex if old_index is None else old_index
        problem = self._default_route.replace(router, self._ifindex, ROUTE_PRIORITY)
        if problem is not None:
            self._log(DefaultRouteFailed, time.monotonic_ns(), router=str(router), error=problem)
            if self._route_installed and old is not None and (old != router or old_index != self._ifindex):
                try:
                    await self._ipr.route("del", dst="::/0", gateway=str(old), oif=old_index,
                                          priority=ROUTE_PRIORITY, family=socket.AF_INET6)
                except Exception:
                    pass
            await self._ipr.route("replace", dst="::/0", gateway=str(router), oif=self._ifindex,
                                  priority=ROUTE_PRIORITY, family=socket.AF_INET6)
        self._route_installed = True
