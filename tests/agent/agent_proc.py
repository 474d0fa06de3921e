"""Agents and hand-driven packets in namespaces: start a real agent and wait for its control
socket; send one packet from a namespace and collect what comes back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testbed.agent.control import request
from testbed.agent.eventlog import read_events
from testbed.mip6.packet import Packet, parse_packet

PYTHON = sys.executable
DRIVER = Path(__file__).with_name("wire_driver.py")


def wait_for(condition, deadline_s, what):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class AgentProc:
    def __init__(self, ns: str, tmp: Path, name: str, config: dict) -> None:
        self.ns = ns
        self.sock = tmp / f"{name}.sock"
        self.log = tmp / f"{name}.jsonl"
        config = {**config, "node": name, "state_dir": str(tmp / f"{name}-state"),
                  "event_log": str(self.log), "control_socket": str(self.sock)}
        self.config = tmp / f"{name}.yaml"
        self.config.write_text(json.dumps(config))
        self.proc: subprocess.Popen | None = None

    def start(self, wrapper: tuple[str, ...] = (), env: dict | None = None):
        """Start the agent (under ``wrapper``, e.g. strace, when given) and wait for its control socket."""
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, *wrapper, PYTHON, "-m", "testbed.cli", "agent", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=None if env is None else {**os.environ, **env},
        )

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited: {self.proc.stderr.read()}")
            try:
                return request(self.sock, {"cmd": "status"}, timeout=1)["ok"]
            except OSError:
                return False

        wait_for(up, 10, f"the agent's control socket {self.sock}")
        return self

    def ctl(self, cmd: str, **args) -> dict:
        return request(self.sock, {"cmd": cmd, **args})

    def events(self):
        self.ctl("flush")
        return read_events(self.log)

    def wait_event(self, name: str, deadline_s: float = 5.0, since: int = 0, **fields) -> dict:
        """The first event ``name`` (after the ``since``-th event) whose fields include ``fields``."""

        def found():
            for e in self.events()[since:]:
                if e["event"] == name and all(e.get(k) == v for k, v in fields.items()):
                    return e
            return None

        return wait_for(found, deadline_s, f"event {name} {fields or ''} in {self.log.name}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        return None if self.proc is None else self.proc.returncode


def exchange(ns: str, packet: bytes, deadline: float = 2.0, want: int = 1, errors: bool = False) -> list[Packet]:
    """Send ``packet`` from namespace ``ns``; the IPv6 packets (not ICMPv6, unless ``errors``:
    then ICMPv6 error messages too) that arrive there."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, PYTHON, str(DRIVER), packet.hex(), str(deadline), str(want),
         "errors" if errors else "-"],
        capture_output=True, text=True, check=True,
    ).stdout
    return [parse_packet(bytes.fromhex(json.loads(line)["hex"])) for line in out.splitlines()]
