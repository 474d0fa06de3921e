"""The user-space delay line between real namespaces, and the netem probe.

Each test builds its own three namespaces (``dlt<id>-a``, ``-w``, ``-b``) joined by veth pairs
X(a)--A(w) and B(w)--Y(b), runs the delay line in ``w`` and checks what ``a`` and ``b`` see.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from testbed import errors
from testbed.errors import ConfigError
from testbed.lab import netem
from testbed.lab.delayline import delayline_argv
from testbed.lab.selftest import BUSY_PRESSURE, MIN_CLEAN_SAMPLES, clean_samples, mdev
from testbed.lab.selftest import parse_ping as parse_stamped_ping
from testbed.lab.pauses import PauseMonitor, read_pressure

ADDR_A = "fd00:d1a7::1"
ADDR_B = "fd00:d1a7::2"
NS_PREFIX = "dlt"


def _run(argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], check=False, capture_output=True, text=True).stdout
    return {entry["name"] for entry in json.loads(out or "[]")}


def wait_for(condition, deadline_s: float, what: str, interval: float = 0.01):
    """Poll ``condition()`` until it returns a true value or the deadline passes."""
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        time.sleep(interval)


class Triple:
    """Namespaces a -- w -- b with a delay line in w; everything tagged with ``tag``."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.ns_a, self.ns_w, self.ns_b = (f"{tag}-a", f"{tag}-w", f"{tag}-b")
        self.if_x, self.if_a, self.if_b, self.if_y = (f"{tag}x", f"{tag}wa", f"{tag}wb", f"{tag}y")
        self.line: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed in destroy()

    def build(self, end_offloads_off: bool = True) -> None:
        for ns in (self.ns_a, self.ns_w, self.ns_b):
            _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", self.if_x, "netns", self.ns_a, "type", "veth",
              "peer", "name", self.if_a, "netns", self.ns_w])
        _run(["ip", "link", "add", self.if_b, "netns", self.ns_w, "type", "veth",
              "peer", "name", self.if_y, "netns", self.ns_b])
        for ns, ifname, addr in ((self.ns_a, self.if_x, ADDR_A), (self.ns_b, self.if_y, ADDR_B)):
            _run(["ip", "-n", ns, "addr", "add", f"{addr}/64", "dev", ifname, "nodad"])
            if end_offloads_off:
                _run(["ip", "netns", "exec", ns, "ethtool", "-K", ifname,
                      "tx", "off", "tso", "off", "gso", "off"])
        for ns, ifs in ((self.ns_a, [self.if_x]), (self.ns_w, [self.if_a, self.if_b]),
                        (self.ns_b, [self.if_y])):
            for ifname in ifs + ["lo"]:
                _run(["ip", "-n", ns, "link", "set", ifname, "up"])

    def start_line(self, delay_ms: float, delay_b_ms: float | None = None, stats: bool = False,
                   ready_deadline_s: float = 10.0, launcher: list[str] | None = None
                   ) -> subprocess.Popen:
        argv = delayline_argv(self.if_a, self.if_b, delay_ms, delay_b_ms, tag=self.tag, stats=stats)
        if launcher:  # benchmarks compare variants: replace `python -m testbed.lab.delayline`
            argv = [*launcher, *argv[3:]]
        self.line = subprocess.Popen(["ip", "netns", "exec", self.ns_w, *argv],
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        line = read_line(self.line, ready_deadline_s)
        assert line == "ready", f"delay line said {line!r}, stderr: {self.stderr()}"
        return self.line

    def stderr(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()

    def ping(self, count: int, interval: float, src_ns: str | None = None,
             dst: str = ADDR_B, timeout: float = 30, extra: tuple[str, ...] = ()
             ) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", src_ns or self.ns_a, "ping", "-6", "-n", "-c", str(count),
             "-i", str(interval), "-W", "2", *extra, dst],
            check=False, capture_output=True, text=True, timeout=timeout)

    def warm_up(self, deadline_s: float = 10.0) -> None:
        """Resolve neighbours both ways so measured pings do not include ND."""
        wait_for(lambda: self.ping(1, 0.2).returncode == 0, deadline_s, "a first ping a->b")
        wait_for(lambda: self.ping(1, 0.2, src_ns=self.ns_b, dst=ADDR_A).returncode == 0,
                 deadline_s, "a first ping b->a")

    def run_in(self, ns: str, code: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def destroy(self) -> None:
        if self.line is not None and self.line.poll() is None:
            self.line.kill()
            self.line.wait(5)
        if self.line is not None and self.line.stdout:
            self.line.stdout.close()
        self._stderr.close()
        for ns in (self.ns_a, self.ns_w, self.ns_b):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


_pending: dict[int, bytes] = {}  # stdout bytes read past the last line, per pid


def read_line(proc: subprocess.Popen, deadline_s: float) -> str:
    """The next stdout line of ``proc``, or '' when it exits or the deadline passes.

    Reads the pipe's file descriptor directly (no buffered reader that select() cannot see).
    """
    fd = proc.stdout.fileno()
    buf = _pending.pop(proc.pid, b"")
    end = time.monotonic() + deadline_s
    while b"\n" not in buf:
        remaining = end - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            _pending[proc.pid] = buf
            return ""
        chunk = os.read(fd, 65536)
        if not chunk:
            return buf.decode().strip()
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    if rest:
        _pending[proc.pid] = rest
    return line.decode().strip()


def finish(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Wait for ``proc`` to exit: (the rest of its stdout, its stderr)."""
    out, err = proc.communicate(timeout=timeout)
    return _pending.pop(proc.pid, b"").decode() + (out or ""), err or ""


@pytest.fixture
def triple():
    tag = NS_PREFIX + uuid.uuid4().hex[:8]
    t = Triple(tag)
    try:
        t.build()
        yield t
    finally:
        t.destroy()
        left = {ns for ns in _netns_names() if ns.startswith(tag)}
        assert not left, f"namespaces left behind: {sorted(left)}"


PING_SUMMARY = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")
PING_TIME = re.compile(r"time=([\d.]+) ms")


def parse_ping(output: str) -> dict:
    summary = PING_SUMMARY.search(output)
    assert summary, f"no rtt summary in ping output:\n{output}"
    rtts = [float(m) for m in PING_TIME.findall(output)]
    mn, avg, mx, mdev = (float(v) for v in summary.groups())
    return {"min": mn, "avg": avg, "max": mx, "mdev": mdev,
            "median": statistics.median(rtts), "count": len(rtts), "rtts": rtts}


def rtt_goal_holds(figures: dict, delay_ms: float) -> bool:
    """Issue 3: median within 0.3 ms + 2 % of 2 x delay, mdev at most 0.3 ms."""
    rtt = 2 * delay_ms
    return abs(figures["median"] - rtt) <= 0.3 + 0.02 * rtt and figures["mdev"] <= 0.3


def ping_interval(delay_ms: float) -> float:
    """20 ms between pings, faster for short delays (fewer chances to meet a VM stall)."""
    return 0.005 if delay_ms <= 2 else 0.01 if delay_ms <= 20 else 0.02


def measure_rtt(t: Triple, delay_ms: float, count: int = 50, interval: float | None = None) -> dict:
    done = t.ping(count, interval or ping_interval(delay_ms), extra=("-D",))
    assert done.returncode == 0, f"ping failed: {done.stdout}{done.stderr}"
    figures = parse_ping(done.stdout)
    assert figures["count"] == count, f"{count - figures['count']} pings lost:\n{done.stdout}"
    figures["output"] = done.stdout
    return figures


def judged_rtt(t: Triple, delay_ms: float, budget_s: float = 12.0, max_runs: int = 6
               ) -> tuple[dict | None, list[dict]]:
    """Runs of 50 pings until one can judge the goal: (the figures judged or None, all runs).

    A run that meets the goal, or misses it while no host pause was seen (PauseMonitor), is
    judged whole. Otherwise the round trips no pause overlapped are pooled
    across runs, as the lab's delay self-test does, and judged once MIN_CLEAN_SAMPLES are in
    (``clean`` is then True). None when the budget ran out first.
    """
    runs, clean = [], []
    end = time.monotonic() + budget_s
    with PauseMonitor() as monitor:
        while len(runs) < max_runs and (not runs or time.monotonic() < end):
            t0 = time.time_ns()
            figures = measure_rtt(t, delay_ms)
            figures["stalls_ms"] = monitor.between(t0, time.time_ns())
            output = figures.pop("output")
            runs.append(figures)
            if rtt_goal_holds(figures, delay_ms) or not figures["stalls_ms"]:
                return figures, runs
            clean += clean_samples(parse_stamped_ping(output), monitor)
            if len(clean) >= MIN_CLEAN_SAMPLES:
                return {"median": statistics.median(clean), "mdev": mdev(clean), "count": len(clean),
                        "clean": True}, runs
    return None, runs


# ----------------------------------------------------------------------------- acceptance

@pytest.mark.lab
@pytest.mark.parametrize("delay_ms", [1, 10, 50])
def test_rtt_matches_configured_delay(triple, delay_ms):
    triple.start_line(delay_ms)
    triple.warm_up()
    pressure0, t0 = read_pressure(), time.monotonic_ns()
    figures, runs = judged_rtt(triple, delay_ms)
    pressure1, t1 = read_pressure(), time.monotonic_ns()
    # the share of the time a task waited for a CPU (PSI "some"), as the lab's delay self-test reads it
    pressure = (pressure1["some"] - pressure0["some"]) * 1000 / (t1 - t0) if pressure0 and pressure1 else 0.0
    rtt, tolerance = 2 * delay_ms, 0.3 + 0.02 * 2 * delay_ms
    # Stalls only ever lengthen round trips, so these hold in every run, disturbed or not:
    # no frame leaves early, and the fastest round trip is within the goal's tolerance.
    assert all(r["min"] >= rtt for r in runs), f"a frame left the line early: {runs}"
    assert min(r["min"] for r in runs) <= rtt + tolerance, runs
    if figures is None:
        pytest.skip(f"the host paused the machine during all {len(runs)} runs of 50 pings, too few round "
                    f"trips were undisturbed (pauses, ms: " + "; ".join(str(r["stalls_ms"][:4]) for r in runs)
                    + f"; load {os.getloadavg()[0]:.2f}): the {delay_ms} ms goal (median, "
                    "mdev) cannot be judged here; the fastest round trips were on target")
    # Issue 3: median within 0.3 ms + 2 % of the configured RTT, mdev at most 0.3 ms.
    missed = abs(figures["median"] - rtt) > tolerance or figures["mdev"] > 0.3
    if missed and pressure >= BUSY_PRESSURE:
        pytest.skip(f"goal missed ({figures}) while tasks waited for a CPU {pressure:.0%} of the time: other "
                    "programs shared the CPUs with the delay line; inconclusive, as the lab's delay self-test says")
    assert abs(figures["median"] - rtt) <= tolerance, figures
    if figures.get("clean") and figures["mdev"] > 0.3:
        pytest.skip(f"median on target; mdev {figures['mdev']:.3f} ms over the round trips no pause was "
                    "seen in: inconclusive (pauses shorter than the monitor sees may hide among them)")
    assert figures["mdev"] <= 0.3, figures


# ------------------------------------------------------------------------- behaviour

RECEIVER = r"""
import json, socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("::", port))
s.settimeout(5)
print("ready", flush=True)
got = []
try:
    while len(got) < n:
        data = s.recv(2048)
        now = time.monotonic_ns()
        seq, sent = int.from_bytes(data[:4], "big"), int.from_bytes(data[4:12], "big")
        got.append((seq, now - sent, len(data)))
except socket.timeout:
    pass
print(json.dumps(got), flush=True)
"""

SENDER = r"""
import socket, sys, time
n, dst, port, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for seq in range(n):
    pad = bytes(size - 12)
    s.sendto(seq.to_bytes(4, "big") + time.monotonic_ns().to_bytes(8, "big") + pad, (dst, port))
    if seq % 50 == 49:
        time.sleep(0.001)
"""


def _udp_transfer(t: Triple, src_ns: str, dst_ns: str, dst: str, n: int, size: int) -> list:
    port = 40000 + os.getpid() % 20000
    receiver = t.run_in(dst_ns, RECEIVER, str(n), str(port))
    try:
        assert read_line(receiver, 10) == "ready", receiver.stderr.read()
        sender = t.run_in(src_ns, SENDER, str(n), dst, str(port), str(size))
        out, err = sender.communicate(timeout=30)
        assert sender.returncode == 0, err
        out, err = finish(receiver, 30)
        assert receiver.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])
    finally:
        for p in (receiver,):
            if p.poll() is None:
                p.kill()
                p.wait(5)


@pytest.mark.lab
def test_both_directions_in_order_with_their_own_delays(triple):
    """A->B and B->A deliver every datagram, in order, each after its own one-way delay."""
    line = triple.start_line(2, delay_b_ms=15, stats=True)
    triple.warm_up()
    n = 300
    # 1400-byte datagrams: with the end offloads off these are full-size wire frames.
    a_to_b = _udp_transfer(triple, triple.ns_a, triple.ns_b, ADDR_B, n, 1400)
    b_to_a = _udp_transfer(triple, triple.ns_b, triple.ns_a, ADDR_A, n, 200)
    for got in (a_to_b, b_to_a):
        assert [seq for seq, _, _ in got] == list(range(n))
    one_way_ab = statistics.median(d for _, d, _ in a_to_b) / 1e6
    one_way_ba = statistics.median(d for _, d, _ in b_to_a) / 1e6
    assert min(d for _, d, _ in a_to_b) >= 2e6 and min(d for _, d, _ in b_to_a) >= 15e6
    assert one_way_ab < 10 < one_way_ba, (one_way_ab, one_way_ba)
    assert all(size == 1400 for _, _, size in a_to_b)

    line.send_signal(signal.SIGTERM)
    out, _ = finish(line, 5)
    assert line.returncode == 0, triple.stderr()
    stats = json.loads(out.strip().splitlines()[-1])
    ab, ba = stats[f"{triple.if_a}->{triple.if_b}"], stats[f"{triple.if_b}->{triple.if_a}"]
    assert ab["sent"] >= n and ba["sent"] >= n
    assert ab["drops"] == {} and ba["drops"] == {}, stats


TCP_SERVER = r"""
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", 5001))
s.listen()
print("ready", flush=True)
c, _ = s.accept()
c.settimeout(20)
n = 0
while data := c.recv(65536):
    n += len(data)
print(n, flush=True)
"""

TCP_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], 5001), timeout=20)
s.sendall(bytes(range(256)) * (int(sys.argv[2]) // 256))
s.close()
"""


@pytest.fixture
def triple_with_offloads():
    """Like ``triple`` but the end interfaces keep their offloads (partial checksums, GSO)."""
    t = Triple(NS_PREFIX + uuid.uuid4().hex[:8])
    try:
        t.build(end_offloads_off=False)
        yield t
    finally:
        t.destroy()
        assert not {ns for ns in _netns_names() if ns.startswith(t.tag)}


@pytest.mark.lab
def test_frames_with_offload_metadata_pass_intact(triple_with_offloads):
    """Ends with checksum offload and TSO on: UDP (partial checksums) and TCP (GSO) pass."""
    t = triple_with_offloads
    line = t.start_line(1, stats=True)
    t.warm_up()
    got = _udp_transfer(t, t.ns_a, t.ns_b, ADDR_B, 100, 1400)
    assert [seq for seq, _, _ in got] == list(range(100))
    size = 2 << 20
    server = t.run_in(t.ns_b, TCP_SERVER)
    try:
        assert read_line(server, 10) == "ready", server.stderr.read()
        client = t.run_in(t.ns_a, TCP_CLIENT, ADDR_B, str(size))
        _, err = client.communicate(timeout=30)
        assert client.returncode == 0, err
        out, err = finish(server, 30)
        assert out.strip() == str(size), err
    finally:
        for p in (server,):
            if p.poll() is None:
                p.kill()
                p.wait(5)
    line.send_signal(signal.SIGTERM)
    out, _ = finish(line, 5)
    stats = json.loads(out.strip().splitlines()[-1])
    assert all(d["drops"] == {} for d in stats.values()), stats


@pytest.mark.lab
def test_sigterm_exits_zero_promptly_with_frames_in_flight(triple):
    """SIGTERM ends the line at once (exit 0): it does not wait for frames due in 5 s."""
    line = triple.start_line(5000)
    pinger = subprocess.Popen(["ip", "netns", "exec", triple.ns_a, "ping", "-6", "-n",
                               "-i", "0.01", "-c", "200", ADDR_B],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _queued(triple, line) > 0, 10, "frames queued in the line")
        t0 = time.monotonic()
        line.send_signal(signal.SIGTERM)
        assert line.wait(timeout=10) == 0, triple.stderr()
        # well before the queued frames were due (3 s: room for a stalled VM)
        assert time.monotonic() - t0 < 3.0
    finally:
        pinger.kill()
        pinger.wait(5)


def _queued(t: Triple, line: subprocess.Popen) -> int:
    """Frames waiting in the line now, from the counters it prints on SIGUSR1."""
    line.send_signal(signal.SIGUSR1)
    stats = json.loads(read_line(line, 5) or "{}")
    return sum(d["queued"] for d in stats.values())


@pytest.mark.lab
def test_idle_line_sleeps(triple):
    """With no traffic the line blocks in select: almost no CPU time over a second."""
    line = triple.start_line(10)
    # Silence the ends (their start-up RS, MLD and DAD frames would be traffic).
    _run(["ip", "-n", triple.ns_a, "link", "set", triple.if_x, "down"])
    _run(["ip", "-n", triple.ns_b, "link", "set", triple.if_y, "down"])
    before = cpu_ns(line.pid)  # `ip netns exec` execs the line: the pid is the line's own
    time.sleep(1.0)  # the measurement window itself, not a wait for an event
    used_ms = (cpu_ns(line.pid) - before) / 1e6
    assert used_ms < 50, f"idle delay line used {used_ms:.1f} ms of CPU in 1 s"


def cpu_ns(pid: int) -> int:
    """CPU time the process (all its threads) has used so far, in ns, from the scheduler."""
    return sum(int((task / "schedstat").read_text().split()[0])
               for task in Path(f"/proc/{pid}/task").iterdir())


@pytest.mark.lab
def test_interface_down_waits_and_deleted_interface_exits_1(triple):
    line = triple.start_line(1)
    triple.warm_up()
    _run(["ip", "-n", triple.ns_w, "link", "set", triple.if_a, "down"])
    wait_for(lambda: "went down" in triple.stderr(), 5, "the line to log that A went down")
    assert line.poll() is None
    _run(["ip", "-n", triple.ns_w, "link", "set", triple.if_a, "up"])
    wait_for(lambda: triple.ping(1, 0.2).returncode == 0, 10, "pings after A came back")
    _run(["ip", "-n", triple.ns_w, "link", "del", triple.if_a])
    assert line.wait(timeout=5) == 1
    assert "disappeared" in triple.stderr()


# ------------------------------------------------------------------------ netem backend

@pytest.mark.lab
def test_netem_probe_answers_and_explains():
    available = netem.netem_available()
    assert netem.netem_available() is available  # cached, same answer
    assert isinstance(available, bool)
    assert "netem" in netem.NETEM_MISSING_MESSAGE and "delay line" in netem.NETEM_MISSING_MESSAGE


@pytest.mark.lab
def test_netem_delay_meets_goal_where_available(triple):
    if not netem.netem_available():
        pytest.skip(netem.NETEM_MISSING_MESSAGE)
    # no delay line here: the middle is a plain bridge of A and B in w
    _run(["ip", "-n", triple.ns_w, "link", "add", f"{triple.tag}br", "type", "bridge"])
    for ifname in (triple.if_a, triple.if_b):
        _run(["ip", "-n", triple.ns_w, "link", "set", ifname, "master", f"{triple.tag}br"])
    _run(["ip", "-n", triple.ns_w, "link", "set", f"{triple.tag}br", "up"])

    def in_ns(ns):
        return lambda argv: subprocess.run(["ip", "netns", "exec", ns, *argv], check=False).returncode

    netem.apply_netem(triple.if_x, 10, run_in=in_ns(triple.ns_a))
    netem.apply_netem(triple.if_y, 10, run_in=in_ns(triple.ns_b))
    triple.warm_up()
    figures = measure_rtt(triple, 10)
    assert rtt_goal_holds(figures, 10), figures


# ---------------------------------------------------------------------- no root needed

def test_argv_names_the_line_and_its_parameters():
    argv = delayline_argv("m-eth0", "m-eth1", 10, 2.5, tag="run42", stats=True)
    assert argv[1:] == ["-m", "testbed.lab.delayline", "--if-a", "m-eth0", "--if-b", "m-eth1",
                        "--delay-ms", "10", "--delay-b-ms", "2.5", "--tag", "run42", "--stats"]


@pytest.mark.parametrize("args", [("a", "a", 1), ("a", "b", -1), ("a", "b", float("nan")),
                                  ("a", "x" * 16, 1), ("a", "b", "ten"), ("", "b", 1)])
def test_argv_refuses_bad_parameters(args):
    with pytest.raises(ConfigError):
        delayline_argv(*args)


def test_netem_argv():
    assert netem.netem_argv("h1-eth0", 50) == [
        "tc", "qdisc", "replace", "dev", "h1-eth0", "root", "netem", "delay", "50000us",
        "limit", "5000"]
    assert netem.netem_argv("h1-eth0", 0.25)[7:] == ["delay", "250us", "limit", "1000"]
    with pytest.raises(ConfigError):
        netem.netem_argv("h1-eth0", -1)


def test_apply_netem_runs_tc_where_told_and_names_a_failure():
    ran = []
    netem.apply_netem("h1-eth0", 5, run_in=lambda argv: ran.append(argv) or 0)
    assert ran == [netem.netem_argv("h1-eth0", 5)]
    with pytest.raises(errors.TestbedError, match="h1-eth0"):
        netem.apply_netem("h1-eth0", 5, run_in=lambda argv: 2)


def test_line_refuses_missing_interface_with_one_line_error():
    if os.geteuid() != 0:
        pytest.skip("opening packet sockets needs root")
    done = subprocess.run([*delayline_argv("nosuch0if", "nosuch1if", 1), "--no-prepare"],
                          check=False, capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1].startswith("delayline: error: ")
    assert "nosuch0if" in done.stderr
