"""The lab's self-tests (``testbed lab --topo NAME --test pingall|delay|move``), as ``mn --test``.

Each returns a result with its figures and ``ok`` (whether its goal holds):

- ``pingall``: every node pings every other node's address over IPv6 (static address, or a
  mobile node's current care-of address), all pairs at once; a pair passes when an echo
  reply comes back (``ping -c 1 -i 0.2 -w 5``: requests every 0.2 s until the first reply,
  at most 5 s); goal: every pair passes.
- ``delay``: for each delayed link, ``ping -6`` across exactly that link (an access link is
  measured from a mobile node moved onto its segment); goal per link: median RTT within
  0.3 ms + 2 % of twice the configured one-way delay, mdev at most 0.3 ms, no loss.
- ``move``: N moves of a mobile node between two segments; each move must yield a usable
  care-of address on the new prefix (after an RA with that prefix); figures: move-to-RA and
  move-to-usable-CoA; goal: every move succeeded and the median move-to-usable-CoA is under
  150 ms. After each move the address on the prefix just left is deleted, so every move
  forms its address afresh (as after its lifetime ran out) instead of reusing it.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from testbed.lab.errors import LabError, LabTimeout
from testbed.lab.pauses import PauseMonitor, read_pressure

TESTS = ("pingall", "delay", "move")
DELAY_TOLERANCE_MS = 0.3
DELAY_TOLERANCE_REL = 0.02
MDEV_MAX_MS = 0.3
MOVE_MEDIAN_GOAL_MS = 150.0
MIN_CLEAN_SAMPLES = 20
DELAY_PINGS = 100
DELAY_MAX_ROUNDS = 5  # rounds of DELAY_PINGS per link until MIN_CLEAN_SAMPLES clean ones
DELAY_ROUND_BUDGET_S = 6.0  # no new round after this long on one link
BUSY_PRESSURE = 0.2  # a task waited for a CPU this share of the time: other programs load the machine
AFTER_PAUSE_MS = 20.0  # after a pause every sleeper wakes at once: a round trip sent this soon is not clean

_TIME_RE = re.compile(r"time=([0-9.]+) ms")
_STAMPED_RE = re.compile(r"^\[([0-9]+\.[0-9]+)\].*time=([0-9.]+) ms", re.M)
_SUMMARY_RE = re.compile(r"= ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms")
_COUNTS_RE = re.compile(r"(\d+) packets transmitted, (\d+) received")


@dataclass
class PingStats:
    sent: int
    received: int
    samples_ms: list[float]
    min_ms: float | None
    avg_ms: float | None
    max_ms: float | None
    mdev_ms: float | None
    stamps_ns: list[int] = field(default_factory=list)  # with ``ping -D``: when each reply came

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.samples_ms) if self.samples_ms else None


def parse_ping(output: str) -> PingStats:
    """Figures of iputils ``ping`` output (per-reply times and the summary line)."""
    samples = [float(m.group(1)) for m in _TIME_RE.finditer(output)]
    counts = _COUNTS_RE.search(output)
    summary = _SUMMARY_RE.search(output)
    sent, received = (int(counts.group(1)), int(counts.group(2))) if counts else (0, 0)
    if summary:
        mn, avg, mx, mdev = (float(x) for x in summary.groups())
    else:
        mn = avg = mx = mdev = None
    stamps = [int(float(m.group(1)) * 1e9) for m in _STAMPED_RE.finditer(output)]
    return PingStats(sent, received, samples, mn, avg, mx, mdev,
                     stamps if len(stamps) == len(samples) else [])


def merge_ping_stats(parts: list[PingStats]) -> PingStats:
    """One PingStats from several ping runs across the same link."""
    samples = [x for p in parts for x in p.samples_ms]
    stamps = [x for p in parts for x in p.stamps_ns] if all(p.stamps_ns or not p.samples_ms for p in parts) else []
    return PingStats(sum(p.sent for p in parts), sum(p.received for p in parts), samples,
                     min(samples, default=None), statistics.fmean(samples) if samples else None,
                     max(samples, default=None), mdev(samples) if samples else None, stamps)


def mdev(values: list[float]) -> float:
    """ping's mdev: the population standard deviation."""
    mean = sum(values) / len(values)
    return (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5


# -- pingall ----------------------------------------------------------------------------


@dataclass
class PingallResult:
    pairs: list[dict[str, Any]] = field(default_factory=list)  # src, dst, address, ok

    @property
    def sent(self) -> int:
        return len(self.pairs)

    @property
    def lost(self) -> int:
        return sum(1 for p in self.pairs if not p["ok"])

    @property
    def ok(self) -> bool:
        return bool(self.pairs) and self.lost == 0

    def to_dict(self) -> dict[str, Any]:
        return {"test": "pingall", "ok": self.ok, "sent": self.sent, "lost": self.lost,
                "goal": "every node pair answers over IPv6", "pairs": self.pairs}


def target_addresses(lab) -> dict[str, str]:
    """An address per node: its first static one, or a mobile node's current CoA."""
    targets = {}
    for name in lab.addresses.nodes:
        addr = lab.addresses.primary_address(name)
        if addr is None and name in lab.addresses.mobiles:
            addr = lab.wait_for_coa(name, require_ra=False).address
        if addr is not None:
            targets[name] = addr
    return targets


def pingall(lab, wait_s: float = 5.0) -> PingallResult:
    targets = target_addresses(lab)
    procs = []
    for src in targets:
        others = [targets[dst] for dst in targets if dst != src]
        script = ("for a in " + " ".join(others) + "; do "
                  f"(ping -6 -n -q -c 1 -i 0.2 -w {wait_s:g} $a >/dev/null 2>&1; echo \"$a $?\") & "
                  "done; wait")
        procs.append((src, lab.popen(src, ["sh", "-c", script], tag="pingall",
                                     stdout=subprocess.PIPE)))
    result = PingallResult()
    for src, proc in procs:
        try:
            out, _ = proc.popen.communicate(timeout=wait_s + 30)
        finally:
            proc.stop()
        status = dict(line.split() for line in out.decode().splitlines() if line.count(" ") == 1)
        for dst, addr in targets.items():
            if dst != src:
                result.pairs.append({"src": src, "dst": dst, "address": addr,
                                     "ok": status.get(addr) == "0"})
    return result


# -- delay ------------------------------------------------------------------------------


@dataclass
class LinkDelay:
    """One delayed link's round trips. ``clean_ms``: those that no recorded pause of the
    machine overlapped. ``quiet``: the machine did not pause during the measurement.

    Verdict: the goal on the clean samples (at least MIN_CLEAN_SAMPLES; on a machine that did
    not pause they are all the samples): a median off the goal, or any loss, fails; on a
    machine that did pause, an mdev over the goal is inconclusive (pauses shorter than the
    monitor sees may hide among the clean samples), and so is too few clean samples. ``cpu_pressure``: the share of the link's
    measurement during which some task waited for a CPU. The lab itself only pings here, so
    at BUSY_PRESSURE or more other programs loaded the machine: a missed median or mdev is
    then inconclusive too (the delay line shared the CPUs with them), never a loss.
    """

    link: str
    src: str
    target: str
    configured_rtt_ms: float
    stats: PingStats
    clean_ms: list[float] | None = None  # None: every sample is clean
    quiet: bool = True
    cpu_pressure: float | None = None

    @property
    def tolerance_ms(self) -> float:
        return DELAY_TOLERANCE_MS + DELAY_TOLERANCE_REL * self.configured_rtt_ms

    @property
    def basis(self) -> list[float]:
        return self.stats.samples_ms if self.clean_ms is None else self.clean_ms

    @property
    def median_ok(self) -> bool:
        basis = self.basis
        return bool(basis) and abs(statistics.median(basis) - self.configured_rtt_ms) <= self.tolerance_ms

    @property
    def mdev_ok(self) -> bool:
        return bool(self.basis) and mdev(self.basis) <= MDEV_MAX_MS

    @property
    def lossless(self) -> bool:
        return self.stats.received == self.stats.sent > 0

    @property
    def contended(self) -> bool:
        return self.cpu_pressure is not None and self.cpu_pressure >= BUSY_PRESSURE

    @property
    def inconclusive(self) -> bool:
        if self.ok or not self.lossless:
            return False
        if self.contended:
            return True
        if self.quiet:
            return False
        if len(self.basis) < MIN_CLEAN_SAMPLES:
            return True
        return self.median_ok and not self.mdev_ok

    @property
    def ok(self) -> bool:
        if not self.quiet and len(self.basis) < MIN_CLEAN_SAMPLES:
            return False
        return self.lossless and self.median_ok and self.mdev_ok

    def to_dict(self) -> dict[str, Any]:
        s = self.stats
        basis = self.basis
        return {"link": self.link, "src": self.src, "target": self.target,
                "configured_rtt_ms": self.configured_rtt_ms,
                "median_ms": statistics.median(basis) if basis else None,
                "mdev_ms": round(mdev(basis), 3) if basis else None,
                "samples": len(s.samples_ms), "clean_samples": len(basis),
                "basis": "clean samples (round trips no host pause or held CPU overlapped)",
                "all_median_ms": s.median_ms, "all_mdev_ms": s.mdev_ms,
                "min_ms": s.min_ms, "avg_ms": s.avg_ms, "max_ms": s.max_ms,
                "sent": s.sent, "received": s.received, "tolerance_ms": self.tolerance_ms,
                "cpu_pressure": self.cpu_pressure, "contended": self.contended,
                "inconclusive": self.inconclusive, "ok": self.ok}


@dataclass
class DelayResult:
    links: list[LinkDelay] = field(default_factory=list)
    backend: str = ""
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.links) and all(link.ok for link in self.links)

    @property
    def inconclusive(self) -> bool:
        """The goal was not shown, and only because the host paused the machine."""
        return not self.ok and bool(self.links) and all(link.ok or link.inconclusive for link in self.links)

    def to_dict(self) -> dict[str, Any]:
        return {"test": "delay", "ok": self.ok, "inconclusive": self.inconclusive,
                "backend": self.backend, "host": self.machine,
                "goal": f"median RTT within {DELAY_TOLERANCE_MS} ms + "
                        f"{DELAY_TOLERANCE_REL:.0%} of 2 x delay, mdev <= {MDEV_MAX_MS} ms, no loss "
                        f"(if the host paused the machine: judged on the round trips no pause overlapped; "
                        f"an mdev over the goal there is inconclusive, not a failure; so is a missed goal "
                        f"while other programs kept a task waiting for a CPU {BUSY_PRESSURE:.0%} of the time or more)",
                "links": [link.to_dict() for link in self.links]}


