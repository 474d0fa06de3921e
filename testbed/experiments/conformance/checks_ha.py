"""Home-agent checks: home registration authenticated per RFC 4285 (RFC 6275 10.3), and the
tunnel to the care-of address (RFC 6275 10.4).

The tester plays mobile nodes with MN-HA keys the home agent was given (``plan.PRECOMPUTED_HOMES``
on the home prefix, ``plan.OUTSIDE_HOME`` outside it) and a correspondent sending to a home
address.
"""

from __future__ import annotations

import os
import time

from testbed.experiments.conformance import plan
from testbed.experiments.conformance.context import SILENCE_S, ANSWER_S, CheckFailed, Context, check
from testbed.lab import craft

HA = plan.HA_ADDRESS
COA1, COA2 = plan.CAREOF[0], plan.CAREOF[1]
CORRESPONDENT = "2001:db8:3::1"


def _timestamp() -> int:
    return time.monotonic_ns()


def _reg(ctx: Context, home: str, coa: str, *, seq: int | None = None, lifetime: int = 100,
         timestamp: int | None = -1, auth_ok: bool = True) -> tuple[bytes, int | None]:
    sa = ctx.mn_ha[home]
    ts = _timestamp() if timestamp == -1 else timestamp
    pkt = craft.home_registration(coa, HA, home=home, seq=ctx.next_seq(home) if seq is None else seq,
                                  lifetime=lifetime, timestamp=ts, spi=sa.spi, key=sa.key, auth_ok=auth_ok)
    return pkt, ts


def _ba(ctx: Context, pkt: bytes, coa: str, what: str):
    ba = ctx.ask(pkt, mh_type=craft.BA, dst=coa)
    if ba is None:
        raise CheckFailed(f"no BA for {what} within {ANSWER_S:g} s")
    return ba


def _register(ctx: Context, home: str, coa: str) -> int:
    pkt, ts = _reg(ctx, home, coa)
    ba = _ba(ctx, pkt, coa, "the home registration")
    sa = ctx.mn_ha[home]
    if ba.status != 0:
        raise CheckFailed(f"home registration refused with BA {ba.status}")
    if not ba.mn_ha_valid(sa.key, craft.a16(coa), craft.a16(home)):
        raise CheckFailed("the BA is not authenticated with the MN-HA key (RFC 4285)")
    if ba.replay_timestamp() != ts:
        raise CheckFailed(f"the BA echoes timestamp {ba.replay_timestamp()}, not the BU's {ts}")
    return ctx.seq[home]


def _tunnelled_to(ctx: Context, home: str, coa: str) -> bool:
    """A packet from a correspondent to ``home`` comes back tunnelled to ``coa``."""
    marker = os.urandom(8)
    t = ctx.send(craft.plain(CORRESPONDENT, home, marker))
    got = ctx.heard(t, SILENCE_S * 2, None, nh=craft.IPV6_IN_IPV6, dst=coa)
    return any(h.inner() is not None and h.inner().dst == craft.a16(home) and marker in h.inner().raw for h in got)


@check("HA-01", "ha", "a home registration with a right MN-HA authenticator and replay protection is accepted: "
       "BA 0 to the care-of address, authenticated, the timestamp echoed", "RFC 6275 10.3.1; RFC 4285 5, 6", None)
def accept(ctx: Context) -> str:
    seq = _register(ctx, plan.PRECOMPUTED_HOMES[0], COA1)
    return f"BA 0 for {seq}, MN-HA authenticated, timestamp echoed"


@check("HA-02", "ha", "packets for a registered home address are tunnelled to the care-of address",
       "RFC 6275 10.4.1", None)
def tunnel(ctx: Context) -> str:
    home = plan.PRECOMPUTED_HOMES[0]
    _register(ctx, home, COA1)
    if not _tunnelled_to(ctx, home, COA1):
        raise CheckFailed(f"a packet for {home} did not come back tunnelled to {COA1}")
    return f"tunnelled to {COA1}"


@check("HA-03", "ha", "a home registration with a wrong MN-HA authenticator is not accepted (no BA 0; BA 146 if "
       "any) and changes nothing", "RFC 4285 6; RFC 6275 10.3.1", None)
def wrong_authenticator(ctx: Context) -> str:
    home = plan.PRECOMPUTED_HOMES[0]
    _register(ctx, home, COA1)
    pkt, _ = _reg(ctx, home, COA2, auth_ok=False)
    got = ctx.quiet(pkt, mh_type=craft.BA)
    if any(h.status == 0 for h in got):
        raise CheckFailed("BA 0 for a forged home registration")
    if got and got[0].status != 146:
        raise CheckFailed(f"BA {got[0].status} for a forged home registration (146 expected, or none)")
    if _tunnelled_to(ctx, home, COA2):
        raise CheckFailed(f"after the forged registration packets for {home} go to {COA2}")
    return "no BA 0" + (f" (BA {got[0].status})" if got else " (silent)") + "; tunnel unchanged"


