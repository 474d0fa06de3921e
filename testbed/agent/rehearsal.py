"""Rehearsals: the agent's per-BU code run on throwaway engines while the agent is idle, so
that the next real BU finds that code warm (``keep_warm_ms``, config.py; off by default).

Why: on these VMs one engine call takes about 0.04 ms when the code ran a moment ago and
0.25-0.3 ms after 10 ms or more of idleness (the CPU's caches and branch predictors went to
other work; docs/agent-latency.md has the measurements). A BU that arrives after a pause,
which is every BU of a handover, pays that. A rehearsal is one move of a throwaway mobile
node between two care-of addresses: its BU goes through a throwaway engine of the agent's own
role (a CN, an HA; an MN agent rehearses the mobile node's move itself), and that engine's
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
from testbed.mip6.constants import IPPROTO_MH
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.ha import HomeAgent
from testbed.mip6.keys import generate
from testbed.mip6.mn import MobileNode
from testbed.mip6.mnha import generate_mn_ha
from testbed.mip6.packet import build_packet
from testbed.mip6.persistence import Persistence
from testbed.mip6.sealing import seal_home_bu, seal_precomputed_bu

HOME_PREFIX = ipaddress.IPv6Network("2001:db8:fffd::/64")
HOME_AGENT = ipaddress.IPv6Address("2001:db8:fffd::1")
HOME_ADDRESS = ipaddress.IPv6Address("2001:db8:fffd::100")
CORRESPONDENT = ipaddress.IPv6Address("2001:db8:fffe::1")
CAREOF = (ipaddress.IPv6Address("2001:db8:ffff:1::100").packed, ipaddress.IPv6Address("2001:db8:ffff:2::100").packed)
STEP_NS = 2_000_000_000  # each rehearsal 2 s after the last, on the rehearsal's own clock
RENEW_EVERY = 8000  # rehearsals per set of engines: 2 numbers per move, far under the 2^15 bound
LIFETIME_UNITS = 105  # what our MN asks of a home agent (7 minutes)
NODE = "rehearsal"


class Rehearsal:
    """``run()`` rehearses one move; ``runs`` counts them. ``role`` is the agent's role.

    A CN or HA agent's rehearsal is only its own side: the throwaway MN's BU is sealed from
    the templates our MN uses (``testbed.mip6.sealing``), handed to a throwaway engine of the
    agent's role, and that engine's events rendered. An MN agent's rehearsal is its own side
    too: a throwaway MN's move (its home BU and its precomputed correspondent's BU, sent to
    nobody: a move supersedes the BUs of the last one) and its events rendered."""

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
        self._sa = sa
        self._seq = 0
        self._now = 0
        self._done = 0
        if self.role == "cn":
            self._engine = CorrespondentNode(CORRESPONDENT.packed, peers=[data], persistence=p, node=NODE)
            home_token = home_keygen_token(data.kcn, HOME_ADDRESS.packed, data.home_nonce)
            self._kbm = [binding_management_key(home_token, careof_keygen_token(data.kcn, c, data.careof_nonce))
                         for c in CAREOF]
        elif self.role == "ha":
            self._engine = HomeAgent(HOME_AGENT.packed, HOME_PREFIX, keys={HOME_ADDRESS.packed: sa}, persistence=p,
                                     node=NODE)
        else:
            self._mn = MobileNode(HOME_ADDRESS.packed, HOME_AGENT.packed, mn_ha=sa, persistence=p,
                                  correspondents=[CORRESPONDENT.packed], peers=[data], node=NODE)

    def run(self) -> int:
        """One move of the throwaway MN, its side or the agent's; returns the BUs handled (CN,
        HA) or sent (MN)."""
        if self._done >= RENEW_EVERY:
            self._build()
        self._now += STEP_NS
        now = self._now
        i = self._done & 1
        self._done += 1
        self.runs += 1
        if self.role == "cn":
            self._seq += 1
            bu = build_packet(CAREOF[i], CORRESPONDENT.packed, IPPROTO_MH,
                              seal_precomputed_bu(self._seq, 0xFFFF, self._kbm[i], CAREOF[i], CORRESPONDENT.packed),
                              home_address=HOME_ADDRESS.packed)
            self._render(self._engine.receive(bu, now))
            return 1
        if self.role == "ha":
            self._seq += 1
            sa = self._sa
            bu = build_packet(CAREOF[i], HOME_AGENT.packed, IPPROTO_MH,
                              seal_home_bu(self._seq, LIFETIME_UNITS, now, sa.spi, sa.key, CAREOF[i], HOME_ADDRESS.packed),
                              home_address=HOME_ADDRESS.packed)
            self._render(self._engine.receive(bu, now))
            return 1
        return len(self._render(self._mn.move(CAREOF[i], now)))  # its BUs, to nobody

    def bound_careof(self) -> bytes | None:
        """Where the throwaway engine has the throwaway MN bound, or (an MN's rehearsal) the
        care-of address the MN moved to (tests)."""
        if self.role == "mn":
            return self._mn.careof
        binding = self._engine.bindings.get(HOME_ADDRESS.packed)
        return None if binding is None else binding.careof

    @staticmethod
    def _render(actions: list) -> list[bytes]:
        """The packets among ``actions``; the events rendered as the log would, then dropped."""
        out = []
        for action in actions:
            kind = type(action)
            if kind is Send:
                out.append(action.packet)
            elif kind is not Persist:
                json_line(action)
        return out