def delayed_link_probes(lab) -> list[tuple[str, str, str, str | None, float]]:
    """(link label, source node, target address, segment to move a mobile node to, delay)."""
    plan = lab.addresses
    probes = []
    mobile = next(iter(plan.mobiles), None)
    for link in plan.links:
        if link.delay_ms <= 0:
            continue
        label = f"{link.a.node}-{link.b.node}"
        ends = [link.a, link.b]
        seg_end = next((e for e in ends if e.node in plan.segments), None)
        if seg_end is None:
            target = plan.nodes[link.b.node].interfaces[link.b.intf].address
            probes.append((label, link.a.node, target, None, link.delay_ms))
            continue
        host_end = link.a if seg_end is link.b else link.b
        segment = plan.segments[seg_end.node]
        if host_end.node in plan.mobiles:  # a delayed mobile node link: ping its router
            if segment.router_address:
                probes.append((label, host_end.node, segment.router_address, None, link.delay_ms))
            continue
        address = plan.nodes[host_end.node].interfaces[host_end.intf].address
        if mobile is None or address is None:
            continue
        probes.append((label, mobile, address, segment.name, link.delay_ms))
    return probes


def is_quiet(host: PauseMonitor) -> bool:
    """No late wake-up worth a sub-millisecond verdict (a host pause, or the CPU held by the
    kernel or a real-time task): under 1 % of the time, none over 5 ms."""
    summary = host.summary()
    longest = max(summary["longest_ms"], summary["cpu_held"]["longest_ms"])
    return summary["disturbed_fraction"] < 0.01 and longest <= 5.0


