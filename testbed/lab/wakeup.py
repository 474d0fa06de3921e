"""What waking up costs a Python process on this machine, measured beside an agent benchmark.

An agent spends most of a BU's turnaround before and around its own code: the kernel stamps
the packet, the process (asleep in epoll since the last packet, hundreds of ms ago) is woken
and scheduled, then runs its code with cold caches. ``WakeupProbe`` measures exactly that,
without any agent: a child process (``python -m testbed.lab.wakeup``, ordinary priority, as
the agents) sleeps in ``selectors`` on a UDP socket on the loopback; the parent sends it one
datagram every ``interval_s``; for each the child records

- ``wake``: the kernel's receive stamp (SO_TIMESTAMPNS) to the process running again;
- ``cold``: a fixed piece of Python run right then: a precomputed BU through the CN engine
  (``testbed.mip6.cn``, ``receive``), the work an agent does per BU;
- ``warm``: the same call repeated at once (caches warm), the benchmark's figure.

So the figures say how much of an agent's turnaround is this machine's wake-up and cold
caches, not the agent: the part no change to the agent's code removes. Started and stopped
by the caller (a context manager); the child is ours and is ended by its pid.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("qq")


class WakeupProbe:
    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self._proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples: list[dict] = []
        self.sent = 0  # datagrams sent so far

    def __enter__(self) -> WakeupProbe:
        self._proc = subprocess.Popen([sys.executable, "-m", "testbed.lab.wakeup"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        port = int(self._proc.stdout.readline())  # the child is ready
        self._thread = threading.Thread(target=self._send, args=(port,), daemon=True)
        self._thread.start()
        return self

    def _send(self, port: int) -> None:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            while not self._stop.wait(self.interval_s):
                s.sendto(b"x", ("::1", port))
                self.sent += 1

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        out, _ = self._proc.communicate("stop\n", timeout=30)
        self.samples = json.loads(out.strip().splitlines()[-1]) if out.strip() else []

    def summary(self) -> dict:
        """Medians and p99s (ms) of wake, cold and warm over the samples."""
        out: dict = {"samples": len(self.samples), "interval_s": self.interval_s}
        for key in ("wake", "cold", "warm"):
            values = sorted(s[key] for s in self.samples)
            if values:
                out[f"{key}_median_ms"] = round(statistics.median(values) / 1e6, 3)
                out[f"{key}_p99_ms"] = round(values[min(len(values) - 1, round(0.99 * (len(values) - 1)))] / 1e6, 3)
        return out


def describe(summary: dict) -> str:
    if not summary.get("samples"):
        return "bare Python wake-up: no samples"
    return (f"bare Python process on this machine ({summary['samples']} wake-ups, one every "
            f"{summary['interval_s'] * 1e3:.0f} ms): kernel stamp -> running median {summary['wake_median_ms']:.3f} ms "
            f"p99 {summary['wake_p99_ms']:.3f} ms; one CN engine call on a BU right after waking (cold) median "
            f"{summary['cold_median_ms']:.3f} ms, repeated at once (warm) {summary['warm_median_ms']:.3f} ms")


def _child() -> None:
    import ipaddress

    from testbed.mip6.cn import CorrespondentNode
    from testbed.mip6.constants import IPPROTO_MH
    from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
    from testbed.mip6.keys import PreconfiguredData
    from testbed.mip6.messages import BindingUpdate
    from testbed.mip6.packet import build_packet
    from testbed.mip6.sealing import seal_bad

    home, coa = ipaddress.IPv6Address("2001:db8:1::100"), ipaddress.IPv6Address("2001:db8:11::100").packed
    cn = ipaddress.IPv6Address("2001:db8:3::1")
    data = PreconfiguredData(home, cn, bytes(range(1, 21)), bytes(range(8)), bytes(range(8, 16)))
    engine = CorrespondentNode(cn.packed, peers=[data])
    kbm = binding_management_key(home_keygen_token(data.kcn, home.packed, data.home_nonce),
                                 careof_keygen_token(data.kcn, coa, data.careof_nonce))
    seq = [0]

    def bu() -> bytes:
        seq[0] = (seq[0] + 1) & 0xFFFF
        return build_packet(coa, cn.packed, IPPROTO_MH, seal_bad(BindingUpdate(seq[0], 105, ack=True), kbm, coa, cn.packed),
                            home_address=home.packed)

    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind(("::1", 0))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, "udp")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    print(sock.getsockname()[1], flush=True)
    samples = []
    clock = time.perf_counter_ns
    while True:
        keys = sel.select()
        woke = time.monotonic_ns()
        if any(k.data == "stdin" for k, _ in keys):
            break
        offset = time.time_ns() - time.monotonic_ns()
        _, anc, _, _ = sock.recvmsg(64, 64)
        stamp = next((_TIMESPEC.unpack_from(b) for lvl, kind, b in anc if kind == SO_TIMESTAMPNS), None)
        first, second = bu(), bu()
        t0 = clock()
        engine.receive(first, woke)
        t1 = clock()
        engine.receive(second, woke)
        t2 = clock()
        if stamp is not None:
            samples.append({"wake": woke - (stamp[0] * 1_000_000_000 + stamp[1] - offset),
                            "cold": t1 - t0, "warm": t2 - t1})
    print(json.dumps(samples), flush=True)
    os._exit(0)


if __name__ == "__main__":
    _child()
