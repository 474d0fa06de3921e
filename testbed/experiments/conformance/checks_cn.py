"""Correspondent-node checks: Binding Update processing (RFC 6275 9.2, 9.3, 9.5; RFC 4449).

The tester plays mobile nodes: precomputed peers (``plan.PEERS``, each with preconfigured
data the node under test was given) and return-routability peers (``plan.RR_HOMES``, no
data). Profile ``cn`` checks run once when the target claims either correspondent profile.
"""

from __future__ import annotations

import os

from testbed.experiments.conformance import plan
from testbed.experiments.conformance.context import (
    ANSWER_S,
    SILENCE_S,
    CheckFailed,
    Context,
    NotApplicable,
    check,
)
from testbed.lab import craft

P = plan.PEERS
COA1, COA2, COA3 = plan.CAREOF[0], plan.CAREOF[1], plan.CAREOF[2]
CN = plan.CN_ADDRESS
RR_MAX_UNITS = 105  # MAX_RR_BINDING_LIFETIME 420 s in units of 4 s (RFC 6275 12)


def _bind(ctx: Context, home: str, coa: str = COA1, **kw) -> int:
    """Bind ``home`` at ``coa`` (BA 0 required); the sequence number used."""
    seq = ctx.next_seq(home)
    pair = ctx.pairs[home]
    ctx.expect_ba(ctx.bu(home, seq=seq, coa=coa, **kw), home, coa, status=0, seq=seq,
                  key=pair.kbm(craft.a16(coa)), what=f"the BU of {home} at {coa}")
    return seq


def _not_bound(ctx: Context, home: str, coa: str, what: str) -> None:
    if ctx.bound_at(home, coa):
        raise CheckFailed(f"{what}: the node now uses a binding of {home} at {coa}")


# ------------------------------------------------------------------ RFC 4449: precomputed Kbm


@check("CN-4449-01", "rfc4449", "a BU authenticated with the precomputed Kbm is accepted: BA 0 to the care-of "
       "address with a type 2 routing header, the BU's sequence number, authenticated with the same Kbm; the "
       "binding is then in use", "RFC 4449 4; RFC 6275 9.5.1, 9.5.4, 6.1.8, 9.3.1", "R5, R7")
def accept(ctx: Context) -> str:
    seq = _bind(ctx, P.main, COA1)
    if not ctx.bound_at(P.main, COA1):
        raise CheckFailed(f"BA 0 came, but a packet with a Home Address option from {COA1} still draws a Binding Error")
    return f"BA 0 for sequence number {seq}, authenticated; the binding at {COA1} is in use"


@check("CN-4449-02", "rfc4449", "a BU from a precomputed peer without Binding Authorization Data is dropped "
       "silently", "RFC 4449 4", "R5")
def no_bad(ctx: Context) -> str:
    _bind(ctx, P.main, COA1)
    ctx.expect_silence(ctx.bu(P.main, coa=COA2, bad=False), "a BU without BAD")
    _not_bound(ctx, P.main, COA2, "after a BU without BAD")
    return "no answer, binding unchanged"


@check("CN-4449-03", "rfc4449", "a BU with a wrong authenticator is dropped silently (no BA, no Binding Error)",
       "RFC 6275 9.5.1; RFC 4449 4", "R5")
def wrong_key(ctx: Context) -> str:
    _bind(ctx, P.main, COA1)
    ctx.expect_silence(ctx.bu(P.main, coa=COA2, key=os.urandom(20)), "a BU with a wrong authenticator")
    _not_bound(ctx, P.main, COA2, "after a BU with a wrong authenticator")
    return "no answer, binding unchanged"


@check("CN-4449-04", "rfc4449", "a BU whose Binding Authorization Data is not the last option is dropped, however "
       "right its authenticator over what precedes it", "RFC 6275 6.2.7, 9.5.1", "R5")
def bad_not_last(ctx: Context) -> str:
    _bind(ctx, P.main, COA1)
    # right in every other way: authenticated for the Alternate CoA that follows the BAD, so
    # only the layout rule can refuse it
    packet = craft.binding_update(COA2, CN, seq=ctx.next_seq(P.main), home=P.main,
                                  key=ctx.pairs[P.main].kbm(craft.a16(COA3)), careof=COA3,
                                  after_bad=[craft.MIP6OptAltCoA(acoa=COA3)])
    ctx.expect_silence(packet, "a BU with an option after BAD")
    for coa in (COA2, COA3):
        _not_bound(ctx, P.main, coa, "after a BU with an option after BAD")
    return "no answer, binding unchanged"


