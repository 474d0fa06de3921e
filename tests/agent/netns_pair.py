"""Two network namespaces joined by a veth pair, tagged with a per-test id, for agent tests
that need no routers (a correspondent agent and a hand-driven mobile node)."""

from __future__ import annotations

import secrets
import subprocess
from contextlib import contextmanager


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
