"""One mechanism's handovers in the real lab: the agents bind and move, everything recorded.

For a mechanism (``rr``, ``rr-scratch`` or ``precomputed``, see testbed/lab/agents.py) a fresh
``handover`` lab comes up with captures on the MN's and the CN's links, the HA, CN and MN
agents start, the MN binds and the CN streams probes to the home address. With
``measure_paths`` the MN first moves to the other access router and back, unmeasured
(WARM_UP_MOVES), and the paths MN-CN, MN-HA and HA-CN are pinged then and after each move
(the delay lines' own bias on those paths, under the load the handovers saw). The MN moves
between AR1 and AR2 ``moves`` times; a move is complete when the MN's event log shows the
CN's BA and the HA's BA for the new care-of address and the first route-optimised probe
arrived there (the log is read as the agent writes it: nothing polls the agents during a
handover), and then the CN's binding is checked over its control socket. Afterwards the
captures are read with our decoder (Mobility Header messages with their capture times,
authentication verdicts with the run's keys).

Ctrl-C during the moves ends them: what was measured is kept (``interrupted``), the event
logs and captures are still read, the lab is removed.
"""

from __future__ import annotations

import ipaddress
import json
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testbed.agent.events import PacketSent, ProbeReceived, RaNewPrefix, decode_event
from testbed.diag.capture import read_frames
from testbed.diag.verify import KeyRing, MHRecord, verify_frames
from testbed.lab.agents import KeyInstaller, LabAgents
from testbed.lab.delayline import realtime_offset_ns
from testbed.lab.errors import LabTimeout
from testbed.lab.lab import Lab
from testbed.lab.selftest import parse_ping
from testbed.mip6.constants import IPPROTO_ICMPV6, MAX_UPDATE_RATE
from testbed.mip6.events import BuReceived, CnRegistered, CoaUsable, Event, HomeRegistered

MOVE_TIMEOUT_S = 10.0
BIND_TIMEOUT_S = 15.0
PROBE_WAIT_S = 1.0  # after the BA, for the first route-optimised probe at the new CoA
POLL_S = 0.01  # the measuring process stays off the CPUs the handover needs
PROBE_RATE = 100.0
MOVE_INTERVAL_NS = int(1.1e9 / MAX_UPDATE_RATE)  # see _move
# Before the measured moves: to the other access router and back, so that every router has
# resolved its neighbours on the paths (AR-core both ways, the MN's care-of address on each
# segment) as after any earlier visit; otherwise the first visit's address resolution (two
# round trips of an AR-core link and one of the access link, ~6 ms) lands in one move.
WARM_UP_MOVES = 2
ECHO_REQUEST, ECHO_REPLY = 128, 129
PATH_PINGS_FIRST = 20  # after the first binding
PATH_PINGS_PER_MOVE = 5  # after each move


@dataclass
class MoveResult:
    index: int
    to: str
    careof: str | None
    move_to_ra_ms: float | None
    move_to_coa_ms: float | None
    move_to_ba_ms: float | None
    cn_binding_ok: bool
    t_move_ns: int = 0  # time.monotonic_ns() of the move
    realtime_offset_ns: int = 0  # CLOCK_REALTIME - CLOCK_MONOTONIC at the move (captures are realtime)


@dataclass
class CapturedMH:
    """A Mobility Header message in a capture, with its capture time in monotonic ns."""

    t_ns: int
    record: MHRecord


@dataclass(frozen=True)
class CapturedEcho:
    """An ICMPv6 echo request or reply in a capture: realtime ns of the capture, and what
    identifies the same packet in another node's capture."""

    t_ns: int
    kind: str  # "request" or "reply"
    src: str
    dst: str
    ident: int
    seq: int