@check("CN-4449-05", "rfc4449", "a BU for one mobile node authenticated with another's Kbm is dropped",
       "RFC 4449 5", "R5, R10")
def other_mn(ctx: Context) -> str:
    _bind(ctx, P.main, COA1)
    key = ctx.pairs[P.other].kbm(craft.a16(COA2))
    ctx.expect_silence(ctx.bu(P.main, coa=COA2, key=key), f"a BU for {P.main} with {P.other}'s Kbm")
    _not_bound(ctx, P.main, COA2, "after a BU with another mobile node's Kbm")
    return "no answer, binding unchanged"


@check("CN-4449-06", "rfc4449", "the indices of a Nonce Indices option are ignored; the authenticator covers the "
       "Mobility Header as received", "RFC 4449 4", "R6")
def nonce_indices_ignored(ctx: Context) -> str:
    seq = ctx.next_seq(P.main)
    pkt = ctx.bu(P.main, seq=seq, coa=COA2, options=[craft.MIP6OptNonceIndices(olen=4, hni=0xBEEF, coni=0xCAFE)])
    ctx.expect_ba(pkt, P.main, COA2, status=0, seq=seq, key=ctx.pairs[P.main].kbm(craft.a16(COA2)))
    return "BA 0 for a BU carrying made-up nonce indices"


@check("CN-4449-07", "rfc4449", "a BU whose sequence number is not greater than the last accepted is refused with "
       "BA 135 carrying the last accepted number, authenticated", "RFC 6275 9.5.1; RFC 4449 4", "R4, R14, R7")
def stale_sequence(ctx: Context) -> str:
    seq = _bind(ctx, P.main, COA1)
    replay = ctx.bu(P.main, seq=seq, coa=COA2)
    ctx.seq[P.main] = seq
    ctx.expect_ba(replay, P.main, COA2, status=135, seq=seq, key=ctx.pairs[P.main].kbm(craft.a16(COA2)),
                  what="a BU repeating the last number")
    older = ctx.bu(P.main, seq=(seq - 5) & 0xFFFF, coa=COA2)
    ctx.expect_ba(older, P.main, COA2, status=135, seq=seq, key=ctx.pairs[P.main].kbm(craft.a16(COA2)),
                  what="a BU with an older number")
    _not_bound(ctx, P.main, COA2, "after refused BUs")
    return f"BA 135 carrying {seq} for the same and an older number; binding unchanged"


@check("CN-4449-08", "rfc4449", "a rejected BU is answered even when its A flag is clear (BA 135)",
       "RFC 6275 9.5.1, 9.5.4", "R4")
def reject_without_ack(ctx: Context) -> str:
    seq = _bind(ctx, P.main, COA1)
    ctx.expect_ba(ctx.bu(P.main, seq=seq, coa=COA1, ack=False), P.main, COA1, status=135, seq=seq,
                  key=ctx.pairs[P.main].kbm(craft.a16(COA1)), what="a stale BU with A=0")
    return "BA 135 for a stale BU without the A flag"


@check("CN-4449-09", "rfc4449", "an accepted BU without the A flag gets no BA, and the binding is in use",
       "RFC 6275 9.5.4", None, level="SHOULD NOT")
def accept_without_ack(ctx: Context) -> str:
    _bind(ctx, P.main, COA1)
    ctx.expect_silence(ctx.bu(P.main, coa=COA2, ack=False), "an accepted BU with A=0", mh_type=craft.BA)
    if not ctx.bound_at(P.main, COA2):
        raise CheckFailed(f"the BU with A=0 was not acted on: no binding at {COA2}")
    return f"no BA; binding at {COA2} in use"


@check("CN-4449-10", "rfc4449", "sequence numbers compare modulo 2^16: last+32768 is not greater (BA 135)",
       "RFC 6275 9.5.1", "R14")
