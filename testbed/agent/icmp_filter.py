"""Suppress the ICMPv6 Parameter Problem errors a kernel without Mobile IPv6 sends for
packets the agent handles in user space (docs/host.md), and on the HA and the MN the
Destination Unreachable 1/4 a kernel with tunnel6 sends for IPv6-in-IPv6 (docs/kernels.md),
only while the agent runs.

Rules go into the node's ip6tables OUTPUT chain tagged with a comment naming the agent
(``mip6-testbed:<tag>``); ``remove`` deletes exactly those rules. They drop the kernel's
Parameter Problems only: packets the agent sends itself carry the socket mark ``AGENT_MARK``
(``PacketSender``), so the Parameter Problems its engine decides on (an unrecognised option,
RFC 8200 4.2, rate-limited there) still leave.
"""

from __future__ import annotations

import shutil
import subprocess

from testbed.errors import TestbedError

PARAMETER_PROBLEM_CODES = ("4/0", "4/1", "4/2")
# Kernels with tunnel6 (CONFIG_INET6_TUNNEL, or ip6_tunnel loaded: Ubuntu's) answer an
# IPv6-in-IPv6 packet no tunnel device takes with Destination Unreachable 1/4 instead of 4/1:
# the HA and the MN, which tunnel in user space, drop that too (docs/kernels.md).
TUNNEL_UNREACHABLE_CODE = "1/4"
ROLE_CODES = {"mn": (*PARAMETER_PROBLEM_CODES, TUNNEL_UNREACHABLE_CODE),
              "ha": (*PARAMETER_PROBLEM_CODES, TUNNEL_UNREACHABLE_CODE),
              "cn": PARAMETER_PROBLEM_CODES}
AGENT_MARK = 0x6D36  # SO_MARK of the agent's own packets ("m6")


TOOLS = ("ip6tables-legacy", "ip6tables", "ip6tables-nft")  # the first that takes a rule is used


def _rule(code: str, tag: str) -> list[str]:
    return ["OUTPUT", "-p", "ipv6-icmp", "--icmpv6-type", code, "-m", "mark", "!", "--mark", hex(AGENT_MARK),
            "-m", "comment", "--comment", f"mip6-testbed:{tag}", "-j", "DROP"]


class ParameterProblemFilter:
    def __init__(self, tag: str, codes: tuple[str, ...] = PARAMETER_PROBLEM_CODES) -> None:
        self.tag = tag
        self.codes = codes
        self._tools = [p for p in map(shutil.which, TOOLS) if p]
        if not self._tools:
            raise TestbedError("no ip6tables found: install the iptables package")
        self._tool = self._tools[0]
        self._installed: list[list[str]] = []

    def install(self) -> None:
        errors = []
        for tool in self._tools:  # legacy tables where the kernel has them, else nftables
            self._tool = tool
            try:
                for code in self.codes:
                    rule = _rule(code, self.tag)
                    done = subprocess.run([tool, "-w", "-A", *rule], capture_output=True, text=True)
                    if done.returncode != 0:
                        raise TestbedError(f"{tool}: {' '.join(done.stderr.split())}")
                    self._installed.append(rule)
                return
            except TestbedError as exc:
                self.remove()
                errors.append(str(exc))
        raise TestbedError("could not add the ICMPv6 Parameter Problem rules: " + "; ".join(errors))

    def remove(self) -> None:
        while self._installed:
            rule = self._installed.pop()
            subprocess.run([self._tool, "-w", "-D", *rule], capture_output=True)
