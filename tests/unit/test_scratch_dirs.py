"""Scratch directories tagged with their owner: only those of a process that is gone are stale."""

import os
import subprocess
import sys

from testbed.lab.scratch import owned_scratch_dir, remove_scratch_dir, stale_scratch_dirs
from testbed.lab.state import process_start_time

PREFIX = "mip6-test-"


def test_own_directory_is_not_stale_and_a_dead_owners_is(tmp_path):
    mine = owned_scratch_dir(PREFIX, tmp_path)
    assert mine.name.startswith(f"{PREFIX}{os.getpid()}.{process_start_time(os.getpid())}-")
    assert oct(mine.stat().st_mode & 0o777) == "0o700"
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        start = process_start_time(child.pid)
        alive = tmp_path / f"{PREFIX}{child.pid}.{start}-abc"
        recycled = tmp_path / f"{PREFIX}{child.pid}.{start + 1}-abc"  # same pid, another process
        for path in (alive, recycled):
            path.mkdir()
        assert stale_scratch_dirs(PREFIX, [tmp_path]) == [recycled]
    finally:
        child.communicate(b"")
    assert stale_scratch_dirs(PREFIX, [tmp_path]) == sorted([alive, recycled])
    assert mine not in stale_scratch_dirs(PREFIX, [tmp_path])


def test_names_not_ours_are_never_stale(tmp_path):
    for name in (f"{PREFIX}abc", f"{PREFIX}1-x", "other-1.2-x", f"{PREFIX}999999999.1"):
        (tmp_path / name).mkdir()
    (tmp_path / f"{PREFIX}999999999.1-file").write_text("")  # a file, not a directory
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / f"{PREFIX}999999999.1-link").symlink_to(target)
    assert stale_scratch_dirs(PREFIX, [tmp_path, tmp_path / "missing"]) == []


def test_remove_scratch_dir_removes_a_tree(tmp_path):
    path = owned_scratch_dir(PREFIX, tmp_path)
    (path / "a" / "b").mkdir(parents=True)
    (path / "a" / "b" / "f").write_text("x")
    assert remove_scratch_dir(path) and not path.exists()