def half_window(ctx: Context) -> str:
    seq = _bind(ctx, P.main, COA1)
    far = (seq + 32768) & 0xFFFF
    ctx.expect_ba(ctx.bu(P.main, seq=far, coa=COA2), P.main, COA2, status=135, seq=seq,
                  key=ctx.pairs[P.main].kbm(craft.a16(COA2)), what=f"a BU numbered {far} after {seq}")
    ctx.seq[P.main] = seq
    return f"BA 135 for {far} after {seq}"


@check("CN-4449-11", "rfc4449", "sequence numbers wrap: 65534, 65535, 0, 1 are each accepted", "RFC 6275 9.5.1", None)
def wrap(ctx: Context) -> str:
    pair = ctx.pairs[P.wrap]
    for seq in (65534, 65535, 0, 1):
        ctx.expect_ba(ctx.bu(P.wrap, seq=seq, coa=COA1), P.wrap, COA1, status=0, seq=seq,
                      key=pair.kbm(craft.a16(COA1)), what=f"BU {seq}")
    ctx.seq[P.wrap] = 1
    return "BA 0 for 65534, 65535, 0 and 1"


@check("CN-4449-12", "rfc4449", "the last accepted sequence number survives a crash (SIGKILL) and a restart: the "
       "captured BU replayed afterwards is refused", "RFC 4449 4", "R4, R14")
def survives_restart(ctx: Context) -> str:
    if not ctx.iut.target.restartable:
        raise NotApplicable("the target file says it cannot be restarted")
    pair = ctx.pairs[P.restart]
    seq = ctx.next_seq(P.restart, 100)
    captured = ctx.bu(P.restart, seq=seq, coa=COA1)
    ctx.expect_ba(captured, P.restart, COA1, status=0, seq=seq, key=pair.kbm(craft.a16(COA1)))
    ctx.iut.restart()
    ctx.trace.append("-- the node under test was killed (SIGKILL) and started again --")
    ba = ctx.ask(captured, mh_type=craft.BA, dst=COA1)
    if ba is not None and ba.status == 0:
        raise CheckFailed(f"after the restart the replayed BU {seq} was accepted (BA 0)")
    if ba is None:
        raise CheckFailed(f"after the restart the replayed BU {seq} drew no BA (135 expected)")
    if ba.status != 135 or ba.seq != seq:
        raise CheckFailed(f"after the restart the replayed BU drew BA {ba.status} with {ba.seq}, not 135 with {seq}")
    ctx.expect_ba(ctx.bu(P.restart, coa=COA2), P.restart, COA2, status=0, seq=seq + 1,
                  key=pair.kbm(craft.a16(COA2)), what="the next BU after the restart")
    return f"replay of {seq} after the restart: BA 135 with {seq}; BU {seq + 1}: BA 0"


@check("CN-4449-13", "rfc4449", "a precomputed binding's lifetime is policy, not capped at 420 s",
       "RFC 4449 5", "R16")
def precomputed_lifetime(ctx: Context) -> str:
    seq = ctx.next_seq(P.main)
    ba = ctx.expect_ba(ctx.bu(P.main, seq=seq, coa=COA1, lifetime=1000), P.main, COA1, status=0, seq=seq,
                       key=ctx.pairs[P.main].kbm(craft.a16(COA1)))
    want = min(1000, ctx.max_lifetime) if ctx.max_lifetime else None
    if ba.lifetime > 1000:
        raise CheckFailed(f"granted {ba.lifetime} units, more than the 1000 asked for")
    if want is not None and ba.lifetime != want:
        raise CheckFailed(f"granted {ba.lifetime} units; the target's stated policy gives {want}")
    if ba.lifetime <= RR_MAX_UNITS:
        raise CheckFailed(f"granted {ba.lifetime} units: the 420 s cap of return routability applied to a "
                          "precomputed Kbm")
    return f"asked 1000 units (4000 s), granted {ba.lifetime}"


@check("CN-4449-14", "rfc4449", "a de-registration (lifetime 0, authenticated with SHA1(home keygen token)) deletes "
       "the binding: BA 0 with lifetime 0", "RFC 6275 9.5.1, 9.5.3, 5.2.6; RFC 4449 3", "R2")
