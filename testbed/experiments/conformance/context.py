"""What a conformance check works with: the tester's wire, the node under test, the keys the
tester holds as the parties it plays, and the helpers that send, wait and judge.

A check judges only what comes back on the wire (and whether the node keeps running). Every
packet it sends and receives is written to its trace, which becomes its evidence. Waits have
deadlines; a "nothing came back" verdict is judged after ``SILENCE_S``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.experiments.conformance import plan
from testbed.lab import craft
from testbed.lab.tester import Heard, NodeWire

# A node on the same link answers within milliseconds. Half a second leaves room for the
# host pausing this VM (10-110 ms at a time) several times over, and an answer later than
# that would come after a mobile node's first retransmission (1 s) and be worthless to it.
SILENCE_S = 0.5
# How long an answer the check expects may take (an agent started a moment ago, a loaded
# machine): long, because a pass never waits for it to run out.
ANSWER_S = 3.0


class CheckFailed(Exception):
    """The node did not do what the check requires (the message says what it did)."""


class Expected(str):
    """What a scenario returns for behaviour the RFC accepts (verdict ``expected``)."""


class NotApplicable(Exception):
    """The check cannot apply to this target (e.g. it cannot be restarted)."""


@dataclass
class Check:
    id: str
    profile: str  # rfc4449, rr, ha, mn, or cn (either correspondent profile)
    title: str
    rfc: str
    requirement: str | None
    run: Callable[[Context], str]
    level: str = "MUST"

    @property
    def reference(self) -> str:
        return self.rfc + (f" ({self.requirement})" if self.requirement else "")


REGISTRY: list[Check] = []


def check(id: str, profile: str, title: str, rfc: str, requirement: str | None = None, level: str = "MUST",
          registry: list[Check] | None = None):
    """Register a check function ``f(ctx) -> detail`` (raise CheckFailed to fail) in
    ``registry`` (default: the conformance suite's)."""

    def wrap(fn):
        (REGISTRY if registry is None else registry).append(Check(id, profile, title, rfc, requirement, fn, level))
        return fn

    return wrap


@dataclass
class Context:
    wire: NodeWire
    iut: object  # testbed.experiments.conformance.iut.Iut
    profile: str
    pairs: dict[str, craft.PairKeys] = field(default_factory=dict)  # by home address (text)
    mn_ha: dict[str, craft.MnHaKeys] = field(default_factory=dict)
    trace: list[str] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # the node's own events a scenario cites
    seq: dict[str, int] = field(default_factory=dict)
    max_lifetime: int | None = None
    t0: int = 0

    # -- the wire -------------------------------------------------------------------------

    def _note(self, direction: str, t_ns: int, packet: craft.Reply) -> None:
        self.trace.append(f"{(t_ns - self.t0) / 1e6:9.1f} ms {direction} {packet.summary()}")

    def send(self, *packets: bytes) -> int:
        t = self.wire.send(*packets)
        for p in packets:
            self._note(">", t, craft.read(p))
        return t

    def heard(self, since: int, deadline_s: float, count: int | None = None, **match) -> list[Heard]:
        got = self.wire.recv(since=since, deadline_s=deadline_s, count=count, **match)
        for h in got:
            self._note("<", h.t_ns, h.packet)
        return got

    def ask(self, packet: bytes, *, deadline_s: float = ANSWER_S, **match) -> Heard | None:
        """Send ``packet``; the first answer that matches, or None after the deadline."""
        t = self.send(packet)
        got = self.heard(t, deadline_s, 1, **match)
        return got[0] if got else None

    def quiet(self, packet: bytes, **match) -> list[Heard]:
        """Send ``packet`` and listen ``SILENCE_S`` for anything matching (a silent drop: [])."""
        t = self.send(packet)
        return self.heard(t, SILENCE_S, None, **match)

    def node_events(self, since_ns: int, kind: str, deadline_s: float = ANSWER_S, **fields) -> list[dict]:
        """The node under test's events of ``kind`` (with ``fields``) logged since monotonic
        ``since_ns``, waiting up to ``deadline_s`` for the first; each is added to the evidence."""
        end = time.monotonic() + deadline_s
        while True:
            found = [e for e in self.iut.events() if e.get("event") == kind and int(e.get("t_ns", 0)) >= since_ns
                     and all(e.get(k) == v for k, v in fields.items())]
            if found or time.monotonic() >= end:
                self.events.extend(found)
                return found
            time.sleep(0.05)

    def alive(self) -> None:
        if not self.iut.alive():
            raise CheckFailed(f"the node under test is no longer running (exit status {self.iut.process.returncode})")

    def survives_malformed(self, src: str, dst: str) -> str:
        """Send the node Mobility Headers nobody can read (``craft.malformed_mh``): it must
        drop them and keep running."""
        for packet in craft.malformed_mh(src, dst):
            self.quiet(packet)
        self.alive()
        return "still running after malformed Mobility Headers"

    # -- the correspondent-node profiles --------------------------------------------------

    def next_seq(self, home: str, step: int = 1) -> int:
        self.seq[home] = (self.seq.get(home, 0) + step) & 0xFFFF
        return self.seq[home]

    def bu(self, home: str, *, seq: int | None = None, coa: str = plan.CAREOF[0], ack: bool = True,
           lifetime: int = 100, key: bytes | None = None, **kw) -> bytes:
        """A BU from the tester as mobile node ``home`` at ``coa`` to the CN under test,
        authenticated with the pair's precomputed Kbm unless ``key`` (or ``bad=False``) says
        otherwise."""
        pair = self.pairs.get(home)
        if key is None and pair is not None:
            key = pair.kbm(None if lifetime == 0 or coa == home else craft.a16(coa))
        return craft.binding_update(coa, plan.CN_ADDRESS, seq=self.next_seq(home) if seq is None else seq,
                                    lifetime=lifetime, ack=ack, home=None if coa == home else home, key=key, **kw)

    def expect_ba(self, packet: bytes, home: str, coa: str, *, status: int, seq: int | None = None,
                  key: bytes | None = None, what: str = "the BU") -> Heard:
        """Send a BU; its BA must come to ``coa`` (type 2 routing header ``home``) with
        ``status`` and ``seq``, authenticated with ``key`` when given."""
        ba = self.ask(packet, mh_type=craft.BA, dst=coa)
        if ba is None:
            raise CheckFailed(f"no Binding Acknowledgement for {what} within {ANSWER_S:g} s (expected status {status})")
        problems = []
        if ba.status != status:
            problems.append(f"status {ba.status}, expected {status}")
        if seq is not None and ba.seq != seq:
            problems.append(f"sequence number {ba.seq}, expected {seq}")
        if coa != home and ba.rh2 != craft.a16(home):
            problems.append("no type 2 routing header with the home address")
        if not ba.mh_checksum_ok():
            problems.append("bad Mobility Header checksum")
        if key is not None and not ba.bad_valid(key, craft.a16(coa), craft.a16(plan.CN_ADDRESS)):
            problems.append("not authenticated with the pair's Kbm (Binding Authorization Data missing or wrong)")
        if problems:
            raise CheckFailed(f"BA for {what}: " + "; ".join(problems))
        return ba

    def expect_silence(self, packet: bytes, what: str, **match) -> None:
        """Send ``packet``: nothing matching may come back within ``SILENCE_S`` (default: no
        Mobility Header packet at all)."""
        if not match:
            match = {"nh": craft.MH}
        got = self.quiet(packet, **match)
        if got:
            raise CheckFailed(f"{what} was answered: {got[0].packet.summary()} (a silent drop expected)")
        self.alive()

    def bound_at(self, home: str, coa: str) -> bool:
        """Whether the CN uses a binding of ``home`` at ``coa``, judged on the wire (RFC 6275
        9.3.1): a packet with a Home Address option must draw a Binding Error (status 1)
        unless a binding for that home address exists whose care-of address is the packet's
        source. First a probe from a source that is surely not registered must draw one
        (so silence afterwards means something); then a probe from ``coa``."""
        decoy = plan.CAREOF[-1]
        time.sleep(0.1)  # Binding Errors are rate-limited like ICMPv6 errors (RFC 6275 9.3.3)
        first = self.ask(craft.with_home_address(decoy, plan.CN_ADDRESS, home), mh_type=craft.BE, dst=decoy)
        if first is None or first.status != 1:
            raise CheckFailed(f"a packet with a Home Address option for {home} from an unregistered source drew no "
                              "Binding Error status 1 (RFC 6275 9.3.1); the binding cannot be judged")
        got = self.quiet(craft.with_home_address(coa, plan.CN_ADDRESS, home), mh_type=craft.BE)
        return not got

    def rr_tokens(self, home: str, coa: str | None) -> tuple[int, bytes, int, bytes | None]:
        """Return routability as the mobile node ``home`` at ``coa``: HoTI and CoTI, their HoT
        and CoT; (home nonce index, home token, care-of nonce index, care-of token)."""
        cookie_h, cookie_c = os.urandom(8), os.urandom(8)
        t = self.send(craft.home_test_init(home, plan.CN_ADDRESS, cookie_h))
        hot = self.heard(t, ANSWER_S, 1, mh_type=craft.HOT, dst=home)
        if not hot or hot[0].cookie != cookie_h:
            raise CheckFailed("no Home Test with the HoTI's cookie came back to the home address")
        if coa is None:
            return hot[0].nonce_index, hot[0].token, 0, None
        t = self.send(craft.careof_test_init(coa, plan.CN_ADDRESS, cookie_c))
        cot = self.heard(t, ANSWER_S, 1, mh_type=craft.COT, dst=coa)
        if not cot or cot[0].cookie != cookie_c:
            raise CheckFailed("no Care-of Test with the CoTI's cookie came back to the care-of address")
        return hot[0].nonce_index, hot[0].token, cot[0].nonce_index, cot[0].token
