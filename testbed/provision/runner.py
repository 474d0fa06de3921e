"""Running one playbook through ansible-runner's Python interface, without leaking a secret.

ansible-runner writes extra variables to ``env/extravars`` (and reuses them), the whole
environment to ``artifacts/<id>/command``, every event to ``job_events/``; Ansible itself
writes ``~/.ansible`` and temporary files. So for each run:

- everything lives in a fresh 0700 directory on tmpfs (``/dev/shm``): the runner's private
  data directory, ``ANSIBLE_HOME``, Ansible's local temporary files (a ``copy`` of secret
  content passes through them);
- the secrets go into a 0600 YAML file there; the playbook gets only its path
  (``mip6_secrets_file``) and reads it with ``include_vars`` under ``no_log``; nothing secret
  goes into extra variables, the environment or a command line;
- afterwards the whole directory is removed; if ``record`` is given, the run's events, output
  and status (never ``command``, the environment dump) are kept there first.

Progress: with ``progress=True`` (default: when stdout is a terminal) one line per task.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed.errors import TestbedError
from testbed.lab.scratch import ANSIBLE_PREFIX, owned_scratch_dir, remove_scratch_dir

PLAYBOOK_DIR = Path(__file__).resolve().parents[2] / "playbooks"
TMPFS = Path("/dev/shm")
RUN_TIMEOUT_S = 600
KEPT_ARTIFACTS = ("job_events", "stdout", "status", "rc")


class ProvisionError(TestbedError):
    """A playbook run failed (unreachable node, failed task); one line says where."""

    exit_code = 1


@dataclass
class PlayResult:
    playbook: str
    status: str
    rc: int
    seconds: float
    stats: dict[str, dict[str, int]] = field(default_factory=dict)  # host -> ok/changed/failures/...
    failures: list[str] = field(default_factory=list)
    changed_tasks: list[str] = field(default_factory=list)  # "host: task"

    @property
    def ok(self) -> bool:
        return self.status == "successful" and self.rc == 0 and not self.failures

    @property
    def changed(self) -> int:
        return sum(s.get("changed", 0) for s in self.stats.values())

    def summary(self) -> str:
        hosts = len(self.stats)
        if not self.ok:
            return f"{self.playbook}: FAILED after {self.seconds:.1f} s: {self.failures[0] if self.failures else self.status}"
        if self.changed == 0:
            return f"{self.playbook}: {hosts} hosts, no change ({self.seconds:.1f} s)"
        return f"{self.playbook}: {hosts} hosts, {_count(self.changed, 'change')} ({self.seconds:.1f} s)"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def playbook_path(name: str) -> Path:
    path = PLAYBOOK_DIR / name
    if not path.is_file():
        raise TestbedError(f"playbook {path} is missing (a broken checkout?)")
    return path


def ansible_env(work: Path) -> dict[str, str]:
    """The environment additions of a run: the venv's programs first, Ansible's state in ``work``."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        "ANSIBLE_HOME": str(work / "home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "secret" / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        # No ssh master left running after the run (ControlPersist would keep one).
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_GATHERING": "explicit",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_FORKS": "20",
        "ANSIBLE_KEEP_REMOTE_FILES": "False",
    }


class _Progress:
    def __init__(self, playbook: str, enabled: bool) -> None:
        self.playbook = playbook
        self.enabled = enabled
        self.console = None
        if enabled:
            from rich.console import Console

            self.console = Console(stderr=True)
        self.result_events: list[dict] = []
        self.t0 = time.monotonic()

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable", "playbook_on_stats"):
            self.result_events.append(event)
        if self.console is not None:
            if kind == "playbook_on_task_start":
                self.console.print(f"[dim]{time.monotonic() - self.t0:5.1f} s {self.playbook}[/dim] "
                                   f"{data.get('task', '')}", highlight=False)
            elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                self.console.print(f"  [red]{data.get('host')}: {_message(data)}[/red]", highlight=False)
        return True


def _message(data: dict) -> str:
    res = data.get("res") or {}
    msg = res.get("msg") or res.get("stderr") or res.get("censored") or "failed"
    return " ".join(str(msg).split())[:300]