def deregistration(ctx: Context) -> str:
    pair = ctx.pairs[P.dereg]
    _bind(ctx, P.dereg, COA1)
    seq = ctx.next_seq(P.dereg)
    ba = ctx.expect_ba(ctx.bu(P.dereg, seq=seq, coa=COA1, lifetime=0), P.dereg, COA1, status=0, seq=seq,
                       key=pair.kbm(None), what="the de-registration")
    if ba.lifetime != 0:
        raise CheckFailed(f"the de-registration's BA grants {ba.lifetime} units, not 0")
    if ctx.bound_at(P.dereg, COA1):
        raise CheckFailed("after the de-registration the binding is still in use")
    return "BA 0 lifetime 0, authenticated with the de-registration Kbm; binding gone"


@check("CN-4449-15", "rfc4449", "a home registration sent to a correspondent is refused: BA 131 without a binding, "
       "BA 139 with one", "RFC 6275 9.5.1", None)
def home_registration(ctx: Context) -> str:
    home = P.home_reg
    seq = ctx.next_seq(home)
    first = ctx.ask(ctx.bu(home, seq=seq, coa=COA1, home_reg=True), mh_type=craft.BA, dst=COA1)
    if first is None or first.status != 131:
        raise CheckFailed(f"H flag, no binding: {'no BA' if first is None else f'BA {first.status}'}, expected 131")
    _bind(ctx, home, COA1)
    seq = ctx.next_seq(home)
    second = ctx.ask(ctx.bu(home, seq=seq, coa=COA2, home_reg=True), mh_type=craft.BA, dst=COA2)
    if second is None or second.status != 139:
        raise CheckFailed(f"H flag with a binding: {'no BA' if second is None else f'BA {second.status}'}, "
                          "expected 139")
    return "BA 131, then (bound) BA 139"


@check("CN-4449-16", "rfc4449", "no return routability for a precomputed home address: its HoTI gets no HoT",
       "RFC 4449 5", "R15")
def no_rr_for_precomputed(ctx: Context) -> str:
    got = ctx.quiet(craft.home_test_init(P.main, CN, os.urandom(8)), mh_type=craft.HOT)
    if got:
        raise CheckFailed(f"the HoTI of a precomputed home address was answered: {got[0].packet.summary()}")
    ctx.alive()
    return "no HoT"


@check("CN-4449-17", "rfc4449", "the key's life ends when its sequence number has advanced 2^15 in all: a BU "
       "beyond is refused, and a BU captured at the start is not accepted again", "RFC 4449 5; docs/protocol.md R13",
       "R13, R14")
def key_end_of_life(ctx: Context) -> str:
    home, pair = P.r13, ctx.pairs[P.r13]
    captured = ctx.bu(home, seq=1, coa=COA1)
    ctx.expect_ba(captured, home, COA1, status=0, seq=1, key=pair.kbm(craft.a16(COA1)), what="BU 1")
    for seq in (16001, 32001):
        ctx.expect_ba(ctx.bu(home, seq=seq, coa=COA2), home, COA2, status=0, seq=seq,
                      key=pair.kbm(craft.a16(COA2)), what=f"BU {seq}")
    for seq in (40001, 49001):
        got = ctx.quiet(ctx.bu(home, seq=seq, coa=COA2), mh_type=craft.BA, dst=COA2)
        if any(h.status == 0 for h in got):
            raise CheckFailed(f"BU {seq} (a total advance past 2^15) was accepted")
    got = ctx.quiet(captured, mh_type=craft.BA, dst=COA1)
    if any(h.status == 0 for h in got):
        raise CheckFailed("the BU captured at the start was accepted again")
    if ctx.bound_at(home, COA1):
        raise CheckFailed("the binding went back to the care-of address of the captured BU")
    return "1, 16001, 32001 accepted; 40001 and 49001 refused; the replay of 1 refused, binding unchanged"


# ------------------------------------------------------------------ order of the checks


@check("CN-ORDER-1", "rfc4449", "authentication comes before the sequence number: a stale BU with a wrong "
       "authenticator is dropped, not answered with BA 135 (which would tell anyone the last number)",
       "RFC 6275 9.5.1", "R5")
