"""Mobile-node checks: movement and registration (RFC 6275 11), RFC 4449 with a precomputed
correspondent, return routability with another, and the mobile node's reactions to Binding
Acknowledgements, Binding Errors and Binding Refresh Requests.

The tester plays the routers (Router Advertisements from ``plan.ROUTERS``), the home agent
(RFC 4285-authenticated BAs) and two correspondents: one with preconfigured data
(``plan.MN_CN_PRECOMPUTED``) and one without (``plan.MN_CN_RR``). The mobile node's care-of
address on a prefix is the EUI-64 address of its MAC.
"""

from __future__ import annotations

import os
import time

from testbed.experiments.conformance import plan
from testbed.experiments.conformance.context import ANSWER_S, SILENCE_S, CheckFailed, Context, check
from testbed.lab import craft
from testbed.lab.tester import Heard

HOME, HA, CN, CN_RR = plan.MN_HOME, plan.MN_HOME_AGENT, plan.MN_CN_PRECOMPUTED, plan.MN_CN_RR
FIRST_REG_S = 1.5  # InitialBindackTimeoutFirstReg (RFC 6275 12)
RETRANSMIT_S = 1.0  # INITIAL_BINDACK_TIMEOUT (RFC 6275 12)
# Slack on a retransmission timer measured on the wire: the agent's timer, its wake-up and
# the frame's way to the tester; generous because the host may pause the VM for 110 ms.
TIMER_SLACK_S = 0.35
# How long MN-10 waits for the BU a Binding Refresh Request draws before it sends the next.
BRR_WAIT_S = 0.1
H_FLAG, A_FLAG = 0x4000, 0x8000


class MobileState:
    """Where the tester last told the mobile node it is, and what it last heard from it."""

    def __init__(self) -> None:
        self.router = -1
        self.moves = 0


def _state(ctx: Context) -> MobileState:
    if not hasattr(ctx, "_mobile"):
        ctx._mobile = MobileState()  # type: ignore[attr-defined]
    return ctx._mobile  # type: ignore[attr-defined]


def coa_on(ctx: Context, router: int) -> str:
    return plan.eui64(plan.ROUTERS[router][1], ctx.iut.mac)


def move(ctx: Context, router: int | None = None) -> tuple[int, str]:
    """Advertise another router's prefix: the mobile node moves there. (send time, care-of address)"""
    st = _state(ctx)
    if router is None:
        router = (st.router + 1) % len(plan.ROUTERS)
    st.router, st.moves = router, st.moves + 1
    address, prefix = plan.ROUTERS[router]
    t = ctx.send(craft.router_advertisement(address, ctx.wire.mac, prefix))
    return t, coa_on(ctx, router)


def bus(ctx: Context, since: int, dst: str, deadline_s: float = ANSWER_S, count: int | None = 1) -> list[Heard]:
    return ctx.heard(since, deadline_s, count, mh_type=craft.BU, final_dst=dst)


def home_bu(ctx: Context, since: int, coa: str) -> Heard:
    got = bus(ctx, since, HA)
    if not got:
        raise CheckFailed(f"no home registration (BU to the home agent {HA}) within {ANSWER_S:g} s of the move")
    bu = got[0]
    sa = ctx.mn_ha[HOME]
    problems = []
    if bu.src != craft.a16(coa):
        problems.append(f"source {craft.text(bu.src)}, not the care-of address {coa}")
    if bu.home_address != craft.a16(HOME):
        problems.append("no Home Address option with the home address")
    if not bu.bu_flags & H_FLAG or not bu.bu_flags & A_FLAG:
        problems.append("H and A flags not both set")
    if bu.replay_timestamp() is None:
        problems.append("no Mobility Message Replay Protection option (RFC 4285)")
    if not bu.mn_ha_valid(sa.key, craft.a16(coa), craft.a16(HOME)):
        problems.append("MN-HA authenticator missing or wrong (RFC 4285)")
    if problems:
        raise CheckFailed("home registration: " + "; ".join(problems))
    return bu


def answer_home(ctx: Context, bu: Heard, *, status: int = 0, auth_ok: bool = True) -> None:
    sa = ctx.mn_ha[HOME]
    ba = craft.binding_ack(HA, bu.src, home=HOME, status=status, seq=bu.seq, lifetime=bu.lifetime if status == 0 else 0,
                           timestamp=bu.replay_timestamp(), mn_ha=sa)
    if not auth_ok:
        ba = craft._set_tail(ba, bytes(12))
    ctx.send(ba)