@dataclass
class MechanismResult:
    mechanism: str
    bound: bool = False
    error: str | None = None
    interrupted: bool = False  # Ctrl-C ended the moves; what was measured is kept
    moves: list[MoveResult] = field(default_factory=list)
    mh_types: dict[str, int] = field(default_factory=dict)
    bad_verdicts: dict[str, int] = field(default_factory=dict)
    run_dir: str = ""
    delay_backend: str = ""
    bring_up_s: float | None = None
    params: dict = field(default_factory=dict)  # the lab's parameters (delays)
    addresses: dict[str, str] = field(default_factory=dict)  # "cn", "ha": the CN's and the HA's address
    events: dict[str, list[Event]] = field(default_factory=dict, repr=False)  # typed (testbed.agent.events)
    captured: dict[str, list[CapturedMH]] = field(default_factory=dict, repr=False)
    echoes: dict[str, list[CapturedEcho]] = field(default_factory=dict, repr=False)  # per capture
    path_pings: dict[str, list[tuple[float, int]]] = field(default_factory=dict, repr=False)  # (rtt ms, realtime ns)
    pcaps: dict[str, str] = field(default_factory=dict)
    capture_drops: dict[str, int | None] = field(default_factory=dict)  # per capture, as tcpdump reported
    preconfigured: list = field(default_factory=list, repr=False)  # in memory only, never written out
    mn_ha: list = field(default_factory=list, repr=False)  # in memory only, never written out
    agent_cpu: dict[str, float] = field(default_factory=dict)  # each agent's CPU share over its life

    @property
    def ok(self) -> bool:
        return (self.bound and self.error is None and not self.interrupted
                and all(m.cn_binding_ok and m.move_to_ba_ms is not None for m in self.moves))

    def median(self, attr: str) -> float | None:
        values = [getattr(m, attr) for m in self.moves if getattr(m, attr) is not None]
        return statistics.median(values) if values else None

    def summary(self) -> dict:
        return {
            "mechanism": self.mechanism, "ok": self.ok, "bound": self.bound, "error": self.error,
            "interrupted": self.interrupted,
            "moves": len(self.moves), "median_move_to_ra_ms": self.median("move_to_ra_ms"),
            "median_move_to_coa_ms": self.median("move_to_coa_ms"),
            "median_move_to_ba_ms": self.median("move_to_ba_ms"),
            "mh_types": self.mh_types, "bad_verdicts": self.bad_verdicts, "run_dir": self.run_dir,
        }


def bu_turnarounds(events: list[Event]) -> list[tuple[int, int, int | None]]:
    """Per BU an agent answered: (the BU's arrival, kernel timestamp; when the agent woke to
    read it; the BA leaving: its kernel transmit stamp, or when the send returned if it has
    none), monotonic ns."""
    sent = {e.trigger_t_ns: e for e in events if isinstance(e, PacketSent) and e.what.startswith("BA")}
    return [(e.t_ns, sent[e.t_ns].woke_t_ns, sent[e.t_ns].left_ns)
            for e in events if isinstance(e, BuReceived) and e.t_ns in sent]


def send_tails(events: list[Event], prefix: str = "BA") -> list[int]:
    """Per stamped packet whose ``what`` starts with ``prefix``: from its transmit stamp to
    the agent's send returning (ns): on a veth, the peer's receive work done on the sender's
    CPU, which ``bu_turnarounds`` leaves out."""
    return [e.t_ns - e.wire_t_ns for e in events
            if isinstance(e, PacketSent) and e.wire_t_ns and e.what.startswith(prefix)]


def bu_turnaround_ns(events: list[Event]) -> list[int]:
    """Per BU an agent answered: from the BU's arrival (kernel timestamp) to the BA leaving."""
    return [out - arrived for arrived, _, out in bu_turnarounds(events)]


class EventTail:
    """An agent's event log, read as it grows (whole lines only), as typed events
    (``testbed.agent.events.decode_event``: a line naming no known event is an error)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.events: list[Event] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[Event]:
        """The events written since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        new = []
        for line in lines:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            new.append(decode_event(obj))
        self.events += new
        return new


