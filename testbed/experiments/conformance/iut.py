"""The implementation under test in its lab node: addressed for a profile, given its keys and
files as its target file says, started, watched, killed and started again.

Key files are written (0600) into a private directory on tmpfs that the run removes at the
end (``lab.state`` records it for ``testbed lab clean``); configuration files, the state
directory and event log go to ``<run dir>/iut/<profile>/``. Processes are the lab's: they
stop when the lab closes, whatever happens.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from testbed.errors import ConfigError
from testbed.experiments.conformance import plan
from testbed.experiments.conformance.target import ROLE_OF, Target, render
from testbed.lab.errors import LabError, LabTimeout

KEY_ROOT = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
READY_POLL_S = 0.1
# The environment variable that lets an agent accept ``test_weaken`` (testbed/mip6/weakening.py).
WEAKEN_ENV = "MIP6_TESTBED_ALLOW_WEAKENING"


@dataclass(frozen=True)
class PairFile:
    home: str
    correspondent: str
    data: object  # PreconfiguredData (secrets never printed)


@dataclass(frozen=True)
class MnHaFile:
    home: str
    home_agent: str
    sa: object  # MnHaSecurityAssociation


def _node_shell(lab, node: str, command: str) -> str:
    """Run a shell command in the node (its Mininet shell); its output."""
    out = lab.node(node).cmd(command + " 2>&1; echo __rc=$?")
    body, _, rc = out.rpartition("__rc=")
    if rc.strip() != "0":
        raise LabError(f"{node}: {command!r} failed: {body.strip()[:300]}")
    return body


class Iut:
    def __init__(self, lab, target: Target, profile: str, run_dir: Path, *, weaken: tuple[str, ...] = ()) -> None:
        self.lab = lab
        self.target = target
        self.profile = profile
        self.role = ROLE_OF[profile]
        self.spec = target.roles[self.role]
        self.weaken = tuple(weaken)
        self.work_dir = (run_dir / "iut" / profile).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir = self.work_dir / "state"
        self.key_dir = Path(tempfile.mkdtemp(prefix=f"mip6-conf-{lab.run_id}-", dir=KEY_ROOT))
        lab.state.add_path(self.key_dir)
        self.socket_dir = Path(tempfile.mkdtemp(prefix=f"m6c-{lab.run_id}-"))
        lab.state.add_path(self.socket_dir)
        (self.key_dir / "pre").mkdir(mode=0o700)
        (self.key_dir / "mn-ha").mkdir(mode=0o700)
        self.mac = lab.addresses.nodes["iut"].interfaces[plan.IUT_IFACE].mac
        self.values: dict[str, str] = {
            "python": sys.executable, "iface": plan.IUT_IFACE, "work_dir": str(self.work_dir),
            "state_dir": str(self.state_dir), "socket_dir": str(self.socket_dir),
            "preconfigured_dir": str(self.key_dir / "pre"), "mn_ha_dir": str(self.key_dir / "mn-ha"),
            "node": "iut", "test_weaken": json.dumps(list(self.weaken)), "mac": self.mac,
        }
        self.process = None
        self.starts = 0
        self.log_path = self.work_dir / "iut.log"

    # -- the node -------------------------------------------------------------------------

    def address(self, **values: str) -> None:
        """Give the node its addresses for the profile (and the tester its own), routes and
        the sysctls of the role: a home agent forwards; a mobile node takes router
        advertisements (optimistic DAD, as the lab's mobile nodes)."""
        lab = self.lab
        iut, tester = plan.IUT_IFACE, plan.TESTER_IFACE
        for node, iface in (("iut", iut), ("tester", tester)):
            _node_shell(lab, node, f"ip -6 addr flush dev {iface} scope global; ip -6 route flush dev {iface} "
                                   f"proto static; sysctl -qw net.ipv6.conf.{iface}.accept_ra=0")
        if self.role == "cn":
            _node_shell(lab, "iut", f"ip -6 addr add {plan.CN_ADDRESS}/{plan.CN_PREFIX_LEN} dev {iut} nodad"
                                    f" && ip -6 route replace default via {plan.CN_TESTER} dev {iut}")
            _node_shell(lab, "tester", f"ip -6 addr add {plan.CN_TESTER}/64 dev {tester} nodad")
            self.values.update(address=plan.CN_ADDRESS, prefix_len=str(plan.CN_PREFIX_LEN))
        elif self.role == "ha":
            _node_shell(lab, "iut", f"sysctl -qw net.ipv6.conf.all.forwarding=1"
                                    f" && ip -6 addr add {plan.HA_ADDRESS}/64 dev {iut} nodad"
                                    f" && ip -6 route replace default via {plan.HA_TESTER} dev {iut}")
            _node_shell(lab, "tester", f"ip -6 addr add {plan.HA_TESTER}/64 dev {tester} nodad")
            self.values.update(address=plan.HA_ADDRESS, prefix_len="64", home_prefix=plan.HOME_PREFIX)
        else:
            _node_shell(lab, "iut", "sysctl -qw net.ipv6.conf.all.forwarding=0 "
                                    + " ".join(f"net.ipv6.conf.{iut}.{k}={v}" for k, v in (
                                        ("accept_ra", 1), ("autoconf", 1), ("router_solicitation_delay", 0),
                                        ("accept_dad", 1), ("dad_transmits", 1), ("optimistic_dad", 1),
                                        ("use_optimistic", 1))))
            # link-local: not flushed with the global ones, so an earlier session's are replaced
            routers = " && ".join(f"ip -6 addr replace {r}/64 dev {tester} nodad" for r, _ in plan.ROUTERS)
            _node_shell(lab, "tester", routers)
            self.values.update(home_address=plan.MN_HOME, home_agent=plan.MN_HOME_AGENT, home_prefix=plan.HOME_PREFIX,
                               correspondents=json.dumps([plan.MN_CN_PRECOMPUTED, plan.MN_CN_RR]))
        self.values.update(values)

    # -- keys -----------------------------------------------------------------------------

    def install_keys(self, pairs: list[PairFile], mn_ha: list[MnHaFile]) -> None:
        """Write each key file with the target's template (0600, the private key directory)."""
        self.installed_pairs = {p.home: p for p in pairs}
        self.installed_mn_ha = list(mn_ha)
        files = []
        for index, pair in enumerate(pairs, start=1):
            d = pair.data
            files.append(("preconfigured", {"index": str(index), "home_address": pair.home,
                                            "correspondent": pair.correspondent, "kcn": d.kcn.hex(),
                                            "home_nonce": d.home_nonce.hex(), "careof_nonce": d.careof_nonce.hex()}))
        for index, item in enumerate(mn_ha, start=1):
            files.append(("mn_ha", {"index": str(index), "home_address": item.home, "home_agent": item.home_agent,
                                    "spi": str(item.sa.spi), "key": item.sa.key.hex()}))
        written: dict[str, list[str]] = {"preconfigured": [], "mn_ha": []}
        for kind, fields in files:
            spec = self.target.keys.get(kind)
            if spec is None:
                raise ConfigError(f"{self.target.source}: keys.{kind} is needed for profile {self.profile}")
            values = {**self.values, **fields}
            path = Path(render(spec.path, values))
            if not path.is_absolute() or self.key_dir not in path.parents:
                raise ConfigError(f"{self.target.source}: keys.{kind}.path must lie in {{preconfigured_dir}} "
                                  f"or {{mn_ha_dir}}, not {path}")
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(render(spec.text, values))
            written[kind].append(str(path))
        self.values["mn_ha_files"] = json.dumps(written["mn_ha"])
        self.values["mn_ha_file"] = written["mn_ha"][0] if written["mn_ha"] else ""

    # -- life cycle -----------------------------------------------------------------------

    def start(self, *, wrapper: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        """Write its files, run its setup, start it (under ``wrapper``, e.g. strace for fault
        injection, with ``env`` added) and wait until it is ready."""
        for name, text in self.spec.files.items():
            path = self.work_dir / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(render(text, self.values))
        for command in self.spec.setup:
            done = self.lab.run("iut", [render(a, self.values) for a in command], tag="iut-setup", timeout=30)
            if done.returncode != 0:
                raise LabError(f"target {self.target.name}: setup command {command[0]} failed: "
                               f"{(done.stderr or done.stdout).strip()[:200]}")
        env = {**({WEAKEN_ENV: "1"} if self.weaken else {}), **(env or {})} or None
        argv = list(wrapper or []) + [render(a, self.values) for a in self.spec.start]
        with open(self.log_path, "ab") as log:
            self.process = self.lab.popen("iut", argv, tag=f"iut-{self.role}", stdout=log, stderr=log, env=env)
        self.starts += 1
        self._wait_ready()

    def reload_keys(self, pairs: list[PairFile], mn_ha: list[MnHaFile]) -> None:
        """Write the key files again (new keys replace old ones in place) and make the running
        implementation read them (its target's ``reload`` command); LabError when it cannot."""
        if self.spec.reload is None:
            raise LabError(f"target {self.target.name} ({self.role}) has no reload command")
        self.install_keys(pairs, mn_ha)
        done = self.lab.run("iut", [render(a, self.values) for a in self.spec.reload], tag="iut-reload", timeout=15)
        if done.returncode != 0:
            raise LabError(f"target {self.target.name}: reload failed: {(done.stderr or done.stdout).strip()[:200]}")

    def run_in_node(self, argv: list[str], timeout: float = 20.0):
        """Run a command in the node under test (the testbed's own tools); its CompletedProcess."""
        return self.lab.run("iut", argv, tag="iut-tool", timeout=timeout)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.spec.ready_timeout
        while True:
            if not self.alive():
                raise LabError(f"target {self.target.name} ({self.role}) exited with {self.process.returncode} "
                               f"at start; see {self.log_path}: {self._log_tail()}")
            if self.spec.ready is None:
                return
            done = self.lab.run("iut", [render(a, self.values) for a in self.spec.ready], tag="iut-ready", timeout=10)
            if done.returncode == 0:
                return
            if time.monotonic() >= deadline:
                raise LabTimeout(f"target {self.target.name} ({self.role}) not ready within "
                                 f"{self.spec.ready_timeout:g} s (its ready command: {done.stderr.strip()[:200]})")
            time.sleep(READY_POLL_S)

    def _log_tail(self) -> str:
        try:
            return " ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-2:])[:300]
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.running()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def kill(self) -> None:
        """SIGKILL (a crash): nothing of its own clean-up runs."""
        if self.process is not None and self.process.running():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.popen.wait(timeout=10)
        if self.process is not None:
            self.process.stop()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.running():
            try:
                os.killpg(self.process.pid, getattr(signal, f"SIG{self.spec.stop_signal}"))
                self.process.popen.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        return self.process.stop()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.key_dir, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    # -- what it shows --------------------------------------------------------------------

    def rss_kib(self) -> int | None:
        """Resident memory of its process group (KiB), from /proc."""
        if not self.alive():
            return None
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getpgid(int(entry)) != self.process.pid:
                    continue
                with open(f"/proc/{entry}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except (OSError, ValueError):
                continue
        return total

    def events(self) -> list[dict]:
        """Its event log (JSON lines), when the target file names one; [] otherwise."""
        if self.spec.events is None:
            return []
        path = Path(render(self.spec.events, self.values))
        out = []
        try:
            with open(path, errors="replace") as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        except OSError:
            return []
        return out