def auth_before_sequence(ctx: Context) -> str:
    seq = _bind(ctx, P.main, COA1)
    ctx.expect_silence(ctx.bu(P.main, seq=seq, coa=COA2, key=os.urandom(20)), "a stale BU with a wrong authenticator")
    ctx.seq[P.main] = seq
    return "silently dropped"


@check("CN-ORDER-2", "rfc4449", "the option layout is checked first: a BU with a duplicate option and a right "
       "authenticator is dropped", "RFC 6275 9.2, 6.2", None)
def layout_first(ctx: Context) -> str:
    _bind(ctx, P.main, COA1)
    opts = [craft.MIP6OptAltCoA(acoa=COA2), craft.MIP6OptAltCoA(acoa=COA2)]
    pkt = ctx.bu(P.main, coa=COA1, options=opts, careof=COA2, key=ctx.pairs[P.main].kbm(craft.a16(COA2)))
    ctx.expect_silence(pkt, "a BU with two Alternate Care-of Address options")
    _not_bound(ctx, P.main, COA2, "after a BU with a duplicate option")
    return "silently dropped"


@check("CN-ORDER-3", "rfc4449", "a home registration is refused before authentication: BA 131 even without "
       "Binding Authorization Data", "RFC 6275 9.5.1", None)
def home_reg_first(ctx: Context) -> str:
    home = P.home_reg
    ba = ctx.ask(ctx.bu(home, coa=COA3, home_reg=True, bad=False), mh_type=craft.BA, dst=COA3)
    if ba is None or ba.status not in (131, 139):
        raise CheckFailed(f"H flag without BAD: {'no BA' if ba is None else f'BA {ba.status}'}, expected 131 or 139")
    return f"BA {ba.status}"


# ------------------------------------------------------------------ any correspondent


@check("CN-BE-1", "cn", "a packet with a Home Address option and no binding draws Binding Error status 1 to its "
       "source, carrying that home address", "RFC 6275 9.3.1, 9.3.3, 6.1.9", None)
def binding_error_1(ctx: Context) -> str:
    home = plan.RR_HOMES[3]
    be = ctx.ask(craft.with_home_address(COA3, CN, home), mh_type=craft.BE, dst=COA3)
    if be is None:
        raise CheckFailed("no Binding Error")
    if be.status != 1 or be.be_home_address != craft.a16(home) or not be.mh_checksum_ok():
        raise CheckFailed(f"Binding Error status {be.status}, home address {craft.text(be.be_home_address or bytes(16))}"
                          f", checksum {'ok' if be.mh_checksum_ok() else 'bad'}")
    return "BE status 1 with the home address"


@check("CN-BE-2", "cn", "an unrecognised Mobility Header type draws Binding Error status 2 (home address field "
       "unspecified when the packet had no Home Address option)", "RFC 6275 9.2, 6.1.9", None)
def binding_error_2(ctx: Context) -> str:
    be = ctx.ask(craft.unknown_mh(COA3, CN, 42), mh_type=craft.BE, dst=COA3)
    if be is None:
        raise CheckFailed("no Binding Error")
    if be.status != 2 or be.be_home_address != bytes(16):
        raise CheckFailed(f"Binding Error status {be.status}, home address {craft.text(be.be_home_address)}")
    return "BE status 2, unspecified home address"


@check("CN-CKSUM", "cn", "a Mobility Header with a wrong checksum is dropped silently", "RFC 6275 9.2", None)
def bad_checksum(ctx: Context) -> str:
    home = P.main if ctx.pairs else plan.RR_HOMES[0]
    pkt = bytearray(ctx.bu(home, coa=COA2))
    off = craft.read(bytes(pkt)).payload_offset
    pkt[off + 4] ^= 0x55
    ctx.expect_silence(bytes(pkt), "a BU with a wrong checksum")
    return "silently dropped"


@check("CN-HDRLEN", "cn", "a Binding Update whose Header Len is too short for its type is dropped, cut short "
       "or followed by the octets of a BU that would be valid", "RFC 6275 9.2", None)
