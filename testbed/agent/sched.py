"""A short scheduler time slice for the agent (EEVDF custom slice, Linux 6.12+).

An agent sleeps until a packet comes and then has a fraction of a millisecond of work. Under
EEVDF a task that wakes does not always preempt the one running: it waits until that one's
slice (3 ms by default) is used up, unless its own virtual deadline is earlier, which a short
requested slice gives it (``sched_setattr`` with ``sched_runtime`` as the slice of a
SCHED_OTHER task). The agent stays an ordinary task (no real-time priority, nothing it can
starve); it only asks to be run soon when it wakes, and may be preempted as soon once it has
run its slice. A kernel without custom slices refuses the call and nothing changes.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

SLICE_NS = 100_000  # the shortest slice the kernel takes (0.1 ms)
FIRST_KERNEL = (6, 12)  # custom slices for ordinary tasks came with Linux 6.12
_SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
_ATTR = struct.Struct("IIQiIQQQII")  # struct sched_attr (size 56)


def kernel_takes_short_slice(release: str | None = None) -> bool:
    """Whether a kernel (this one, or ``release`` as ``uname -r`` writes it) takes a custom slice."""
    major, minor = (release or os.uname().release).split(".")[:2]
    return (int(major), int("".join(c for c in minor if c.isdigit()) or 0)) >= FIRST_KERNEL


def request_short_slice(slice_ns: int = SLICE_NS) -> str | None:
    """Ask for ``slice_ns`` as this process's time slice; None when granted, else why not."""
    number = _SYS_SCHED_SETATTR.get(platform.machine())
    if number is None:
        return f"sched_setattr: no system call number known for {platform.machine()}"
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(_ATTR.pack(_ATTR.size, 0, 0, os.getpriority(os.PRIO_PROCESS, 0),
                                                  0, slice_ns, 0, 0, 0, 0), _ATTR.size)
    if libc.syscall(number, 0, attr, 0) != 0:
        return f"sched_setattr: {os.strerror(ctypes.get_errno())}"
    return None