@dataclass
class _MoveWatch:
    """What a move is waiting for in the MN's log."""

    careof: str
    cn: str
    t_move: int
    ra: int | None = None
    coa: int | None = None
    cn_ba: int | None = None
    home_ba: int | None = None
    probe: int | None = None

    def see(self, e: Event, prefix: str) -> None:
        t = e.t_ns
        if t < self.t_move:
            return
        kind = type(e)
        if kind is RaNewPrefix and self.ra is None and e.prefix == prefix:
            self.ra = t
        elif kind is CoaUsable and self.coa is None and e.careof == self.careof:
            self.coa = t
        elif kind is CnRegistered and e.careof == self.careof and e.peer == self.cn:
            self.cn_ba = self.cn_ba or t
        elif kind is HomeRegistered and e.careof == self.careof:
            self.home_ba = self.home_ba or t
        elif kind is ProbeReceived and self.probe is None and e.path == "direct" and e.to == self.careof:
            self.probe = t


PATHS = ("mn-cn", "mn-ha", "ha-cn")


class PathPings:
    """Ping round trips on the paths the handover signalling takes: MN-CN (from the MN's
    care-of address), MN-HA and HA-CN, in short bursts (the three paths at once) after the
    first binding and after each move, so that they see the load the handovers saw. Their
    excess over the configured round trip is the delay lines' (and kernels') own bias on
    that path. Each reply is stamped (realtime), to leave out those a host pause overlapped."""

    def __init__(self, lab) -> None:
        plan = lab.addresses
        cn = plan.correspondents["cn"]
        self.lab = lab
        self.ends = {"mn-cn": ("mn", cn), "mn-ha": ("mn", plan.home_agent), "ha-cn": (plan.home_agent_node, cn)}
        self.samples: dict[str, list[tuple[float, int]]] = {path: [] for path in PATHS}

    def burst(self, count: int, careof: str | None = None) -> None:
        """``count`` pings on every path; the MN's from ``careof`` (an old CoA lingers)."""
        procs = []
        for path, (src, dst) in self.ends.items():
            source = ["-I", careof] if careof and src == "mn" else []
            procs.append((path, self.lab.popen(
                src, ["ping", "-6", "-n", "-D", "-c", str(count + 1), "-i", "0.01", "-W", "1", *source, dst],
                tag=f"path-ping-{path}", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)))
        for path, proc in procs:
            try:
                out, _ = proc.popen.communicate(timeout=10 + count)
            except subprocess.TimeoutExpired:
                out = b""
            finally:
                proc.stop()
            stats = parse_ping(out.decode(errors="replace"))
            # the first round trip may have waited for neighbour discovery
            self.samples[path] += list(zip(stats.samples_ms, stats.stamps_ns))[1:]


Progress = Callable[..., None]


def run_mechanism(mechanism: str, *, moves: int, run_dir: Path, params: dict | None = None,
                  keys: KeyInstaller | None = None, measure_paths: bool = False,
                  progress: Progress | None = None, persistence: str | dict | None = None,
                  keep_warm_ms: float = 0) -> MechanismResult:
    """Bring up a lab for ``mechanism``, bind, move ``moves`` times; see the module docstring.
    ``keys`` installs the agents' keys (default ``LocalKeys``; the experiments and the
    ``testbed`` command pass the Ansible one). ``progress(kind, **info)`` is told: "up"
    (backend, bring_up_s), "bound", "move" (move). ``persistence``: the agents' setting
    (``LabAgents``; their default, ``strict``, when None); ``keep_warm_ms``: theirs (0: off)."""
    result = MechanismResult(mechanism, run_dir=str(run_dir))
    tell = progress or (lambda kind, **info: None)
    try:
        _run(result, moves, run_dir, params or {}, keys, measure_paths, tell, persistence, keep_warm_ms)
    except KeyboardInterrupt:  # during bring-up or the read-out: the lab removed itself
        result.interrupted = True
    return result