def cn_bu(ctx: Context, since: int, coa: str, deadline_s: float = ANSWER_S) -> Heard:
    got = bus(ctx, since, CN, deadline_s)
    if not got:
        raise CheckFailed(f"no BU to the precomputed correspondent {CN} within {deadline_s:g} s")
    bu = got[0]
    key = ctx.pairs[HOME].kbm(craft.a16(coa))
    if bu.src != craft.a16(coa) or not bu.bad_valid(key, craft.a16(coa), craft.a16(CN)):
        raise CheckFailed("the BU to the precomputed correspondent is not from the care-of address, or not "
                          "authenticated with the precomputed Kbm (Binding Authorization Data)")
    return bu


def answer_cn(ctx: Context, bu: Heard, coa: str, *, status: int = 0, seq: int | None = None,
              authenticated: bool = True) -> None:
    key = ctx.pairs[HOME].kbm(craft.a16(coa)) if authenticated else None
    ctx.send(craft.binding_ack(CN, coa, home=HOME, status=status, seq=bu.seq if seq is None else seq,
                               lifetime=bu.lifetime if status == 0 else 0, key=key))


def bind(ctx: Context, router: int | None = None) -> tuple[str, Heard]:
    """Move, answer the home registration and the precomputed correspondent's BU with BA 0."""
    t, coa = move(ctx, router)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)
    answer_cn(ctx, bu, coa)
    return coa, bu


def no_rr_towards(ctx: Context, since: int, peer: str) -> None:
    hotis = [h for h in ctx.heard(since, 0, None, nh=craft.IPV6_IN_IPV6, inner_mh_type=craft.HOTI)
             if h.inner().final_destination == craft.a16(peer)]
    cotis = ctx.heard(since, 0, None, mh_type=craft.COTI, dst=peer)
    if hotis or cotis:
        raise CheckFailed(f"the mobile node started return routability with the precomputed correspondent {peer} "
                          f"({len(hotis)} HoTI, {len(cotis)} CoTI)")


# ------------------------------------------------------------------ checks, in the order they run


@check("MN-01", "mn", "the first home registration is retransmitted, not before InitialBindackTimeoutFirstReg "
       "(1.5 s)", "RFC 6275 11.8, 12", None)
def first_registration_timeout(ctx: Context) -> str:
    t, coa = move(ctx, 0)
    first = home_bu(ctx, t, coa)
    again = bus(ctx, first.t_ns + 1, HA, FIRST_REG_S + 2.0)
    if not again:
        raise CheckFailed("the unanswered first home registration was never retransmitted")
    gap = (again[0].t_ns - first.t_ns) / 1e9
    if gap < FIRST_REG_S - 0.05 or gap > FIRST_REG_S + 1.0 + TIMER_SLACK_S:
        raise CheckFailed(f"retransmitted after {gap:.2f} s (expected {FIRST_REG_S} s)")
    if again[0].seq == first.seq:
        raise CheckFailed("the retransmission reused the sequence number")
    answer_home(ctx, home_bu(ctx, first.t_ns + 1, coa))
    bu = cn_bu(ctx, t, coa)
    answer_cn(ctx, bu, coa)
    return f"retransmitted after {gap:.2f} s with a new sequence number"


@check("MN-02", "mn", "on a new prefix the mobile node registers with its home agent: BU from the care-of address "
       "with H and A, Home Address option, RFC 4285 replay protection and MN-HA authenticator",
       "RFC 6275 11.5.4, 11.7.1; RFC 4285 5", None)
def home_registration(ctx: Context) -> str:
    t, coa = move(ctx, 1)
    bu = home_bu(ctx, t, coa)
    answer_home(ctx, bu)
    answer_cn(ctx, cn_bu(ctx, t, coa), coa)
    return f"home registration from {coa}, seq {bu.seq}, authenticated"


@check("MN-03", "mn", "with a precomputed correspondent: a BU with Binding Authorization Data from the precomputed "
       "Kbm, no Nonce Indices, no return routability", "RFC 4449 4, 5", "R5, R6, R15")
def precomputed_bu(ctx: Context) -> str:
    t, coa = move(ctx, 2)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)
    if bu.option(craft.OPT_NONCE) is not None:
        raise CheckFailed("the BU to the precomputed correspondent carries Nonce Indices (SHOULD NOT, RFC 4449 4)")
    answer_cn(ctx, bu, coa)
    time.sleep(SILENCE_S)
    no_rr_towards(ctx, t, CN)
    return f"BU {bu.seq} with a valid BAD and no Nonce Indices; no HoTI/CoTI"


