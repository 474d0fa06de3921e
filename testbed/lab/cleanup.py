"""Removing what a run created: its tagged root-namespace interfaces, its processes, its
files. Used by ``Lab`` on exit and by ``testbed lab clean`` for runs that crashed.

``testbed lab clean`` only acts on a run whose state file names an owner process that is
gone (pid and start time), and only on what is tagged with that run's id or recorded in its
state file: processes (matched by pid *and* start time), processes inside the namespaces
of its still-running node shells, the shells, bridges and other root-namespace interfaces
named ``m6<run id>...``, the run's volatile directory and, if the run directory was
temporary, that directory; and the scratch directories (``testbed.lab.scratch``) whose owner
process (pid and start time) is gone, such as ansible-runner's directory of a key push that
was killed. With ``orphans=True`` (``--orphans``) it also removes tagged
interfaces of run ids that have no state file at all (a run whose state file was deleted);
that is off by default because a lab using another state directory
(``$MIP6_TESTBED_STATE_DIR``) would look the same. Nothing else is touched.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute

from testbed.lab.naming import run_id_of_ifname
from testbed.lab.processes import STOP_TIMEOUT_S, stop_record, wait_gone
from testbed.lab.scratch import SCRATCH_PARENTS, SCRATCH_PREFIXES, remove_scratch_dir, stale_scratch_dirs
from testbed.lab.state import ProcessRecord, RunState, list_states, process_start_time

log = logging.getLogger("testbed.lab")


def tagged_root_links(run_ids: set[str] | None = None) -> list[tuple[int, str]]:
    """(index, name) of root-namespace interfaces tagged with one of ``run_ids`` (any if None)."""
    with IPRoute() as ipr:
        result = []
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            rid = run_id_of_ifname(name or "")
            if rid is not None and (run_ids is None or rid in run_ids):
                result.append((link["index"], name))
        return result


def delete_root_links(links: list[tuple[int, str]]) -> list[str]:
    """Delete interfaces (bridges first); returns the names that could not be deleted."""
    failed = []
    with IPRoute() as ipr:
        for index, name in sorted(links, key=lambda item: "-eth" in item[1]):
            try:
                ipr.link("del", index=index)
            except Exception as exc:  # noqa: BLE001 - gone already (veth peer) or busy
                if ipr.link_lookup(ifname=name):
                    failed.append(f"{name} ({exc})")
    return failed


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def kill_and_wait(pids: list[int], timeout: float = STOP_TIMEOUT_S) -> list[int]:
    """SIGKILL ``pids`` and wait until each is gone (SIGKILL is not instant on a loaded
    machine); returns those still there at the deadline."""
    killed = []
    for pid in pids:
        record = ProcessRecord.of(pid, "", "in-netns", "")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(record)
    deadline = time.monotonic() + timeout
    return [r.pid for r in killed if not wait_gone(r, deadline)]


def processes_in_netns(inodes: set[int], exclude: set[int] = frozenset(), started_before: int | None = None
                       ) -> list[int]:
    """Pids of processes whose network namespace is one of ``inodes`` (and, with
    ``started_before``, that started before that many clock ticks since boot).

    Once a namespace is gone, the kernel may give its inode number to a new one (another
    run's): only while something holds a namespace is its inode its own. A caller whose
    namespaces may be gone passes ``started_before`` (when it began to remove them): a process
    in a new namespace with a recycled inode started after that.

    The root namespace (ours, and init's) is never one of them, whatever ``inodes`` says:
    this feeds kill decisions, and a node's namespace is never the root one.
    """
    inodes = set(inodes) - {netns_inode(os.getpid()), netns_inode(1)}
    if not inodes:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        inode = netns_inode(int(entry))
        if inode is not None and inode in inodes:
            if started_before is not None:
                start = process_start_time(int(entry))
                if start is None or start >= started_before:
                    continue
            pids.append(int(entry))
    return pids


def remove_tree(path: str | Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class CleanReport:
    runs: list[str] = field(default_factory=list)  # run ids cleaned
    in_use: list[str] = field(default_factory=list)  # run ids whose owner still runs
    processes: list[str] = field(default_factory=list)
    interfaces: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    unclaimed: list[str] = field(default_factory=list)  # tagged, no state file, left alone
    failures: list[str] = field(default_factory=list)


def clean_run(state: RunState, report: CleanReport, dry_run: bool = False) -> None:
    """Remove what the (dead) run of ``state`` left behind."""
    for record in reversed(state.processes):
        if record.alive():
            report.processes.append(f"{record.argv0} ({record.tag} on {record.node}, "
                                    f"pid {record.pid})")
            if not dry_run and not stop_record(record):
                report.failures.append(f"pid {record.pid} would not exit")
    # Unrecorded processes inside the run's node namespaces; the inode of a namespace is
    # only trusted while its shell (the same pid and start time) still holds it.
    root_ns = netns_inode(os.getpid())
    shells = [s for s in state.shells if s.alive()]
    inodes = {i for i in (netns_inode(s.pid) for s in shells if s.alive()) if i and i != root_ns}
    pids = processes_in_netns(inodes, exclude={s.pid for s in shells})
    report.processes += [f"pid {pid} (in a node namespace)" for pid in pids]
    if not dry_run:
        report.failures += [f"pid {pid} would not exit" for pid in kill_and_wait(pids)]
    for record in shells:
        report.processes.append(f"node shell {record.node} (pid {record.pid})")
        if not dry_run and not stop_record(record, first_signal=signal.SIGHUP):
            report.failures.append(f"pid {record.pid} would not exit")
    links = tagged_root_links({state.run_id})
    report.interfaces += [name for _, name in links]
    if not dry_run:
        report.failures += delete_root_links(links)
    paths = [state.volatile_dir, *state.paths] + ([state.run_dir] if state.run_dir_is_temporary else [])
    for path in paths:
        if os.path.exists(path):
            report.paths.append(path)
            if not dry_run:
                remove_tree(path)
    if not dry_run and not report.failures:
        state.remove()
    report.runs.append(state.run_id)


def clean_stale_runs(dry_run: bool = False, orphans: bool = False) -> CleanReport:
    """Clean every run whose owner process is gone (see the module docstring)."""
    report = CleanReport()
    known: set[str] = set()
    for path in list_states():
        try:
            state = RunState.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            report.failures.append(f"{path}: unreadable state file ({exc}); left alone")
            continue
        known.add(state.run_id)
        if state.owner.alive():
            report.in_use.append(state.run_id)
            continue
        clean_run(state, report, dry_run)
    for prefix in SCRATCH_PREFIXES:
        for path in stale_scratch_dirs(prefix, list(SCRATCH_PARENTS)):
            report.paths.append(str(path))
            if not dry_run and not remove_scratch_dir(path):
                report.failures.append(f"{path}: could not be removed")
    stray = [link for link in tagged_root_links() if run_id_of_ifname(link[1]) not in known]
    if orphans:
        report.interfaces += [name for _, name in stray]
        if stray and not dry_run:
            report.failures += delete_root_links(stray)
    else:
        report.unclaimed += [name for _, name in stray]
    return report


def ignore_sigint():
    """Ignore SIGINT (in the main thread) while cleaning up; returns a restore function."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    return lambda: signal.signal(signal.SIGINT, previous)
