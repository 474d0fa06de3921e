"""Packet captures: tcpdump inside a node, writing ``<node>-<intf>.pcap`` in the run directory.

``Lab.capture()`` returns once tcpdump reports ``listening on`` (its capture is active),
so packets sent afterwards are in the file. Stopping sends SIGTERM; tcpdump writes each
packet as it comes (``-U``) and closes the file on exit, then reports how many packets the
kernel dropped because tcpdump did not read them in time: ``Capture.dropped``. The capture
buffer is large (``-B``): a host pausing the VM for hundreds of milliseconds while the lab
sends probes at 100/s would otherwise overflow the default 2 MiB ring, and a capture that
lost packets cannot be compared with the agents' event logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from testbed.lab.processes import LabProcess

LISTENING = r"listening on"
BUFFER_KIB = 32768
_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")
_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def tcpdump_argv(intf: str, path: Path, bpf: str | None = None, snaplen: int = 0) -> list[str]:
    # -Z root: Debian's tcpdump otherwise drops to user tcpdump before writing the file.
    argv = ["tcpdump", "-i", intf, "-w", str(path), "-U", "-n", "-Z", "root",
            "--immediate-mode", "-s", str(snaplen), "-B", str(BUFFER_KIB),
            "--time-stamp-precision", "nano"]
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
    log_path: Path | None = None  # tcpdump's log; its exit report is appended there
    dropped: int | None = None  # packets the kernel dropped, as tcpdump reported on exit

    def stop(self) -> Path:
        """Stop tcpdump (SIGTERM) and return the pcap's path."""
        self.process.stop()
        report = self.process.final_output.get("stderr", "")
        match = _DROPPED.search(report)
        if match:
            self.dropped = int(match.group(1))
        if report and self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(report)
        return self.path
