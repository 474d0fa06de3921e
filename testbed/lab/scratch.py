"""Scratch directories tagged with the process that owns them.

A scratch directory is named ``<prefix><pid>.<start time>-<random>``: the owner's pid and
kernel start time. Its owner removes it when done; if the owner was killed (SIGKILL, a
session cut short) the directory stays, and ``testbed lab clean`` removes it once no process
with that pid *and* start time exists. Nothing of another process, or of a process that is
still running, is touched; a recycled pid does not keep a directory alive for ever.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from testbed.lab.state import process_start_time, same_process

# Every kind of scratch directory a run makes, and where: ansible-runner's private data
# directory of one playbook run (testbed.provision.runner) and the pause monitor's files
# live on tmpfs (or the temporary directory).
ANSIBLE_PREFIX = "mip6-ansible-"
PAUSES_PREFIX = "mip6-pauses-"  # the pause monitor's watcher files (testbed.lab.pauses)
SCRATCH_PREFIXES = (ANSIBLE_PREFIX, PAUSES_PREFIX)
SCRATCH_PARENTS = (Path("/dev/shm"), Path(tempfile.gettempdir()))

_OWNER = re.compile(r"^(?P<pid>\d+)\.(?P<start>\d+)-")


def owned_scratch_dir(prefix: str, parent: Path | None = None) -> Path:
    """A new 0700 directory tagged with this process (``mkdtemp`` under ``parent``)."""
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}.{process_start_time(pid)}-", dir=parent))


def stale_scratch_dirs(prefix: str, parents: list[Path]) -> list[Path]:
    """Directories named by ``owned_scratch_dir(prefix)`` in ``parents`` whose owner is gone."""
    stale = []
    for parent in parents:
        try:
            entries = list(parent.iterdir())
        except OSError:
            continue
        for path in entries:
            if not path.name.startswith(prefix) or path.is_symlink() or not path.is_dir():
                continue
            match = _OWNER.match(path.name[len(prefix):])
            if match and not same_process(int(match["pid"]), int(match["start"])):
                stale.append(path)
    return sorted(stale)


def remove_scratch_dir(path: Path) -> bool:
    """Remove ``path``; a file a late writer adds meanwhile gets a second pass. True if gone."""
    for _ in range(3):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return True
    return False
