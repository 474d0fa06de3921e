"""The netem link-delay backend: probe whether the kernel has it, and apply it to an interface.

``netem_available()`` decides by trying: in a fresh, private network namespace (``unshare
--net``, plus a user namespace when not root; it vanishes with the probe process, so nothing
is left to clean up) it adds a netem qdisc to that namespace's loopback. The answer is
cached for the process; ``netem_probe_detail()`` gives what ``tc`` said.

Where netem is missing (``sch_netem`` not built, as on our Debian CI kernel) the lab uses the
user-space delay line of :mod:`testbed.lab.delayline` instead; ``NETEM_MISSING_MESSAGE`` says so.

A link with one-way delay D gets ``netem delay D`` on the egress of BOTH of its end interfaces.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

from testbed.errors import ConfigError, TestbedError

NETEM_MISSING_MESSAGE = (
    "netem is not usable here (`tc qdisc add ... netem delay 1ms` failed in a throwaway "
    "namespace; a kernel without sch_netem says \"Specified qdisc kind is unknown\"); "
    "link delay uses the user-space delay line instead (testbed.lab.delayline: a middle "
    "node copying frames between two veths after the delay)"
)

PROBE_TIMEOUT_S = 10
# netem's queue must hold every frame in flight: room for 100k frames/s over the delay.
MIN_LIMIT = 1000
FRAMES_PER_SECOND = 100_000
MAX_DELAY_MS = 60_000.0

_probe_detail = ""


@functools.cache
def netem_available() -> bool:
    """Whether ``tc qdisc ... netem`` works on this kernel (tried once, then cached)."""
    global _probe_detail
    if shutil.which("tc") is None or shutil.which("unshare") is None:
        _probe_detail = "tc or unshare is not installed"
        return False
    # Without root, a user namespace makes us root of the throwaway network namespace.
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user",
                                                              "--map-root-user", "--net"]
    try:
        done = subprocess.run(
            [*unshare, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
            check=False, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        _probe_detail = f"probe could not run: {exc}"
        return False
    _probe_detail = done.stderr.strip()
    return done.returncode == 0


def netem_probe_detail() -> str:
    """What the probe's ``tc`` said (empty when netem worked or before the first probe)."""
    return _probe_detail


def netem_argv(ifname: str, delay_ms: float) -> list[str]:
    """``tc`` command that sets (or replaces) a netem root qdisc delaying egress of ``ifname``."""
    if not isinstance(ifname, str) or not ifname or len(ifname) > 15 or any(
            c.isspace() or c == "/" for c in ifname):
        raise ConfigError(f"netem: {ifname!r} is not a valid interface name")
    try:
        ms = float(delay_ms)
    except (TypeError, ValueError):
        raise ConfigError(f"netem: delay {delay_ms!r} is not a number of milliseconds") from None
    if not math.isfinite(ms) or ms < 0 or ms > MAX_DELAY_MS:
        raise ConfigError(f"netem: delay {delay_ms!r} ms must be between 0 and {MAX_DELAY_MS:g}")
    limit = max(MIN_LIMIT, math.ceil(ms / 1000 * FRAMES_PER_SECOND))
    return ["tc", "qdisc", "replace", "dev", ifname, "root", "netem",
            "delay", f"{round(ms * 1000)}us", "limit", str(limit)]


def _run_here(argv: Sequence[str]) -> int:
    return subprocess.run(list(argv), check=False, timeout=PROBE_TIMEOUT_S).returncode


def apply_netem(ifname: str, delay_ms: float,
                run_in: Callable[[list[str]], int] = _run_here) -> None:
    """Delay egress of ``ifname`` by ``delay_ms`` with netem.

    ``run_in(argv)`` runs a command where the interface lives (e.g. inside a Mininet node)
    and returns its exit status; the default runs it in this process's namespace.
    Raises TestbedError naming the interface when ``tc`` fails.
    """
    argv = netem_argv(ifname, delay_ms)
    status = run_in(argv)
    if status != 0:
        hint = "" if netem_available() else f" ({NETEM_MISSING_MESSAGE})"
        raise TestbedError(f"netem: `{' '.join(argv)}` failed with status {status}{hint}")