def _run(result: MechanismResult, moves: int, run_dir: Path, params: dict, keys: KeyInstaller | None,
         measure_paths: bool, tell: Progress, persistence: str | dict | None = None,
         keep_warm_ms: float = 0) -> None:
    mechanism = result.mechanism
    with Lab("handover", run_dir=run_dir, **params) as lab:
        result.delay_backend = lab.delay_backend
        result.bring_up_s = round(lab.timings.get("up", 0.0), 2)
        result.params = dict(lab.params)
        tell("up", backend=lab.delay_backend, bring_up_s=result.bring_up_s)
        plan = lab.addresses
        mn_intf = plan.mobile("mn").intf
        cn_intf = next(iter(plan.nodes["cn"].interfaces))
        captures = {"mn": lab.capture("mn", mn_intf), "cn": lab.capture("cn", cn_intf)}
        if measure_paths:  # the HA's end of the path pings (MN-HA, HA-CN): on its core link
            ha_node = plan.home_agent_node
            ha_intf = next(i.name for i in plan.nodes[ha_node].interfaces.values() if not i.ra)
            captures["ha"] = lab.capture(ha_node, ha_intf, bpf="icmp6")
        home = plan.home_address("mn")
        cn_address = plan.correspondents["cn"]
        result.addresses = {"cn": cn_address, "ha": plan.home_agent}
        ring = KeyRing()
        offsets: list[tuple[int, int]] = []  # (monotonic ns, realtime offset) over the run
        with LabAgents(lab, mechanism, keys=keys, persistence=persistence, keep_warm_ms=keep_warm_ms) as agents:
            tail = EventTail(agents["mn"].event_log)
            pings: PathPings | None = None
            try:
                agents.wait(lambda: agents.mn_bound("mn"), BIND_TIMEOUT_S, "the first binding")
                result.bound = True
                agents["cn"].ctl("probe_start", home=home, rate=PROBE_RATE)
                for i in range(WARM_UP_MOVES if measure_paths else 0):  # not measured
                    _move(lab, agents, tail, i, cn_address)
                if measure_paths:
                    pings = PathPings(lab)
                    pings.burst(PATH_PINGS_FIRST)
                tell("bound")
                tail.poll()
                for i in range(moves):
                    move = _move(lab, agents, tail, i, cn_address)
                    offsets.append((move.t_move_ns, move.realtime_offset_ns))
                    result.moves.append(move)
                    tell("move", move=move)
                    if pings is not None:
                        pings.burst(PATH_PINGS_PER_MOVE, careof=move.careof)
                agents["cn"].ctl("probe_stop")
            except LabTimeout as exc:
                result.error = str(exc)
            except KeyboardInterrupt:
                result.interrupted = True
            finally:
                if pings is not None:
                    result.path_pings = pings.samples
                result.events = {node: handle.events() for node, handle in agents.agents.items()}
                result.agent_cpu = agents.cpu_usage()
                ring = KeyRing(agents.preconfigured, agents.mn_ha)
                result.preconfigured = list(agents.preconfigured)
                result.mn_ha = list(agents.mn_ha)
        offsets.append((time.monotonic_ns(), realtime_offset_ns() or time.time_ns() - time.monotonic_ns()))
        for cap in captures.values():
            cap.stop()
        result.pcaps = {node: str(cap.path) for node, cap in captures.items()}
        result.capture_drops = {node: cap.dropped for node, cap in captures.items()}
        for node, cap in captures.items():
            result.captured[node], result.echoes[node] = _read_capture(cap.path, ring, offsets)
        records = [c.record for c in result.captured["mn"]]
        result.mh_types = dict(Counter(r.mh_type for r in records))
        result.bad_verdicts = dict(Counter(f"{r.mh_type}:{r.auth}" for r in records if r.mh_type in ("BU", "BA")))


