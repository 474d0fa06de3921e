"""Packet captures: tcpdump inside a node, writing ``<node>-<intf>.pcap`` in the run directory.

``Lab.capture()`` returns once tcpdump reports ``listening on`` (its capture is active),
so packets sent afterwards are in the file. Stopping sends SIGTERM; tcpdump writes each
packet as it comes (``-U``) and closes the file on exit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from testbed.lab.processes import LabProcess

LISTENING = r"listening on"
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def tcpdump_argv(intf: str, path: Path, bpf: str | None = None, snaplen: int = 0) -> list[str]:
    # -Z root: Debian's tcpdump otherwise drops to user tcpdump before writing the file.
    argv = ["tcpdump", "-i", intf, "-w", str(path), "-U", "-n", "-Z", "root",
            "--immediate-mode", "-s", str(snaplen)]
    if bpf:
        argv.append(bpf)
    return argv


def safe_name(text: str) -> bool:
    return bool(_SAFE.match(text))


@dataclass
class Capture:
    node: str
    intf: str
    path: Path
    process: LabProcess

    def stop(self) -> Path:
        """Stop tcpdump (SIGTERM) and return the pcap's path."""
        self.process.stop()
        return self.path
