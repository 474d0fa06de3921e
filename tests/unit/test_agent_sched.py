"""The agent's short time slice: granted on this kernel, and read back as asked."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from testbed.agent.sched import SLICE_NS, kernel_takes_short_slice



@pytest.mark.skipif(platform.machine() != "x86_64", reason="sched_getattr number for x86_64 only here")
@pytest.mark.skipif(not kernel_takes_short_slice(), reason="custom slices for ordinary tasks came with Linux 6.12")
def test_a_process_that_asks_gets_the_short_slice_and_keeps_its_nice_value():
    code = (
        "import ctypes, os, struct, sys\n"
        "os.nice(3)\n"
        "from testbed.agent.sched import request_short_slice, _ATTR\n"
        "assert request_short_slice() is None\n"
        "out = ctypes.create_string_buffer(_ATTR.size)\n"
        "assert ctypes.CDLL(None, use_errno=True).syscall(315, 0, out, _ATTR.size, 0) == 0\n"
        "fields = _ATTR.unpack(out.raw)\n"
        "print(fields[1], fields[3], fields[5])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    policy, nice, runtime = map(int, done.stdout.split())
    assert (policy, nice, runtime) == (0, 3, SLICE_NS)  # SCHED_OTHER, nice untouched, the slice asked for


def test_kernel_releases_from_6_12_take_a_short_slice():
    assert kernel_takes_short_slice("6.12.0") and kernel_takes_short_slice("6.18.44-fc-v1045")
    assert not kernel_takes_short_slice("6.11.9-1") and not kernel_takes_short_slice("5.15.0-91-generic")