def _move(lab, agents: LabAgents, tail: EventTail, i: int, cn_address: str) -> MoveResult:
    plan = lab.addresses
    to = "ar2" if lab.location("mn") == plan.segment("ar1").name else "ar1"
    prefix = plan.segment(to).subnet
    expected = plan.expected_coa("mn", prefix)
    # RFC 6275 11.8: the MN sends at most MAX_UPDATE_RATE BUs a second to a node (and acts on as
    # many moves): moves closer together would measure the rate limit, not the handover.
    previous = lab.last_move_ns("mn")
    if previous is not None:
        wait = previous + MOVE_INTERVAL_NS - time.monotonic_ns()
        if wait > 0:
            time.sleep(wait / 1e9)  # pacing the moves, not waiting for an event
    t_move = lab.move("mn", to)
    offset = realtime_offset_ns() or time.time_ns() - time.monotonic_ns()
    watch = _MoveWatch(expected, cn_address, t_move)
    deadline = time.monotonic() + MOVE_TIMEOUT_S
    probe_deadline = None
    while True:
        for e in tail.poll():
            watch.see(e, prefix)
        if watch.cn_ba and watch.home_ba:
            if watch.probe:
                break
            probe_deadline = probe_deadline or time.monotonic() + PROBE_WAIT_S
            if time.monotonic() >= probe_deadline:
                break  # no route-optimised probe arrived: recorded as missing
        if time.monotonic() >= deadline:
            missing = [w for w, v in (("the CN's BA", watch.cn_ba), ("the HA's BA", watch.home_ba)) if not v]
            raise LabTimeout(f"timed out after {MOVE_TIMEOUT_S:g} s waiting for {' and '.join(missing)} "
                             f"after move {i + 1} to {to}")
        time.sleep(POLL_S)
    binding = agents.cn_binding("cn")
    ok = binding is not None and binding["careof"] == expected and agents.mn_bound("mn") == expected
    ms = lambda t: None if t is None else (t - t_move) / 1e6  # noqa: E731
    return MoveResult(i + 1, to, expected, ms(watch.ra), ms(watch.coa), ms(watch.cn_ba), ok, t_move, offset)


def _read_capture(path: Path, keys: KeyRing, offsets: list[tuple[int, int]]
                  ) -> tuple[list[CapturedMH], list[CapturedEcho]]:
    """Every Mobility Header message of a capture with its time moved to monotonic ns (with
    the realtime offset read nearest to it: NTP slews the realtime clock), and every ICMPv6
    echo request and reply (realtime, as captured: only compared with other captures)."""
    frames = list(read_frames(path))
    times = {f.number: f.t_ns for f in frames}
    out = []
    marks = sorted(offsets)
    for record in verify_frames(frames, keys):
        real = times.get(record.frame, 0)
        if not real or not marks:
            continue
        guess = real - marks[0][1]
        offset = min(marks, key=lambda m: abs(m[0] - guess))[1]
        out.append(CapturedMH(real - offset, record))
    return out, [e for e in map(_echo, frames) if e is not None]


def _echo(frame) -> CapturedEcho | None:
    data = frame.ipv6
    if len(data) < 48 or data[6] != IPPROTO_ICMPV6 or data[40] not in (ECHO_REQUEST, ECHO_REPLY) or not frame.t_ns:
        return None
    ident, seq = int.from_bytes(data[44:46], "big"), int.from_bytes(data[46:48], "big")
    return CapturedEcho(frame.t_ns, "request" if data[40] == ECHO_REQUEST else "reply",
                        str(ipaddress.IPv6Address(data[8:24])), str(ipaddress.IPv6Address(data[24:40])), ident, seq)


def run_handover_check(*, moves: int = 1, run_root: Path, params: dict | None = None,
                       mechanisms: tuple[str, ...] = ("rr", "precomputed"),
                       keys=None, persistence: str | dict | None = None,
                       keep_warm_ms: float = 0) -> list[MechanismResult]:
    """``keys``: a function of the run directory returning the key installer of that run;
    ``persistence``, ``keep_warm_ms``: the agents' settings (``run_mechanism``)."""
    run_root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = [(m, run_root / f"handover-{stamp}-{m}") for m in mechanisms]
    return [run_mechanism(m, moves=moves, run_dir=d, params=params, keys=None if keys is None else keys(d),
                          persistence=persistence, keep_warm_ms=keep_warm_ms)
            for m, d in runs]