def clean_samples(stats: PingStats, host: PauseMonitor) -> list[float]:
    """Round trips that no host pause overlapped, nor ended less than AFTER_PAUSE_MS before."""
    if not stats.stamps_ns:
        return list(stats.samples_ms) if not host.windows_realtime else []
    margin = 1_000_000  # ping stamps a reply just after it arrives
    before = int(AFTER_PAUSE_MS * 1e6)
    return [rtt for rtt, t in zip(stats.samples_ms, stats.stamps_ns)
            if not host.overlaps(t - int(rtt * 1e6) - before, t + margin)]


def measure_delay(lab, count: int = DELAY_PINGS, interval_s: float = 0.02,
                  max_rounds: int = DELAY_MAX_ROUNDS, budget_s: float = DELAY_ROUND_BUDGET_S) -> DelayResult:
    """Ping across every delayed link, one link at a time (concurrent pings would load the
    two cores and delay the delay lines themselves), with the pause monitor running. While the
    host pauses the machine, a link gets further rounds of ``count`` pings (up to
    ``max_rounds``, none started after ``budget_s`` on that link) until MIN_CLEAN_SAMPLES
    round trips were undisturbed."""
    result = DelayResult(backend=lab.delay_backend)
    with PauseMonitor() as host:
        for label, src, target, segment, delay_ms in delayed_link_probes(lab):
            if segment is not None and lab.location(src) != segment:
                lab.move(src, to=segment)
                lab.wait_for_coa(src, timeout=5.0)
            wait = max(1.0, 4 * delay_ms / 1000)
            # warm-up: neighbour discovery through the delayed link is not part of the figure
            lab.run(src, ["ping", "-6", "-n", "-q", "-c", "2", "-i", "0.2", "-W", f"{wait:g}", target], timeout=30)
            rounds: list[PingStats] = []
            clean: list[float] = []
            pressure0, t0 = read_pressure(), time.monotonic_ns()
            until = time.monotonic() + budget_s
            while len(rounds) < max_rounds and (not rounds or time.monotonic() < until):
                done = lab.run(src, ["ping", "-6", "-n", "-D", "-c", str(count), "-i", f"{interval_s:g}",
                                     "-W", f"{wait:g}", target], timeout=count * interval_s + 60)
                rounds.append(parse_ping(done.stdout))
                clean += clean_samples(rounds[-1], host)
                if not host.windows_realtime or len(clean) >= MIN_CLEAN_SAMPLES or rounds[-1].received < rounds[-1].sent:
                    break
            pressure1, t1 = read_pressure(), time.monotonic_ns()
            pressure = (round((pressure1["some"] - pressure0["some"]) * 1000 / (t1 - t0), 3)
                        if pressure0 and pressure1 else None)
            result.links.append(LinkDelay(label, src, target, 2 * delay_ms, merge_ping_stats(rounds), clean,
                                          cpu_pressure=pressure))
    quiet = is_quiet(host)
    for link in result.links:
        link.quiet = quiet
    result.machine = host.summary()
    return result


