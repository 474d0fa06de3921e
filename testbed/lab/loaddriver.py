"""Driving a fleet of emulated mobile nodes against one correspondent: open and closed loop.

A *job* is one binding of one mobile node in one round: its BU (after a HoTI/CoTI exchange
for return-routability mobiles) until an accepted BA. ``LoadDriver.run`` starts the jobs

- **closed loop** (``window=W``): at most W jobs at a time, the next one as soon as one
  ends (one job per mobile node at a time, as a real MN has one BU outstanding); it finds
  the rate the correspondent can sustain;
- **open loop** (``rate=R``): job K starts at K / R seconds whatever has come back, as
  independent mobile nodes would; it shows the latency at a given offered load. A mobile
  that moves again before its last BU was acknowledged does what a real MN does: it sends
  the BU for its new care-of address and stops retransmitting the old one (that job is
  *superseded*; its BA still counts if it comes).

A BU left unanswered for ``ba_timeout_s`` is sent again with a new sequence number and the
timeout doubled up to MAX_BINDACK_TIMEOUT (32 s), until an answer comes (RFC 6275 11.8) or
the phase's deadline passes (``max_retransmissions`` caps it for tests); a HoTI/CoTI
likewise. BUs of precomputed mobiles are built before the run (``prepare``); a
retransmission, and the BU of a return-routability job, is built when it is sent.

The driver does no I/O itself: a transport sends packets (returning the time it sent
them, ``time.monotonic_ns``) and returns received packets with their receive times (the
kernel's stamps for a socket). The same driver runs over a real link (``loadlink``) and
over the correspondent engine in-process (``enginecost``).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from testbed.lab.fleet import Fleet, Mobile, careof, rr_kbm
from testbed.mip6.constants import MAX_BINDACK_TIMEOUT_S, SECOND_NS, BAStatus
from testbed.mip6.seqno import seq_greater, seq_next

MAX_BINDACK_TIMEOUT_NS = MAX_BINDACK_TIMEOUT_S * SECOND_NS
ACCEPTED_LIMIT = 128  # BA status below this: accepted (RFC 6275 6.1.8)
EXPIRED_NONCES = (BAStatus.EXPIRED_HOME_NONCE_INDEX, BAStatus.EXPIRED_CAREOF_NONCE_INDEX, BAStatus.EXPIRED_NONCES)
IDLE_WAIT_S = 0.05


class Transport(Protocol):
    def send(self, packet: bytes, what: str) -> int:
        """Put ``packet`` on the wire; the time.monotonic_ns() just after it left."""

    def receive(self, timeout_s: float) -> list[tuple[bytes, int]]:
        """Packets that arrived (waiting at most ``timeout_s`` for the first), each with its
        receive time (monotonic ns)."""

    idle_ns: int  # time spent waiting in ``receive`` while polling (counted as CPU, not work)


@dataclass(slots=True, eq=False)
class Job:
    mobile: Mobile
    round: int
    coa: bytes
    packet: bytes | None = None  # prepared BU (precomputed mobiles)
    seq: int = 0  # of the prepared BU, then of the last BU sent
    state: str = "waiting"  # waiting, tests (RR: HoTI/CoTI out), bu, done, failed, superseded
    started_ns: int = 0
    bu_sent_ns: int = 0  # the BU the accepted BA answered
    ba_ns: int = 0
    status: int = -1
    failure: str = ""
    retransmissions: int = 0
    timeout_ns: int = 0
    deadline_ns: int = 0
    careof_index: int = 0
    careof_token: bytes | None = field(default=None, repr=False)  # key material: never in a repr
    wants_home_token: bool = False
    kbm: bytes | None = field(default=None, repr=False)  # the Kbm of the BU the BA answered (to check the BA afterwards)
    ba_packet: bytes | None = None
    sent: dict[int, int] = field(default_factory=dict)  # seq -> send time

    @property
    def latency_ns(self) -> int:
        return self.ba_ns - self.bu_sent_ns

    @property
    def accepted(self) -> bool:
        return self.state == "done"


@dataclass
class PhaseResult:
    """What one ``run`` did; times are time.monotonic_ns()."""

    name: str
    mode: str  # "closed" or "open"
    jobs: list[Job]
    started_ns: int
    ended_ns: int
    window: int | None = None
    rate: float | None = None
    unmatched: int = 0  # replies that answered no job (late duplicates after a retransmission)
    binding_errors: int = 0
    timed_out: bool = False
    driver_cpu_s: float = 0.0  # CPU time of this process meanwhile, polling for replies left out

    @property
    def accepted(self) -> list[Job]:
        return [j for j in self.jobs if j.accepted]

    @property
    def failed(self) -> list[Job]:
        return [j for j in self.jobs if j.state == "failed"]

    @property
    def superseded(self) -> list[Job]:
        return [j for j in self.jobs if j.state == "superseded"]


class LoadDriver:
    def __init__(self, fleet: Fleet, transport: Transport, *, ba_timeout_s: float = 1.0,
                 max_retransmissions: int | None = None, keep_bas: bool = True) -> None:
        self.fleet = fleet
        self.transport = transport
        self.ba_timeout_ns = int(ba_timeout_s * SECOND_NS)
        self.max_retransmissions = max_retransmissions if max_retransmissions is not None else 1 << 30
        self.keep_bas = keep_bas

    # ------------------------------------------------------------------ jobs

    def jobs(self, rounds: range, mobiles: list[Mobile] | None = None) -> list[Job]:
        """One job per mobile and round, round after round (each round moves every mobile)."""
        mobiles = self.fleet.mobiles if mobiles is None else mobiles
        return [Job(m, r, careof(m.index, r)) for r in rounds for m in mobiles]

    def prepare(self, jobs: list[Job]) -> None:
        """Build the BUs of precomputed mobiles now, numbered on from each mobile's last."""
        planned: dict[int, int] = {}
        fleet = self.fleet
        for job in jobs:
            m = job.mobile
            if m.data is None:
                continue
            seq = seq_next(planned.get(m.index, m.last_seq))
            planned[m.index] = seq
            job.seq = seq
            job.packet = fleet.precomputed_binding_update(m, seq, job.coa)

    # ------------------------------------------------------------------ running

    def run(self, jobs: list[Job], *, name: str = "", window: int | None = None, rate: float | None = None,
            deadline_s: float = 600.0) -> PhaseResult:
        """Run ``jobs`` closed loop (``window``) or open loop (``rate`` jobs per second)."""
        if (window is None) == (rate is None):
            raise ValueError("give exactly one of window (closed loop) and rate (open loop)")
        if window is not None and window < 1 or rate is not None and not rate > 0:
            raise ValueError("window must be at least 1 and rate above 0")
        self._by_seq: dict[tuple[int, int], Job] = {}
        self._by_test: dict[tuple[int, int], Job] = {}
        self._timers: list[tuple[int, int, Job]] = []
        self._tick = itertools.count()
        self._active = 0
        self._busy: dict[int, int] = {}  # mobile index -> its jobs in flight
        self._current: dict[int, Job] = {}  # mobile index -> its latest job
        self._finished: list[Job] = []
        result = PhaseResult(name, "closed" if window else "open", jobs, time.monotonic_ns(), 0, window, rate)
        cpu0 = time.process_time()
        idle0 = self.transport.idle_ns
        self._result = result
        end_by = result.started_ns + int(deadline_s * SECOND_NS)
        pending = deque(jobs)
        deferred: dict[int, deque[Job]] = {}
        open_interval = SECOND_NS / rate if rate else 0.0
        started = 0
        remaining = len(jobs)
        t0 = time.monotonic_ns()
        while remaining:
            now = time.monotonic_ns()
            if now >= end_by:
                result.timed_out = True
                break
            if window:
                while self._active < window and pending:
                    job = pending.popleft()
                    if self._busy.get(job.mobile.index):
                        deferred.setdefault(job.mobile.index, deque()).append(job)
                        continue
                    self._start(job, now)
                wait_until = self._next_deadline(end_by)
            else:
                while pending and t0 + started * open_interval <= now:
                    self._start(pending.popleft(), now)
                    started += 1
                    now = time.monotonic_ns()
                wait_until = self._next_deadline(end_by)
                if pending:
                    wait_until = min(wait_until, t0 + int(started * open_interval))
            timeout = max(0.0, (wait_until - time.monotonic_ns()) / SECOND_NS)
            for packet, t_ns in self.transport.receive(min(timeout, IDLE_WAIT_S)):
                self._on_packet(packet, t_ns)
            self._expire(time.monotonic_ns())
            for job in self._finished:
                remaining -= 1
                queue = deferred.get(job.mobile.index)
                if queue:
                    pending.appendleft(queue.popleft())
            self._finished.clear()
        result.ended_ns = time.monotonic_ns()
        result.driver_cpu_s = max(0.0, time.process_time() - cpu0 - (self.transport.idle_ns - idle0) / 1e9)
        for job in jobs:
            if job.state in ("waiting", "tests", "bu"):
                job.state, job.failure = "failed", job.failure or "run ended before it did"
        return result

    def _next_deadline(self, end_by: int) -> int:
        timers = self._timers
        while timers and timers[0][2].deadline_ns != timers[0][0]:
            heapq.heappop(timers)  # a stale entry: the job moved on
        return min(end_by, timers[0][0]) if timers else end_by

    def _arm(self, job: Job, now: int) -> None:
        job.deadline_ns = now + job.timeout_ns
        heapq.heappush(self._timers, (job.deadline_ns, next(self._tick), job))

    def _start(self, job: Job, now: int) -> None:
        previous = self._current.get(job.mobile.index)
        if previous is not None and previous.state in ("tests", "bu"):
            self._by_test.pop((previous.mobile.index, previous.round), None)
            self._finish(previous, "superseded")  # its BA, if one comes, is still recorded
        self._current[job.mobile.index] = job
        self._active += 1
        self._busy[job.mobile.index] = self._busy.get(job.mobile.index, 0) + 1
        job.started_ns = now
        job.timeout_ns = self.ba_timeout_ns
        if job.mobile.data is None:
            self._send_tests(job, now)
        else:
            self._send_bu(job)

    def _finish(self, job: Job, state: str, failure: str = "") -> None:
        job.state, job.failure = state, failure
        job.deadline_ns = 0
        self._active -= 1
        self._busy[job.mobile.index] -= 1
        self._finished.append(job)

    def _send_tests(self, job: Job, now: int) -> None:
        m = job.mobile
        fleet = self.fleet
        job.state = "tests"
        job.careof_token = None
        job.wants_home_token = not m.home_token_fresh(now)
        self._by_test[(m.index, job.round)] = job
        if job.wants_home_token:
            self.transport.send(fleet.home_test_init(m, job.round), "HoTI")
        t = self.transport.send(fleet.careof_test_init(m, job.round, job.coa), "CoTI")
        self._arm(job, t)

    def _send_bu(self, job: Job) -> None:
        m = job.mobile
        seq = job.seq
        if job.packet is None or not seq_greater(seq, m.last_seq):
            seq = seq_next(m.last_seq)
            job.packet = None
        if m.data is not None:
            packet = job.packet or self.fleet.precomputed_binding_update(m, seq, job.coa)
        else:
            packet = self.fleet.rr_binding_update(m, seq, job.coa, job.careof_index, job.careof_token)
        job.packet = None  # sent: later sends are retransmissions, built afresh
        job.seq = m.last_seq = seq
        job.state = "bu"
        t = self.transport.send(packet, "BU" if m.data is not None else "BU rr")
        job.sent[seq] = t
        self._by_seq[(m.index, seq)] = job
        self._arm(job, t)

    def _on_packet(self, packet: bytes, t_ns: int) -> None:
        reply = Fleet.classify(packet)
        if reply is None:
            return
        kind = reply.kind
        if kind == "ba":
            m = self.fleet.by_home.get(reply.home)
            job = self._by_seq.pop((m.index, reply.seq), None) if m is not None else None
            if job is None or job.state not in ("bu", "superseded") or job.ba_ns:
                self._result.unmatched += 1
                return
            job.ba_ns, job.status, job.bu_sent_ns = t_ns, reply.status, job.sent[reply.seq]
            job.kbm = m.precomputed_kbm(job.coa) if m.data is not None else rr_kbm(m, job.careof_token)
            if self.keep_bas:
                job.ba_packet = packet
            if job.state == "superseded":
                if reply.status < ACCEPTED_LIMIT:
                    job.state = "done"  # acknowledged after all (already counted as finished)
                return
            if reply.status < ACCEPTED_LIMIT:
                self._finish(job, "done")
            elif reply.status in EXPIRED_NONCES and job.retransmissions < self.max_retransmissions:
                job.retransmissions += 1
                job.ba_ns = 0
                m.home_token = None
                self._send_tests(job, t_ns)
            else:
                self._finish(job, "failed", f"BA status {reply.status}")
        elif kind == "hot" or kind == "cot":
            job = self._by_test.get((reply.index, reply.round))
            if job is None or job.state != "tests":
                self._result.unmatched += 1
                return
            m = job.mobile
            if kind == "hot":
                m.home_token, m.home_nonce_index, m.home_token_ns = reply.token, reply.nonce_index, t_ns
                job.wants_home_token = False
            else:
                job.careof_index, job.careof_token = reply.nonce_index, reply.token
            if job.careof_token is not None and not job.wants_home_token and m.home_token is not None:
                del self._by_test[(m.index, job.round)]
                self._send_bu(job)
        elif kind == "be":
            self._result.binding_errors += 1

    def _expire(self, now: int) -> None:
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, job = heapq.heappop(timers)
            if job.deadline_ns != deadline or job.state not in ("tests", "bu"):
                continue
            if job.retransmissions >= self.max_retransmissions:
                self._by_test.pop((job.mobile.index, job.round), None)
                self._finish(job, "failed", f"no answer to {job.retransmissions + 1} transmissions")
                continue
            job.retransmissions += 1
            job.timeout_ns = min(2 * job.timeout_ns, MAX_BINDACK_TIMEOUT_NS)
            if job.state == "tests":
                self._send_tests(job, now)
            else:
                self._send_bu(job)
