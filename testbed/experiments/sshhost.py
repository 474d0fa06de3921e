"""A machine of an Ansible inventory, reached with the system's ``ssh`` the way Ansible reaches it.

The connection variables read (the same as Ansible's ssh connection): ``ansible_host``,
``ansible_port``, ``ansible_user``, ``ansible_ssh_private_key_file``,
``ansible_ssh_common_args``, ``ansible_ssh_extra_args``, ``ansible_ssh_executable``, and
``ansible_become`` (then commands run under ``sudo -n``). Nothing else of the inventory's
connection settings (jump hosts through other variables, passwords) is supported: a password
prompt would hang, so ``BatchMode=yes`` is always set.

``hold()`` starts a remote command that lives exactly as long as our end of the connection:
the remote shell waits on the connection's stdin and stops the command (by its process id)
when that closes, whether we close it or our process dies. Nothing is ever stopped by name.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from typing import IO

from testbed.errors import TestbedError

HELD_READY = "mip6-held-started"


@dataclass
class SshHost:
    name: str
    vars: dict = field(repr=False)

    def ssh_argv(self) -> list[str]:
        v = self.vars
        argv = [str(v.get("ansible_ssh_executable") or "ssh"), "-o", "BatchMode=yes"]
        if v.get("ansible_port"):
            argv += ["-p", str(v["ansible_port"])]
        if v.get("ansible_user"):
            argv += ["-l", str(v["ansible_user"])]
        if v.get("ansible_ssh_private_key_file"):
            argv += ["-i", str(v["ansible_ssh_private_key_file"])]
        for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args"):
            if v.get(key):
                argv += shlex.split(str(v[key]))
        return [*argv, str(v.get("ansible_host") or self.name)]

    def remote(self, script: str) -> list[str]:
        """The ssh command line that runs shell ``script`` there (as root with become)."""
        become = bool(self.vars.get("ansible_become")) and str(self.vars.get("ansible_user", "root")) != "root"
        command = ["sudo", "-n", "sh", "-c", script] if become else ["sh", "-c", script]
        return [*self.ssh_argv(), "--", shlex.join(command)]

    def run(self, argv: list[str], *, timeout: float = 30.0, check: bool = True,
            stdout: IO | int | None = subprocess.PIPE) -> subprocess.CompletedProcess:
        """``argv`` run there to completion (text output unless ``stdout`` is a file)."""
        try:
            done = subprocess.run(self.remote(shlex.join(argv)), stdin=subprocess.DEVNULL, stdout=stdout,
                                  stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestbedError(f"{self.name}: {shlex.join(argv)[:80]} did not finish within {timeout:g} s") from None
        if check and done.returncode != 0:
            raise TestbedError(f"{self.name}: {shlex.join(argv)[:80]} failed (exit {done.returncode}): "
                               f"{' '.join(done.stderr.decode(errors='replace').split())[-300:]}")
        return done

    def text(self, argv: list[str], **kw) -> str:
        return self.run(argv, **kw).stdout.decode(errors="replace")

    def hold(self, argv: list[str], *, stdout: IO | int | None, log: str | None = None,
             signal: str = "TERM", timeout: float = 15.0) -> Held:
        """``argv`` started there; it runs until ``Held.stop()`` (or until this connection
        ends). Its output comes back on ``stdout`` unless ``log`` (a remote file) takes it."""
        redirect = f" >>{shlex.quote(log)} 2>&1" if log else ""
        script = (f"{shlex.join(argv)} </dev/null{redirect} & p=$!; echo {HELD_READY} $p >&2; "
                  f"read _ignored; kill -{signal} $p 2>/dev/null; wait $p")
        popen = subprocess.Popen(self.remote(script), stdin=subprocess.PIPE, stdout=stdout, stderr=subprocess.PIPE,
                                 bufsize=0)  # unbuffered: select() sees every line
        held = Held(self.name, argv, popen)
        held.wait_started(timeout)
        return held


@dataclass
class Held:
    host: str
    argv: list[str]
    popen: subprocess.Popen
    remote_pid: int | None = None
    stderr: list[str] = field(default_factory=list)

    def wait_started(self, timeout: float) -> None:
        import selectors
        import time

        assert self.popen.stderr is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.popen.stderr, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.stop()
                    raise TestbedError(f"{self.host}: {shlex.join(self.argv)[:80]} did not start within "
                                       f"{timeout:g} s")
                line = self.popen.stderr.readline().decode(errors="replace")
                if not line:
                    self.stop()
                    raise TestbedError(f"{self.host}: could not start {shlex.join(self.argv)[:80]}: "
                                       + (" ".join(" ".join(self.stderr).split())[-300:] or "ssh failed"))
                if line.startswith(HELD_READY):
                    self.remote_pid = int(line.split()[1])
                    return
                self.stderr.append(line)

    def read_stderr_until(self, marker: str, timeout: float) -> bool:
        """Whether a line containing ``marker`` came on the command's stderr within ``timeout`` s."""
        import selectors
        import time

        assert self.popen.stderr is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.popen.stderr, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0 and sel.select(left):
                line = self.popen.stderr.readline().decode(errors="replace")
                if not line:
                    return False
                self.stderr.append(line)
                if marker in line:
                    return True
        return False

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """Close our end: the remote shell stops the command and waits for it; then ssh ends."""
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()  # our own ssh client; the remote side sees the connection end
            return self.popen.wait()
        finally:
            if self.popen.stderr is not None:
                self.popen.stderr.close()