# -- move -------------------------------------------------------------------------------


@dataclass
class MoveResult:
    mn: str = ""
    moves: list[dict[str, Any]] = field(default_factory=list)

    def _values(self, key: str) -> list[float]:
        return [m[key] for m in self.moves if m.get(key) is not None]

    @property
    def median_coa_ms(self) -> float | None:
        values = self._values("coa_ms")
        return statistics.median(values) if values else None

    @property
    def ok(self) -> bool:
        median = self.median_coa_ms
        return (bool(self.moves) and all(m["ok"] for m in self.moves) and median is not None
                and median < MOVE_MEDIAN_GOAL_MS)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("ra_ms", "coa_ms"):
            values = self._values(key)
            out[key] = ({"median": statistics.median(values), "min": min(values),
                         "max": max(values)} if values else None)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"test": "move", "ok": self.ok, "mn": self.mn,
                "goal": f"every move yields a usable CoA on the new prefix; median "
                        f"move-to-usable-CoA < {MOVE_MEDIAN_GOAL_MS:g} ms",
                "succeeded": sum(1 for m in self.moves if m["ok"]), "count": len(self.moves),
                **self.summary(), "moves": self.moves}


def move_test(lab, mn: str | None = None, count: int = 20, between: tuple[str, str] = ("ar1", "ar2"),
              timeout_s: float = 2.0) -> MoveResult:
    plan = lab.addresses
    mn = mn or next(iter(plan.mobiles), None)
    if mn is None:
        raise LabError("the move test needs a mobile node")
    segments = [plan.segment(name).name for name in between]
    result = MoveResult(mn=mn)
    if lab.location(mn) not in segments:
        lab.move(mn, to=segments[0])
        lab.wait_for_coa(mn, timeout=5.0)
    for i in range(count):
        here = lab.location(mn)
        there = segments[1] if here == segments[0] else segments[0]
        prefix = plan.segments[there].subnet
        t_move = lab.move(mn, to=there)
        entry: dict[str, Any] = {"n": i + 1, "to": there, "prefix": prefix}
        try:
            coa = lab.wait_for_coa(mn, prefix, since_ns=t_move, timeout=timeout_s)
        except LabTimeout as exc:
            entry.update(ok=False, error=str(exc), ra_ms=None, coa_ms=None)
        else:
            entry.update(ok=True, address=coa.address,
                         ra_ms=(coa.ra_ns - t_move) / 1e6 if coa.ra_ns else None,
                         coa_ms=(coa.usable_ns - t_move) / 1e6)
        result.moves.append(entry)
        lab.forget_addresses(mn, plan.segments[here].subnet)
    return result


def as_dict(result) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else asdict(result)
