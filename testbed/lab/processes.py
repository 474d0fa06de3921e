"""Processes started inside lab nodes, and their orderly end.

A process is started with ``mnexec -da <node shell pid> argv...``: mnexec joins the node's
namespaces, calls setsid() (the process leads its own process group, away from the
terminal's Ctrl-C) and execs ``argv``, so the Popen pid is the program's pid. Stopping one:
SIGTERM to its process group, wait until a deadline, then SIGKILL (group), wait again.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from testbed.lab.errors import LabError, LabTimeout
from testbed.lab.state import ProcessRecord

log = logging.getLogger("testbed.lab")

STOP_TIMEOUT_S = 3.0


def mnexec_path() -> str:
    path = shutil.which("mnexec")
    if path is None:
        raise LabError("mnexec not found on PATH (install the Debian/Ubuntu package 'mininet')")
    return path


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group ``pid`` leads, or to ``pid`` alone if it leads none."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(record: ProcessRecord, deadline: float) -> bool:
    """Poll until ``record``'s process is gone (for processes that are not our children)."""
    delay = 0.002
    while record.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def stop_record(record: ProcessRecord, timeout: float = STOP_TIMEOUT_S,
                first_signal: int = signal.SIGTERM) -> bool:
    """Stop a recorded process that may not be our child (crash clean-up). True when gone."""
    if not record.alive():
        return True
    signal_group(record.pid, first_signal)
    if wait_gone(record, time.monotonic() + timeout):
        return True
    if record.alive():
        signal_group(record.pid, signal.SIGKILL)
    return wait_gone(record, time.monotonic() + timeout)


class LabProcess:
    """A process running in a lab node."""

    def __init__(self, node: str, tag: str, argv: Sequence[str], popen: subprocess.Popen,
                 log_path: Path | None, on_exit: Callable[[LabProcess], None] | None = None):
        self.node = node
        self.tag = tag
        self.argv = list(argv)
        self.popen = popen
        self.log_path = log_path
        self.record = ProcessRecord.of(popen.pid, node, tag, os.path.basename(self.argv[0]))
        self._buffers: dict[int, bytes] = {}
        self._on_exit = on_exit
        self._stopped = False
        self.final_output: dict[str, str] = {}  # what its pipes still held when it was stopped

    def __repr__(self) -> str:
        return f"<LabProcess {self.tag} on {self.node} pid {self.pid}>"

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait_for_line(self, pattern: str, *, stream: str = "stdout", timeout: float = 5.0) -> str:
        """Read ``stream`` (a PIPE) until a line matches ``pattern`` (a regex); return it.

        Raises LabTimeout after ``timeout`` seconds and LabError when the process exits first.
        """
        pipe: IO[bytes] | None = getattr(self.popen, stream)
        if pipe is None:
            raise LabError(f"{self.tag} on {self.node}: {stream} is not a pipe")
        fd = pipe.fileno()
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            buffer = self._buffers.get(fd, b"")
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                self._buffers[fd] = buffer
                line = raw.decode(errors="replace").rstrip("\r")
                seen.append(line)
                if regex.search(line):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LabTimeout(f"{self.tag} on {self.node}: no line matching {pattern!r} on "
                                 f"{stream} within {timeout:g} s (last: {seen[-1:] or 'nothing'})")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.popen.wait(timeout=1)
                raise LabError(f"{self.tag} on {self.node} exited with status "
                               f"{self.popen.returncode} before printing {pattern!r} "
                               f"(last: {seen[-1:] or 'nothing'}"
                               + (f"; log {self.log_path}" if self.log_path else "") + ")")
            self._buffers[fd] = buffer + chunk

    def read_available(self, stream: str = "stdout") -> str:
        """Whatever ``stream`` (a PIPE) holds now, without blocking."""
        pipe: IO[bytes] | None = getattr(self.popen, stream)
        if pipe is None:
            return ""
        fd = pipe.fileno()
        data = self._buffers.pop(fd, b"")
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            data += chunk
        return data.decode(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (process group), wait up to ``timeout``, then SIGKILL. Returns the status."""
        if not self._stopped:
            self._stopped = True
            try:
                if self.popen.poll() is None:
                    signal_group(self.pid, signal.SIGTERM)
                    try:
                        self.popen.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        log.warning("%s on %s (pid %d) ignored SIGTERM for %g s: killing it",
                                    self.tag, self.node, self.pid, timeout)
                        signal_group(self.pid, signal.SIGKILL)
                        self.popen.wait(timeout=timeout)
                # Members of its group that outlived it (e.g. a daemon's helper). The group id
                # cannot be reused while any member lives, so these are still ours.
                if _group_exists(self.pid):
                    os.killpg(self.pid, signal.SIGKILL)
            finally:
                if self.popen.stdin is not None:
                    try:
                        self.popen.stdin.close()
                    except OSError:  # a command pipe whose reader is gone
                        pass
                for name in ("stdout", "stderr"):
                    pipe = getattr(self.popen, name)
                    if pipe is not None:
                        try:  # what it wrote last (e.g. tcpdump's packet counts), kept for the caller
                            self.final_output[name] = self.read_available(name)
                        except (OSError, ValueError):
                            pass
                        pipe.close()
                if self._on_exit is not None:
                    self._on_exit(self)
        return self.popen.returncode


def stop_all(processes: Sequence[LabProcess], timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop several processes at once: SIGTERM to all, then wait for each (one deadline)."""
    for proc in processes:
        if proc.running():
            signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in processes:
        proc.stop(timeout=max(0.05, deadline - time.monotonic()))


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def popen_in_node(node_pid: int, argv: Sequence[str], *, stdout: Any, stderr: Any,
                  env: dict[str, str] | None, cwd: str | None, stdin: Any = subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``argv`` in the namespaces of ``node_pid`` (a Mininet node shell)."""
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        return subprocess.Popen([mnexec_path(), "-da", str(node_pid), *argv],
                                stdin=stdin, stdout=stdout, stderr=stderr,
                                env=full_env, cwd=cwd, close_fds=True)
    except OSError as exc:
        raise LabError(f"could not start {argv[0]!r}: {exc.strerror or exc}") from None
