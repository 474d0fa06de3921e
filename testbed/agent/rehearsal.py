"""Rehearsals: the agent's per-BU code run on throwaway engines while the agent is idle, so
that the next real BU finds that code warm (``keep_warm_ms``, config.py; off by default).

Why: on these VMs one engine call takes about 0.04 ms when the code ran a moment ago and
0.25-0.3 ms after 10 ms or more of idleness (the CPU's caches and branch predictors went to
other work; docs/agent-latency.md has the measurements). A BU that arrives after a pause,
which is every BU of a handover, pays that. A rehearsal is one move of a throwaway mobile
node between two care-of addresses: its BUs go through a throwaway engine of the agent's own
role (a CN, an HA; an MN agent rehearses the mobile node itself, both answers fed back), the
events are rendered as the event log would write them and dropped. Nothing leaves the
process: ``Send`` and ``Persist`` actions are dropped, no file is touched, the agent's own
engine and its bindings are never used.

The throwaway parties use documentation addresses of their own (2001:db8:fffd::/48 to
2001:db8:ffff::/48) and fresh random keys from the OS CSPRNG, never the agent's keys; their
clock is their own (2 s on per rehearsal, past every rate limit), and they are made again
every ``RENEW_EVERY`` rehearsals, long before a key's sequence numbers could reach the R13
bound.
"""

from __future__ import annotations

import ipaddress

from testbed.agent.eventlog import json_line
from testbed.mip6.actions import Persist, Send
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.ha import HomeAgent
from testbed.mip6.keys import generate
from testbed.mip6.mn import MobileNode
from testbed.mip6.mnha import generate_mn_ha
from testbed.mip6.persistence import Persistence

HOME_PREFIX = ipaddress.IPv6Network("2001:db8:fffd::/64")
HOME_AGENT = ipaddress.IPv6Address("2001:db8:fffd::1")
HOME_ADDRESS = ipaddress.IPv6Address("2001:db8:fffd::100")
CORRESPONDENT = ipaddress.IPv6Address("2001:db8:fffe::1")
CAREOF = (ipaddress.IPv6Address("2001:db8:ffff:1::100").packed, ipaddress.IPv6Address("2001:db8:ffff:2::100").packed)
STEP_NS = 2_000_000_000  # each rehearsal 2 s after the last, on the rehearsal's own clock
RENEW_EVERY = 8000  # rehearsals per set of engines: 2 numbers per move, far under the 2^15 bound
NODE = "rehearsal"


class Rehearsal:
    """``run()`` rehearses one move; ``runs`` counts them. ``role`` is the agent's role."""

    def __init__(self, role: str, persistence: Persistence) -> None:
        if role not in ("mn", "cn", "ha"):
            raise ValueError(f"no rehearsal for role {role!r}")
        self.role = role
        self.persistence = persistence
        self.runs = 0
        self._build()

    def _build(self) -> None:
        data = generate(HOME_ADDRESS, CORRESPONDENT)
        sa = generate_mn_ha(str(HOME_ADDRESS), str(HOME_AGENT))
        p = self.persistence
        self._mn = MobileNode(HOME_ADDRESS.packed, HOME_AGENT.packed, mn_ha=sa, persistence=p,
                              correspondents=[CORRESPONDENT.packed] if self.role != "ha" else [],
                              peers=[data] if self.role != "ha" else [], node=NODE)
        self._answering = {}
        if self.role in ("cn", "mn"):
            self._answering[CORRESPONDENT.packed] = CorrespondentNode(CORRESPONDENT.packed, peers=[data],
                                                                      persistence=p, node=NODE)
        if self.role in ("ha", "mn"):
            self._answering[HOME_AGENT.packed] = HomeAgent(HOME_AGENT.packed, HOME_PREFIX,
                                                           keys={HOME_ADDRESS.packed: sa}, persistence=p, node=NODE)
        self._now = 0
        self._done = 0

    def run(self) -> int:
        """One move of the throwaway MN and the answers to its BUs; returns the packets handled."""
        if self._done >= RENEW_EVERY:
            self._build()
        self._now += STEP_NS
        now = self._now
        handled = 0
        answers = []
        for packet in self._sends(self._mn.move(CAREOF[self._done & 1], now)):
            engine = self._answering.get(packet[24:40])
            if engine is not None:
                answers += self._sends(engine.receive(packet, now))
                handled += 1
        for packet in answers:
            self._sends(self._mn.receive(packet, now))
            handled += 1
        self._done += 1
        self.runs += 1
        return handled

    def bound_careofs(self) -> dict[str, bytes | None]:
        """Where each throwaway answering engine has the throwaway MN bound (tests)."""
        out = {}
        for address, engine in self._answering.items():
            binding = engine.bindings.get(HOME_ADDRESS.packed)
            out[type(engine).__name__] = None if binding is None else binding.careof
        return out

    @staticmethod
    def _sends(actions: list) -> list[bytes]:
        """The packets among ``actions``; the events rendered as the log would, then dropped."""
        out = []
        for action in actions:
            kind = type(action)
            if kind is Send:
                out.append(action.packet)
            elif kind is not Persist:
                json_line(action)
        return out