def short_header_len(ctx: Context) -> str:
    home = P.main if ctx.pairs else plan.RR_HOMES[0]
    pkt = craft.read(ctx.bu(home, coa=COA2))
    mh = bytearray(pkt.payload[:8])
    mh[1] = 0  # 8 octets: shorter than a BU's 12
    raw = pkt.raw[: pkt.payload_offset] + bytes(mh)
    raw = raw[:4] + len(raw[40:]).to_bytes(2, "big") + raw[6:]
    got = ctx.quiet(craft._finish(raw), nh=craft.MH, mh_type=craft.BA)
    if got:
        raise CheckFailed(f"a BU with Header Len 0 was answered with {got[0].packet.summary()}")
    # all of a BU behind a Header Len of 0, its checksum and authenticator over every octet:
    # only Header Len makes it malformed
    key = ctx.pairs[home].kbm(craft.a16(COA2)) if ctx.pairs else None
    whole = craft.with_header_len(ctx.bu(home, coa=COA2), 0, key=key, careof=COA2, correspondent=CN)
    got = ctx.quiet(whole, nh=craft.MH, mh_type=craft.BA)
    if got:
        raise CheckFailed(f"a whole BU behind Header Len 0 was answered with {got[0].packet.summary()}")
    ctx.alive()
    return "no BA, cut short or whole behind Header Len 0"


@check("CN-OPT-PP", "cn", "a packet with an unrecognised destination option is discarded: action 01 silently, "
       "action 10 with ICMPv6 Parameter Problem code 2 pointing at the option", "RFC 8200 4.2", None)
def unrecognised_option(ctx: Context) -> str:
    home = P.main if ctx.pairs else plan.RR_HOMES[0]
    quiet = craft.with_destination_option(ctx.bu(home, coa=COA2), 0x7E)
    got = ctx.quiet(quiet, mh_type=craft.BA)
    if got:
        raise CheckFailed("a BU in a packet with an unrecognised option (action 01) was answered")
    loud = craft.with_destination_option(ctx.bu(home, coa=COA2), 0xBE)
    t = ctx.send(loud)
    got = ctx.heard(t, ANSWER_S, 1, icmp_type=4, dst=COA2)
    if not got:
        raise CheckFailed("no ICMPv6 Parameter Problem for an unrecognised option with action 10")
    pp = got[0].packet
    pointer = int.from_bytes(pp.payload[4:8], "big")
    if pp.payload[1] != 2 or pointer >= len(loud) or loud[pointer] != 0xBE:
        raise CheckFailed(f"Parameter Problem code {pp.payload[1]} pointing at octet {pointer}, not at the option")
    if ctx.heard(t, SILENCE_S, None, mh_type=craft.BA):
        raise CheckFailed("the BU in the packet with the unrecognised option was answered too")
    return "action 01: dropped; action 10: Parameter Problem code 2 at the option, BU not processed"


# ------------------------------------------------------------------ return routability


def _rr_bu(ctx: Context, home: str, coa: str, *, seq: int | None = None, lifetime: int = 100, tokens=None,
           indices=None, key=None) -> tuple[bytes, bytes]:
    hi, ht, ci, ct = tokens if tokens is not None else ctx.rr_tokens(home, coa)
    kbm = craft.kbm_from_tokens(ht, None if lifetime == 0 else ct)
    hi, ci = indices if indices is not None else (hi, ci)
    pkt = craft.binding_update(coa, CN, seq=ctx.next_seq(home) if seq is None else seq, lifetime=lifetime,
                               home=home, key=key or kbm,
                               options=[craft.MIP6OptNonceIndices(olen=4, hni=hi, coni=ci)])
    return pkt, kbm


@check("CN-RR-1", "rr", "HoTI and CoTI are answered: HoT to the home address and CoT to the care-of address, "
       "each with its cookie", "RFC 6275 5.2.5, 9.4.1, 9.4.2", "R12")
def rr_tests(ctx: Context) -> str:
    hi, _, ci, _ = ctx.rr_tokens(plan.RR_HOMES[0], COA1)
    return f"HoT (nonce index {hi}) and CoT (nonce index {ci}) with the cookies"


@check("CN-RR-2", "rr", "a BU authenticated with the Kbm of return routability is accepted: BA 0 authenticated "
       "with it, lifetime at most 420 s", "RFC 6275 5.2.6, 9.5.1, 9.5.4", "R12")
