"""Two network namespaces joined by a veth pair, tagged with a per-test id, for agent tests
that need no routers (a correspondent agent and a hand-driven mobile node)."""

from __future__ import annotations

import ctypes
import os
import secrets
import socket
import subprocess
import threading
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


@contextmanager
def netns_pair(a_addrs: list[str], b_addrs: list[str], a_routes: tuple = (), b_routes: tuple = (), b_forwarding: bool = False):
    tag = "t" + secrets.token_hex(3)
    a, b = f"{tag}a", f"{tag}b"
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "link", "add", f"{tag}x", "netns", a, "type", "veth", "peer", "name", f"{tag}y", "netns", b)
        for ns, ifname, addrs in ((a, f"{tag}x", a_addrs), (b, f"{tag}y", b_addrs)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", ns, "link", "set", ifname, "up")
            for addr in addrs:
                sh("ip", "-n", ns, "addr", "add", addr, "dev", ifname, "nodad")
        for ns, ifname, routes in ((a, f"{tag}x", a_routes), (b, f"{tag}y", b_routes)):
            for dst, via in routes:
                sh("ip", "-n", ns, "-6", "route", "add", dst, *(("via", via) if via else ("dev", ifname)))
        if b_forwarding:
            sh("ip", "netns", "exec", b, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        yield tag, a, b
    finally:
        for ns in (a, b):
            sh("ip", "netns", "del", ns, check=False)


def in_netns(ns: str, make):
    """``make()`` called inside the named network namespace ``ns`` (a thread joins it, calls
    ``make`` and ends): the sockets it opens live there and keep working from any thread."""
    result: dict = {}

    def create() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {ns}")
            finally:
                os.close(fd)
            result["made"] = make()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=create, daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["made"]


def ns_socket(ns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created inside the named network namespace ``ns``."""
    return in_netns(ns, lambda: socket.socket(family, kind, proto))