@check("MN-04", "mn", "with a correspondent it has no preconfigured data for, the mobile node uses return "
       "routability: HoTI reverse-tunnelled through the home agent, CoTI direct, then a BU with Nonce Indices "
       "and the Kbm of the tokens", "RFC 4449 5; RFC 6275 11.6.1, 5.2.6", "R12")
def return_routability_default(ctx: Context) -> str:
    t, coa = move(ctx, 0)
    answer_home(ctx, home_bu(ctx, t, coa))
    answer_cn(ctx, cn_bu(ctx, t, coa), coa)
    # from this care-of address: a HoTI of the move before may still be on its way
    coti = ctx.heard(t, ANSWER_S, 1, mh_type=craft.COTI, dst=CN_RR, src=coa)
    hoti = ctx.heard(t, ANSWER_S, 1, nh=craft.IPV6_IN_IPV6, dst=HA, inner_mh_type=craft.HOTI, src=coa)
    if not coti or not hoti:
        raise CheckFailed(f"no {'CoTI' if not coti else 'reverse-tunnelled HoTI'} for the correspondent without "
                          "preconfigured data")
    inner = hoti[0].inner()
    if inner.src != craft.a16(HOME) or hoti[0].src != craft.a16(coa):
        raise CheckFailed("the HoTI is not from the home address inside a tunnel from the care-of address")
    home_token, careof_token = os.urandom(8), os.urandom(8)
    now = ctx.send(craft.tunnelled(HA, coa, craft.home_test(CN_RR, HOME, cookie=inner.cookie, token=home_token, index=7)),
                   craft.careof_test(CN_RR, coa, cookie=coti[0].cookie, token=careof_token, index=9))
    got = bus(ctx, now, CN_RR)
    if not got:
        raise CheckFailed("no BU to the correspondent after HoT and CoT")
    bu = got[0]
    nonce = bu.option(craft.OPT_NONCE)
    key = craft.kbm_from_tokens(home_token, careof_token)
    if nonce is None or nonce != bytes((0, 7, 0, 9)):
        raise CheckFailed("the BU does not carry the Nonce Indices of the HoT and CoT")
    if not bu.bad_valid(key, craft.a16(coa), craft.a16(CN_RR)):
        raise CheckFailed("the BU is not authenticated with the Kbm of the HoT's and CoT's tokens")
    ctx.send(craft.binding_ack(CN_RR, coa, home=HOME, status=0, seq=bu.seq, lifetime=bu.lifetime, key=key))
    return "HoTI through the home agent, CoTI, then a BU with the tokens' Kbm"


@check("MN-05", "mn", "an authenticated BA 0 ends the BU's retransmissions", "RFC 6275 11.7.3, 11.8", None)
def ba_stops_retransmission(ctx: Context) -> str:
    coa, bu = bind(ctx, 1)
    again = bus(ctx, bu.t_ns + 1, CN, RETRANSMIT_S + TIMER_SLACK_S + SILENCE_S, None)
    if again:
        raise CheckFailed(f"the mobile node sent another BU ({again[0].seq}) after BA 0")
    return "no BU to the correspondent for 1.85 s after its BA 0"


@check("MN-06", "mn", "a BA without Binding Authorization Data from a precomputed correspondent is ignored: the BU "
       "is retransmitted", "RFC 6275 11.7.3; RFC 4449 4", "R7, R15")
def unauthenticated_ba_ignored(ctx: Context) -> str:
    t, coa = move(ctx, 2)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)
    answer_cn(ctx, bu, coa, authenticated=False)
    again = bus(ctx, bu.t_ns + 1, CN, RETRANSMIT_S + TIMER_SLACK_S + 1.0)
    if not again:
        raise CheckFailed("after an unauthenticated BA 0 the mobile node did not retransmit its BU")
    answer_cn(ctx, again[0], coa)
    return f"BU {bu.seq} retransmitted as {again[0].seq} after the unauthenticated BA"


@check("MN-07", "mn", "an authenticated BA 135 makes the mobile node go on after the sequence number it carries",
       "RFC 6275 11.7.3", "R13")
def resynchronise(ctx: Context) -> str:
    t, coa = move(ctx, 0)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)
    last = (bu.seq + 500) & 0xFFFF
    answer_cn(ctx, bu, coa, status=135, seq=last)
    got = bus(ctx, bu.t_ns + 1, CN, ANSWER_S)
    if not got:
        raise CheckFailed("no new BU after BA 135")
    if got[0].seq != (last + 1) & 0xFFFF:
        raise CheckFailed(f"the BU after BA 135 ({last}) has sequence number {got[0].seq}, not {last + 1}")
    answer_cn(ctx, got[0], coa)
    return f"BA 135 with {last}: the next BU is {got[0].seq}"