def rr_bind(ctx: Context) -> str:
    home = plan.RR_HOMES[0]
    pkt, kbm = _rr_bu(ctx, home, COA1, lifetime=1000)
    ba = ctx.expect_ba(pkt, home, COA1, status=0, seq=ctx.seq[home], key=kbm)
    if ba.lifetime > RR_MAX_UNITS:
        raise CheckFailed(f"granted {ba.lifetime} units to a return-routability binding (at most {RR_MAX_UNITS})")
    if not ctx.bound_at(home, COA1):
        raise CheckFailed("BA 0 came, but the binding is not in use")
    return f"BA 0, lifetime {ba.lifetime} units (asked 1000)"


@check("CN-RR-3", "rr", "a return-routability BU without a Nonce Indices option is dropped", "RFC 6275 9.5.1", None)
def rr_no_indices(ctx: Context) -> str:
    home = plan.RR_HOMES[1]
    hi, ht, ci, ct = ctx.rr_tokens(home, COA1)
    pkt = craft.binding_update(COA1, CN, seq=ctx.next_seq(home), home=home, key=craft.kbm_from_tokens(ht, ct))
    ctx.expect_silence(pkt, "a BU without Nonce Indices")
    return "silently dropped"


@check("CN-RR-4", "rr", "nonce indices the node never issued (or expired) are refused: BA 136 (home), 137 "
       "(care-of), 138 (both)", "RFC 6275 9.5.1, 6.1.8", None)
def rr_expired_indices(ctx: Context) -> str:
    home = plan.RR_HOMES[2]
    tokens = ctx.rr_tokens(home, COA1)
    hi, _, ci, _ = tokens
    bogus = 0xFFFF - 7
    results = []
    for (h, c), want in (((bogus, ci), 136), ((hi, bogus), 137), ((bogus, bogus), 138)):
        pkt, _ = _rr_bu(ctx, home, COA1, tokens=tokens, indices=(h, c))
        ba = ctx.ask(pkt, mh_type=craft.BA, dst=COA1)
        if ba is None or ba.status != want:
            raise CheckFailed(f"indices ({h}, {c}): {'no BA' if ba is None else f'BA {ba.status}'}, expected {want}")
        results.append(str(ba.status))
    return "BA " + ", ".join(results)


@check("CN-RR-5", "rr", "a return-routability BU with a wrong authenticator is dropped silently",
       "RFC 6275 9.5.1", None)
def rr_wrong_key(ctx: Context) -> str:
    home = plan.RR_HOMES[1]
    pkt, _ = _rr_bu(ctx, home, COA2, key=os.urandom(20))
    ctx.expect_silence(pkt, "an RR BU with a wrong authenticator")
    return "silently dropped"


@check("CN-RR-6", "rr", "with a binding, a return-routability BU with a stale sequence number gets BA 135",
       "RFC 6275 9.5.1", "R14")
def rr_stale(ctx: Context) -> str:
    home = plan.RR_HOMES[0]
    tokens = ctx.rr_tokens(home, COA1)
    pkt, kbm = _rr_bu(ctx, home, COA1, tokens=tokens)
    seq = ctx.seq[home]
    ctx.expect_ba(pkt, home, COA1, status=0, seq=seq, key=kbm)
    stale, _ = _rr_bu(ctx, home, COA1, tokens=tokens, seq=seq)
    ctx.seq[home] = seq
    ctx.expect_ba(stale, home, COA1, status=135, seq=seq, key=kbm, what="a stale RR BU")
    return f"BA 135 with {seq}"


@check("CN-KEEPS-SERVING", "cn", "after malformed Mobility Headers and everything above the node still serves: a "
       "valid BU is accepted", "RFC 6275 9.5.1", None)
def keeps_serving(ctx: Context) -> str:
    ctx.alive()
    survived = ctx.survives_malformed(COA3, CN)
    if ctx.pairs:
        seq = _bind(ctx, P.main, COA3)
        return f"{survived}; BA 0 for BU {seq}"
    home = plan.RR_HOMES[3]
    pkt, kbm = _rr_bu(ctx, home, COA3)
    ctx.expect_ba(pkt, home, COA3, status=0, seq=ctx.seq[home], key=kbm)
    return f"{survived}; BA 0 for a return-routability BU"
