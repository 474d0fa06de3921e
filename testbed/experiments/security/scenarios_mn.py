"""Attacks on a mobile node (our MN agent in the lab's node under test): bidding down (R15),
the key's end of life (R13) and return routability as the default (R12). The tester plays
the access routers, the home agent and the correspondents, and the attacker who sends
Binding Errors, unauthenticated BAs 136-138 and a spoofed HoT to the mobile node.
"""

from __future__ import annotations

import os
import time

from testbed.experiments.conformance import checks_mn, plan
from testbed.experiments.conformance.checks_mn import answer_cn, answer_home, bus, cn_bu, home_bu, move, no_rr_towards
from testbed.experiments.conformance.context import ANSWER_S, CheckFailed, Context, check
from testbed.experiments.security.scenarios_cn import SCENARIOS, _new_pair
from testbed.lab import craft

HOME, CN = plan.MN_HOME, plan.MN_CN_PRECOMPUTED


def scenario(id, title, requirement):
    return check(id, "mn", title, requirement, None, registry=SCENARIOS)


@scenario("bidding-down-mn", "Binding Errors, unauthenticated BAs 136, 137, 138 and a spoofed HoT sent to the mobile "
          "node never make it start return routability with its precomputed correspondent; it keeps signing its "
          "BUs with the precomputed Kbm", "R15")
def bidding_down(ctx: Context) -> str:
    t, coa = move(ctx, 1)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)
    sent = []
    for status in (136, 137, 138):
        answer_cn(ctx, bu, coa, status=status, authenticated=False)
        sent.append(f"BA {status}")
    ctx.send(craft.binding_error(CN, coa, status=1, home=HOME), craft.binding_error(CN, coa, status=2, home=HOME))
    sent += ["BE 1", "BE 2"]
    hot = craft.home_test(CN, HOME, cookie=os.urandom(8), token=os.urandom(8), index=1)
    ctx.send(craft.tunnelled(plan.MN_HOME_AGENT, coa, hot))
    sent.append("spoofed HoT (tunnelled as from the home agent)")
    again = bus(ctx, bu.t_ns + 1, CN, checks_mn.RETRANSMIT_S + checks_mn.TIMER_SLACK_S + 1.0)
    no_rr_towards(ctx, t, CN)
    if not again:
        raise CheckFailed("after the bidding-down attempt the mobile node stopped signalling to the correspondent")
    if again[0].option(craft.OPT_NONCE) is not None:
        raise CheckFailed("the BU after the bidding-down attempt carries Nonce Indices")
    if not again[0].bad_valid(ctx.pairs[HOME].kbm(craft.a16(coa)), craft.a16(coa), craft.a16(CN)):
        raise CheckFailed("the BU after the bidding-down attempt is not signed with the precomputed Kbm")
    answer_cn(ctx, again[0], coa)
    return f"sent {', '.join(sent)}: no HoTI or CoTI to {CN}; the BU was sent again ({again[0].seq}) with the precomputed Kbm"


@scenario("rr-default-mn", "with a correspondent it has no preconfigured data for, the mobile node uses return "
          "routability", "R12")
def rr_default_mn(ctx: Context) -> str:
    return checks_mn.return_routability_default(ctx)


@scenario("key-end-of-life-mn", "the mobile node stops using a key whose sequence number advance would pass 2^15 "
          "(it reports rekey_required and sends no more BUs with it); after a rekey it binds again", "R13")
def key_end_of_life(ctx: Context) -> str:
    t, coa = move(ctx)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)
    jumps = []
    for step in (16000, 16000):
        last = (bu.seq + step) & 0xFFFF
        answer_cn(ctx, bu, coa, status=135, seq=last)
        jumps.append(last)
        got = bus(ctx, bu.t_ns + 1, CN, ANSWER_S)
        if not got:
            raise CheckFailed(f"no BU after BA 135 with {last}")
        bu = got[0]
    # the next BA 135 would carry the advance past 2^15
    last = (bu.seq + 2000) & 0xFFFF
    mark = ctx.wire.now()
    answer_cn(ctx, bu, coa, status=135, seq=last)
    events = ctx.node_events(mark, "rekey_required")
    if not events:
        raise CheckFailed("the mobile node did not report rekey_required")
    late = bus(ctx, mark, CN, checks_mn.RETRANSMIT_S + checks_mn.TIMER_SLACK_S + 0.5, None)
    if late:
        raise CheckFailed(f"the mobile node sent BU {late[0].seq} with the used-up key")
    _new_pair(ctx, HOME, CN)
    ctx.trace.append("-- new preconfigured data written for the mobile node, its agent reloaded its keys --")
    time.sleep(1.1)  # MAX_UPDATE_RATE: start from a clean second
    t, coa = move(ctx)
    answer_home(ctx, home_bu(ctx, t, coa))
    bu = cn_bu(ctx, t, coa)  # signed with the new key
    answer_cn(ctx, bu, coa)
    return (f"BA 135 jumps to {jumps[0]} and {jumps[1]}, then one more: rekey_required "
            f"(advance {events[0].get('advance')}), no BU since; after the rekey BU {bu.seq} with the new key")