@check("MN-08", "mn", "no bidding down: Binding Errors, and unauthenticated BAs 136, 137, 138 from the precomputed "
       "correspondent never make the mobile node start return routability with it", "RFC 4449 5", "R15")
def no_bidding_down(ctx: Context) -> str:
    t, coa = move(ctx, 1)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)
    for status in (136, 137, 138):
        answer_cn(ctx, bu, coa, status=status, authenticated=False)
    ctx.send(craft.binding_error(CN, coa, status=1, home=HOME), craft.binding_error(CN, coa, status=2, home=HOME))
    again = bus(ctx, bu.t_ns + 1, CN, RETRANSMIT_S + TIMER_SLACK_S + 1.0)
    no_rr_towards(ctx, t, CN)
    if not again:
        raise CheckFailed("after the bidding-down attempt the mobile node stopped signalling to the correspondent")
    if again[0].option(craft.OPT_NONCE) is not None:
        raise CheckFailed("the BU after the bidding-down attempt carries Nonce Indices")
    answer_cn(ctx, again[0], coa)
    return "no HoTI/CoTI; the BU was retransmitted with BAD"


@check("MN-09", "mn", "a Binding Refresh Request from a correspondent the mobile node is bound with draws a BU",
       "RFC 6275 11.7.4", None)
def refresh_request(ctx: Context) -> str:
    coa, _ = bind(ctx, 2)
    time.sleep(1.1)  # at most three BUs a second to one node (RFC 6275 11.8): start from a clean window
    t = ctx.send(craft.binding_refresh_request(CN, coa, home=HOME))
    got = bus(ctx, t, CN)
    if not got:
        raise CheckFailed("no BU after the Binding Refresh Request")
    answer_cn(ctx, got[0], coa)
    return f"BU {got[0].seq} after the BRR"


@check("MN-10", "mn", "at most MAX_UPDATE_RATE (3) BUs a second to one correspondent: six Binding Refresh Requests "
       "in under a second, each BU answered at once (so the mobile node is bound for the next one), draw at most "
       "three within the second", "RFC 6275 11.8", None)
def rate_limit(ctx: Context) -> str:
    coa, _ = bind(ctx, 0)
    time.sleep(1.1)
    brr = craft.binding_refresh_request(CN, coa, home=HOME)
    start = None
    answered: set[int] = set()
    for _ in range(6):
        t = ctx.send(brr)
        start = start or t
        # a BU still outstanding when the BRR comes is no reason for another: answer each one
        for h in bus(ctx, t, CN, BRR_WAIT_S, None):
            if h.seq not in answered:
                answered.add(h.seq)
                answer_cn(ctx, h, coa)
    got = bus(ctx, start, CN, 0, None)
    if not got:
        raise CheckFailed("no BU at all after six Binding Refresh Requests")
    first = got[0].t_ns
    within = [h for h in got if h.t_ns - first < 1_000_000_000]
    if len(within) > 3:
        raise CheckFailed(f"{len(within)} BUs to the correspondent within one second")
    return f"{len(within)} BUs within the second after six BRRs, each answered with BA 0"


@check("MN-11", "mn", "a home BA with a wrong MN-HA authenticator is ignored: the home registration is "
       "retransmitted", "RFC 4285 6; RFC 6275 11.7.3", None)
def forged_home_ba(ctx: Context) -> str:
    t, coa = move(ctx, 1)
    bu = home_bu(ctx, t, coa)
    answer_home(ctx, bu, auth_ok=False)
    again = bus(ctx, bu.t_ns + 1, HA, FIRST_REG_S + TIMER_SLACK_S + 1.0)
    if not again:
        raise CheckFailed("after a home BA with a wrong authenticator the home registration was not retransmitted")
    answer_home(ctx, again[0])
    answer_cn(ctx, cn_bu(ctx, t, coa), coa)
    return f"home BU {bu.seq} retransmitted as {again[0].seq}"


@check("MN-KEEPS-SERVING", "mn", "after malformed Mobility Headers and everything above the mobile node still moves "
       "and binds", "RFC 6275 11.5", None)
def keeps_serving(ctx: Context) -> str:
    ctx.alive()
    st = _state(ctx)
    survived = ctx.survives_malformed(CN, coa_on(ctx, st.router) if st.router >= 0 else HOME)
    coa, bu = bind(ctx, 2)
    return f"{survived}; bound at {coa} (BU {bu.seq})"