@check("HA-04", "ha", "a home registration without the replay protection option is refused with BA 145",
       "RFC 4285 6", None)
def no_replay_option(ctx: Context) -> str:
    pkt, _ = _reg(ctx, plan.PRECOMPUTED_HOMES[1], COA1, timestamp=None)
    ba = _ba(ctx, pkt, COA1, "a registration without a timestamp")
    if ba.status != 145:
        raise CheckFailed(f"BA {ba.status}, expected 145")
    return "BA 145"


@check("HA-05", "ha", "a replayed home registration (timestamp not newer) is refused with BA 144",
       "RFC 4285 6", None)
def replayed_timestamp(ctx: Context) -> str:
    home = plan.PRECOMPUTED_HOMES[1]
    pkt, ts = _reg(ctx, home, COA1)
    first = _ba(ctx, pkt, COA1, "the registration")
    if first.status != 0:
        raise CheckFailed(f"the first registration got BA {first.status}")
    ba = _ba(ctx, pkt, COA1, "its replay")
    if ba.status != 144:
        raise CheckFailed(f"the replay got BA {ba.status}, expected 144")
    return "BA 144 for the replay"


@check("HA-06", "ha", "a home registration for an address outside the home prefix is refused with BA 132, "
       "authenticated", "RFC 6275 10.3.1; RFC 4285 6", None)
def not_home_subnet(ctx: Context) -> str:
    home = plan.OUTSIDE_HOME
    pkt, _ = _reg(ctx, home, COA1)
    ba = _ba(ctx, pkt, COA1, "a registration outside the home prefix")
    if ba.status != 132:
        raise CheckFailed(f"BA {ba.status}, expected 132")
    if not ba.mn_ha_valid(ctx.mn_ha[home].key, craft.a16(COA1), craft.a16(home)):
        raise CheckFailed("BA 132 is not authenticated: an RFC 4285 mobile node must drop it")
    return "BA 132, authenticated"


@check("HA-07", "ha", "a home registration with a stale sequence number is refused with BA 135",
       "RFC 6275 10.3.1", None)
def stale_sequence(ctx: Context) -> str:
    home = plan.PRECOMPUTED_HOMES[2]
    seq = _register(ctx, home, COA1)
    pkt, _ = _reg(ctx, home, COA2, seq=seq)
    ctx.seq[home] = seq
    ba = _ba(ctx, pkt, COA2, "a stale registration")
    if ba.status != 135:
        raise CheckFailed(f"BA {ba.status}, expected 135")
    return f"BA 135 (last {ba.seq})"


@check("HA-08", "ha", "a reverse-tunnelled HoTI is forwarded only from the registered care-of address",
       "RFC 6275 10.4.5, 5.2.5", None)
def reverse_tunnel(ctx: Context) -> str:
    home = plan.PRECOMPUTED_HOMES[0]
    _register(ctx, home, COA1)
    cookie = os.urandom(8)
    hoti = craft.home_test_init(home, CORRESPONDENT, cookie)
    t = ctx.send(craft.tunnelled(COA1, HA, hoti))
    got = ctx.heard(t, ANSWER_S, 1, mh_type=craft.HOTI, dst=CORRESPONDENT)
    if not got or got[0].cookie != cookie:
        raise CheckFailed("the HoTI tunnelled from the registered care-of address was not forwarded")
    t = ctx.send(craft.tunnelled(COA2, HA, craft.home_test_init(home, CORRESPONDENT, os.urandom(8))))
    if ctx.heard(t, SILENCE_S, None, mh_type=craft.HOTI, dst=CORRESPONDENT):
        raise CheckFailed("a HoTI tunnelled from another care-of address was forwarded")
    return "forwarded from the registered care-of address only"


@check("HA-09", "ha", "a de-registration (lifetime 0) is accepted and the tunnel stops", "RFC 6275 10.3.2", None)
def deregistration(ctx: Context) -> str:
    home = plan.PRECOMPUTED_HOMES[3]
    _register(ctx, home, COA1)
    pkt, ts = _reg(ctx, home, COA1, lifetime=0)
    ba = _ba(ctx, pkt, COA1, "the de-registration")
    if ba.status != 0 or ba.lifetime != 0:
        raise CheckFailed(f"BA {ba.status} lifetime {ba.lifetime}, expected 0 and 0")
    if _tunnelled_to(ctx, home, COA1):
        raise CheckFailed("packets for the home address are still tunnelled after the de-registration")
    return "BA 0 lifetime 0; tunnel stopped"


@check("HA-KEEPS-SERVING", "ha", "after malformed Mobility Headers and everything above the home agent still "
       "accepts a registration", "RFC 6275 10.3.1", None)
def keeps_serving(ctx: Context) -> str:
    ctx.alive()
    survived = ctx.survives_malformed(COA2, HA)
    seq = _register(ctx, plan.PRECOMPUTED_HOMES[0], COA2)
    return f"{survived}; BA 0 for {seq}"
