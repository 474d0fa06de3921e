"""Suppress the ICMPv6 Parameter Problem errors a kernel without Mobile IPv6 sends for
packets the agent handles in user space (platform.md), and only while the agent runs.

Rules go into the node's ip6tables OUTPUT chain tagged with a comment naming the agent
(``mip6-testbed:<tag>``); ``remove`` deletes exactly those rules.
"""

from __future__ import annotations

import shutil
import subprocess

from testbed.errors import TestbedError

PARAMETER_PROBLEM_CODES = ("4/0", "4/1", "4/2")


def _tool() -> str:
    for name in ("ip6tables-legacy", "ip6tables", "ip6tables-nft"):
        path = shutil.which(name)
        if path:
            return path
    raise TestbedError("no ip6tables found: install the iptables package")


def _rule(code: str, tag: str) -> list[str]:
    return ["OUTPUT", "-p", "ipv6-icmp", "--icmpv6-type", code, "-m", "comment",
            "--comment", f"mip6-testbed:{tag}", "-j", "DROP"]


class ParameterProblemFilter:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self._tool = _tool()
        self._installed: list[list[str]] = []

    def install(self) -> None:
        for code in PARAMETER_PROBLEM_CODES:
            rule = _rule(code, self.tag)
            done = subprocess.run([self._tool, "-w", "-A", *rule], capture_output=True, text=True)
            if done.returncode != 0:
                self.remove()
                raise TestbedError(f"{self._tool} could not add an OUTPUT rule: {done.stderr.strip()}")
            self._installed.append(rule)

    def remove(self) -> None:
        while self._installed:
            rule = self._installed.pop()
            subprocess.run([self._tool, "-w", "-D", *rule], capture_output=True)
