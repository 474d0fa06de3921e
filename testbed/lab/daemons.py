"""Daemons of lab nodes, modelled on IPMininet's: defaults, a rendered config, a dry-run
check and a start line. One instance per node; the lab starts it with ``start_argv()``.

Radvd: one per access router (and the home agent on its home link, with
AdvHomeAgentFlag). Its config, log and pid file live in the run directory. ``radvd
--configtest`` only parses the file; the interval ranges (which depend on the radvd
version and its Mobile IPv6 mode) are checked when radvd sets up an interface, and a
rejected value is only logged. :func:`probe_radvd_intervals` therefore tries the intervals
on a real interface in a throwaway network namespace.
"""

from __future__ import annotations

import functools
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from testbed.errors import ConfigError
from testbed.lab.errors import LabError

PROBE_TIMEOUT_S = 5.0


class Daemon:
    """A daemon of one node: ``defaults()`` updated by options, rendered to ``config_path``."""

    NAME: ClassVar[str] = "daemon"

    def __init__(self, node: str, conf_dir: Path, log_dir: Path, volatile_dir: Path,
                 **options: Any) -> None:
        self.node = node
        self.options = {**self.defaults(), **options}
        self.config_path = conf_dir / f"{self.NAME}-{node}.conf"
        self.log_path = log_dir / f"{self.NAME}-{node}.log"
        self.pid_path = volatile_dir / f"{self.NAME}-{node}.pid"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {}

    def render(self) -> str:
        raise NotImplementedError

    def write(self) -> Path:
        self.config_path.write_text(self.render())
        return self.config_path

    def check_argv(self) -> list[str]:
        raise NotImplementedError

    def dry_run(self) -> None:
        """Check the written config with the daemon itself; ConfigError naming the file."""
        done = subprocess.run(self.check_argv(), capture_output=True, text=True, timeout=10,
                              check=False)
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            last = detail[-1] if detail else f"status {done.returncode}"
            raise ConfigError(f"{self.config_path}: {self.NAME} rejects the config: {last}")

    def start_argv(self) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class RaInterface:
    """One interface radvd advertises on: its prefix, and whether it is a home link."""

    name: str
    prefix: str
    home: bool = False


def _seconds(value: float) -> str:
    return f"{value:g}"


class Radvd(Daemon):
    NAME = "radvd"

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return {"interfaces": [], "min_interval": 0.05, "max_interval": 0.1, "min_delay": 0.03,
                "interval_opt": True, "home_agent_lifetime": 1800, "home_agent_preference": 0}

    def render(self) -> str:
        o = self.options
        lines = [f"# radvd of lab node {self.node} (rendered by testbed.lab)"]
        # Router lifetime: at least 1 s (radvd's own minimum) and 3 x MaxRtrAdvInterval.
        router_lifetime = max(1, round(3 * o["max_interval"] + 0.4999))
        for intf in o["interfaces"]:
            lines += [
                f"interface {intf.name} {{",
                "    AdvSendAdvert on;",
                f"    MinRtrAdvInterval {_seconds(o['min_interval'])};",
                f"    MaxRtrAdvInterval {_seconds(o['max_interval'])};",
                f"    MinDelayBetweenRAs {_seconds(o['min_delay'])};",
                f"    AdvIntervalOpt {'on' if o['interval_opt'] else 'off'};",
                f"    AdvDefaultLifetime {router_lifetime};",
            ]
            if intf.home:
                lines += [
                    "    AdvHomeAgentFlag on;",
                    "    AdvHomeAgentInfo on;",
                    f"    HomeAgentLifetime {o['home_agent_lifetime']};",
                    f"    HomeAgentPreference {o['home_agent_preference']};",
                ]
            lines += [
                f"    prefix {intf.prefix} {{",
                "        AdvOnLink on;",
                "        AdvAutonomous on;",
                "        AdvRouterAddr on;",
                "    };",
                "};",
            ]
        return "\n".join(lines) + "\n"

    def check_argv(self) -> list[str]:
        return [radvd_path(), "--configtest", "-C", str(self.config_path), "-m", "stderr"]

    def start_argv(self) -> list[str]:
        # Foreground (-n) so that the pid we start is radvd's; logs go to stderr (-> log file).
        return [radvd_path(), "-n", "-C", str(self.config_path), "-p", str(self.pid_path),
                "-m", "stderr"]

    def started(self, pid: int) -> bool:
        """Whether radvd (``pid``) has written its pid file, i.e. finished starting up."""
        try:
            return self.pid_path.read_text().strip() == str(pid)
        except FileNotFoundError:
            return False


def radvd_path() -> str:
    path = shutil.which("radvd")
    if path is None:
        raise LabError("radvd not found on PATH (install the package 'radvd')")
    return path


@dataclass(frozen=True)
class IntervalProbe:
    accepted: bool
    version: str
    detail: str  # radvd's complaint when not accepted


@functools.cache
def radvd_version() -> str:
    done = subprocess.run([radvd_path(), "--version"], capture_output=True, text=True, timeout=10,
                          check=False)
    match = re.search(r"Version:?\s*(\S+)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


@functools.cache
def probe_radvd_intervals(min_interval: float, max_interval: float, min_delay: float) -> IntervalProbe:
    """Try the intervals with the installed radvd on a veth in a throwaway namespace.

    radvd logs "... must be ..." for a value it does not accept (and then uses its own);
    the probe watches its debug output until the first scheduling line. Cached per process.
    """
    with tempfile.TemporaryDirectory(prefix="mip6-radvd-probe-") as tmp:
        probe = Radvd("probe", Path(tmp), Path(tmp), Path(tmp), min_interval=min_interval,
                      max_interval=max_interval, min_delay=min_delay,
                      interfaces=[RaInterface("p0", "2001:db8:ffff::/64")])
        probe.write()
        script = ("ip link add p0 type veth peer name p1 && ip link set p0 up && "
                  "ip link set p1 up && sysctl -q -w net.ipv6.conf.all.forwarding=1 && "
                  f"exec {' '.join(probe.start_argv())} -d 1")
        proc = subprocess.Popen(["unshare", "--net", "sh", "-c", script], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        complaints: list[str] = []
        output = b""  # everything read so far; re-scanned whole (it is short)
        verdict: bool | None = None
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        try:
            fd = proc.stderr.fileno()
            while verdict is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if not select.select([fd], [], [], remaining)[0]:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                output += chunk
                for line in output.decode(errors="replace").splitlines():
                    complaint = line.split("): ", 1)[-1]
                    if "must be" in line and complaint not in complaints:
                        complaints.append(complaint)
                    if "polling for" in line or "timer_handler" in line:
                        verdict = not complaints
                        break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=PROBE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            proc.stderr.close()
    if verdict is None:
        last = output.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise LabError(f"radvd interval probe failed: {last[0]}")
    return IntervalProbe(verdict, radvd_version(), "; ".join(complaints))