def run_playbook(name: str, inventory: Path | dict, *, extravars: dict[str, Any] | None = None,
                 secrets: dict[str, str] | None = None, check: bool = False, limit: str | None = None,
                 record: Path | None = None, progress: bool | None = None) -> PlayResult:
    """Run ``playbooks/<name>``; ``secrets`` (id -> text) reach it only as a 0600 tmpfs file."""
    import ansible_runner

    playbook = playbook_path(name)
    if progress is None:
        progress = sys.stderr.isatty()
    root = TMPFS if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) else None
    work = owned_scratch_dir(ANSIBLE_PREFIX, root)  # 0700; `testbed lab clean` removes it if we are killed
    t0 = time.monotonic()
    try:
        secret_dir = work / "secret"
        secret_dir.mkdir(mode=0o700)
        (secret_dir / "tmp").mkdir(mode=0o700)
        (work / "runner").mkdir(mode=0o700)
        extravars = dict(extravars or {})
        if secrets is not None:
            path = secret_dir / "keys.yml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as fh:
                yaml.safe_dump({"mip6_secrets": secrets}, fh, default_flow_style=False, width=1 << 16)
            extravars["mip6_secrets_file"] = str(path)
        watcher = _Progress(name, progress)
        cmdline = " ".join(x for x in ("--check" if check else "", f"--limit {limit}" if limit else "") if x)
        # ansible_runner.run installs SIGINT/SIGTERM handlers of its own (to cancel the play)
        # and leaves them in place: Ctrl-C would no longer stop the caller. Ours are put back,
        # and a play cancelled that way is passed on as the Ctrl-C it was.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            runner = ansible_runner.run(
                private_data_dir=str(work / "runner"),
                playbook=str(playbook),
                inventory=inventory if isinstance(inventory, dict) else str(inventory),
                extravars=extravars,
                envvars=ansible_env(work),
                cmdline=cmdline or None,
                ident="run",
                quiet=True,
                event_handler=watcher,
                settings={"job_timeout": RUN_TIMEOUT_S, "suppress_ansible_output": True},
            )
        finally:
            for sig, handler in handlers.items():
                if handler is not None:
                    signal.signal(sig, handler)
        if runner.status == "canceled":
            raise KeyboardInterrupt
        seconds = time.monotonic() - t0
        result = PlayResult(name, runner.status, runner.rc if runner.rc is not None else -1, seconds)
        _collect(result, watcher.result_events)
        if not result.ok and not result.failures:  # Ansible stopped before any task (its own error)
            result.failures.append(_last_error(Path(runner.config.artifact_dir) / "stdout"))
        if record is not None:
            _keep(Path(runner.config.artifact_dir), record)
        return result
    finally:
        remove_scratch_dir(work)


def _collect(result: PlayResult, events: list[dict]) -> None:
    for event in events:
        kind = event["event"]
        data = event.get("event_data", {})
        if kind == "playbook_on_stats":
            for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
                for host, count in (data.get(key) or {}).items():
                    result.stats.setdefault(host, {})[key] = count
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            result.failures.append(f"{data.get('host')}: {data.get('task')}: {_message(data)}")
        elif kind == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            result.changed_tasks.append(f"{data.get('host')}: {data.get('task')}")


def _last_error(stdout: Path) -> str:
    try:
        lines = [line.strip() for line in stdout.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "ansible-playbook failed before running any task"
    errors = [line for line in lines if line.startswith(("ERROR", "[ERROR]", "fatal"))]
    return " ".join((errors or lines or ["ansible-playbook failed before running any task"])[0].split())[:300]


def _keep(artifacts: Path, record: Path) -> None:
    """Copy the run's events, output and status (no environment dump) into ``record``."""
    record.mkdir(parents=True, exist_ok=True)
    for item in KEPT_ARTIFACTS:
        src = artifacts / item
        if src.is_dir():
            shutil.copytree(src, record / item, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, record / item)


def syntax_check(name: str) -> tuple[int, str]:
    """``ansible-playbook --syntax-check`` of a playbook (rc, output)."""
    import subprocess

    playbook = playbook_path(name)
    with tempfile.TemporaryDirectory(prefix="mip6-ansible-") as work:
        env = {**os.environ, **ansible_env(Path(work))}
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "--syntax-check",
                               "-i", "localhost,", str(playbook)], capture_output=True, text=True, env=env,
                              timeout=120)
    return proc.returncode, (proc.stdout + proc.stderr).strip()
