"""Driving ``testbed.lab.wiretool`` in a lab node from the controller: send packets, wait
for what comes back (with deadlines), fuzz.

    tool = NodeWire(lab, "att", "att-eth0", dst_mac=lab_mac_of_next_hop)
    t = tool.send(packet)                                   # monotonic ns it left
    answers = tool.recv(since=t, deadline_s=1.0, count=1, mh_type=6)   # [Heard]
    tool.close()

Every wait has a deadline; "nothing came back" is only ever judged after a bounded wait the
caller names (see ``SILENCE_S`` in the suites). The tool process is the lab's: it is
stopped when the lab closes, whatever happens.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass

from testbed.lab import craft
from testbed.lab.errors import LabError, LabTimeout

START_TIMEOUT_S = 15.0
# A command's answer comes once the tool has done it; a fuzz run of N packets at R a second
# takes N / R seconds: callers give that as ``timeout``.
COMMAND_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Heard:
    """A packet the tool received: when (monotonic ns) and what."""

    t_ns: int
    packet: craft.Reply

    def __getattr__(self, name):  # the packet's fields directly: heard.status, heard.mh_type, ...
        return getattr(self.packet, name)


class NodeWire:
    def __init__(self, lab, node: str, iface: str, *, dst_mac: str | None = None, tag: str | None = None) -> None:
        argv = [sys.executable, "-m", "testbed.lab.wiretool", "--iface", iface]
        if dst_mac:
            argv += ["--dst-mac", dst_mac]
        self.node, self.iface = node, iface
        log_path = lab.run_dir / "logs" / f"{node}-{tag or 'wiretool'}.log"
        with open(log_path, "ab") as log:
            self.proc = lab.popen(node, argv, tag=tag or "wiretool", stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=log)
        self._buffer = b""
        ready = self._line(START_TIMEOUT_S)
        if not ready.get("ready"):
            raise LabError(f"wiretool on {node}: unexpected first line {ready!r}")
        self.mac = ready["mac"]

    def _line(self, timeout: float) -> dict:
        fd = self.proc.popen.stdout.fileno()
        end = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = end - time.monotonic()
            if left <= 0:
                raise LabTimeout(f"wiretool on {self.node} did not answer within {timeout:g} s")
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise LabError(f"wiretool on {self.node} exited with {self.proc.popen.wait(timeout=2)} "
                               f"(see {self.proc.log_path or 'its log'})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, cmd: str, timeout: float = COMMAND_TIMEOUT_S, **args) -> dict:
        self.proc.popen.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n").encode())
        self.proc.popen.stdin.flush()
        answer = self._line(timeout)
        if not answer.get("ok"):
            raise LabError(f"wiretool on {self.node}: {cmd}: {answer.get('error')}")
        return answer

    # -- conveniences -------------------------------------------------------------------------

    def now(self) -> int:
        return self.call("now")["t_ns"]

    def send(self, *packets: bytes, dst_mac: str | None = None, gap_us: float = 0) -> int:
        """Put ``packets`` on the wire; the monotonic time the first left."""
        args = {"packets": [p.hex() for p in packets], "gap_us": gap_us}
        if dst_mac:
            args["dst_mac"] = dst_mac
        return self.call("send", **args)["t_ns"]

    def recv(self, *, since: int, deadline_s: float, count: int | None = None, **match) -> list[Heard]:
        """What arrived since ``since`` and matches (``mh_type=6``, ``src=...``), waiting up to
        ``deadline_s`` for ``count`` packets (None: everything until the deadline)."""
        answer = self.call("recv", timeout=deadline_s + COMMAND_TIMEOUT_S, since_ns=since, deadline_s=deadline_s,
                           count=count, match=match)
        return [Heard(p["t_ns"], craft.read(bytes.fromhex(p["hex"]))) for p in answer["packets"]]

    def exchange(self, packet: bytes, *, deadline_s: float, count: int | None = 1, dst_mac: str | None = None,
                 **match) -> list[Heard]:
        t = self.send(packet, dst_mac=dst_mac)
        return self.recv(since=t, deadline_s=deadline_s, count=count, **match)

    def close(self) -> None:
        if self.proc.running():
            try:
                self.call("quit", timeout=2)
            except (LabError, OSError, ValueError):
                pass
        self.proc.stop()

    def __enter__(self) -> NodeWire:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
