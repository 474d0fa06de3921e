"""Attacks on a correspondent node (our CN agent in the lab's node under test), each a
scenario with the requirement it checks. The attacker is the tester node: it sends with
scapy-built packets (``testbed.lab.craft``) from raw sockets, and it also plays the
legitimate mobile nodes whose Binding Updates it then replays.
"""

from __future__ import annotations

import os
import sys

from testbed.experiments.conformance import checks_cn, plan
from testbed.experiments.conformance.context import ANSWER_S, CheckFailed, Context, Expected, check
from testbed.experiments.conformance.iut import PairFile
from testbed.lab import craft
from testbed.mip6.keys import generate

SCENARIOS: list = []
P = plan.PEERS
CN = plan.CN_ADDRESS
COA1, COA2, COA3, COA4 = plan.CAREOF[:4]
VICTIM = "2001:db8:66::66"  # an address the mobile node does not own (R17)


def scenario(id, title, requirement, profile="rfc4449"):
    return check(id, profile, title, requirement, None, registry=SCENARIOS)


def _replay_refused(ctx: Context, captured: bytes, careof_now: str | None, last: int, what: str) -> str:
    """The attacker replays ``captured``; it must not be accepted (no BA 0; a BA 135 with
    the last number, or silence), the CN must not use the captured care-of address, and the
    binding must stay at ``careof_now`` (None: the CN holds none, a restart emptied its cache)."""
    r = craft.read(captured)
    old_coa = craft.text(r.src)
    got = ctx.quiet(captured, mh_type=craft.BA)
    if any(h.status == 0 for h in got):
        raise CheckFailed(f"{what}: the replayed BU {r.seq} was accepted (BA 0)")
    answer = "silently dropped" if not got else f"BA {got[0].status} carrying {got[0].seq}"
    if got and got[0].status == 135 and got[0].seq != last:
        raise CheckFailed(f"{what}: BA 135 carries {got[0].seq}, not the last accepted {last}")
    home = craft.text(r.home_address)
    if ctx.bound_at(home, old_coa):
        raise CheckFailed(f"{what}: after the replay the CN uses the old care-of address {old_coa}")
    if careof_now is None:
        return f"replay of BU {r.seq} (care-of {old_coa}): {answer}; no binding at {old_coa}"
    if not ctx.bound_at(home, careof_now):
        raise CheckFailed(f"{what}: after the replay the binding at {careof_now} is gone")
    return f"replay of BU {r.seq} (care-of {old_coa}): {answer}; the binding stays at {careof_now}"


@scenario("replay-live", "a captured valid BU pointing at an old care-of address, replayed while the CN runs, is "
          "refused and the binding stays at the new care-of address", "R4, R14")
def replay_live(ctx: Context) -> str:
    home = P.main
    seq = ctx.next_seq(home)
    captured = ctx.bu(home, seq=seq, coa=COA1)
    ctx.expect_ba(captured, home, COA1, status=0, seq=seq, key=ctx.pairs[home].kbm(craft.a16(COA1)))
    last = checks_cn._bind(ctx, home, COA2)
    return _replay_refused(ctx, captured, COA2, last, "live")


@scenario("replay-after-restart", "the captured BU replayed after the CN was killed with SIGKILL and started again "
          "is refused: the last number was durable", "R4, R14")
def replay_after_restart(ctx: Context) -> str:
    home = P.restart
    seq = ctx.next_seq(home)
    captured = ctx.bu(home, seq=seq, coa=COA1)
    ctx.expect_ba(captured, home, COA1, status=0, seq=seq, key=ctx.pairs[home].kbm(craft.a16(COA1)))
    last = checks_cn._bind(ctx, home, COA2)
    pid = ctx.iut.pid
    ctx.iut.restart()
    ctx.trace.append(f"-- CN killed with SIGKILL (pid {pid}) and started again (pid {ctx.iut.pid}) --")
    # at once, before any BU could tell the CN a number: only what it made durable refuses it
    # (the binding cache is volatile: none to keep)
    refused = _replay_refused(ctx, captured, None, last, "after a restart")
    nxt = checks_cn._bind(ctx, home, COA2)
    return f"{refused}; the MN's next BU {nxt} at {COA2}: BA 0"


@scenario("replay-after-moves", "the captured BU replayed after two more moves is refused", "R4, R14")
def replay_after_moves(ctx: Context) -> str:
    home = P.main
    seq = ctx.next_seq(home)
    captured = ctx.bu(home, seq=seq, coa=COA1)
    ctx.expect_ba(captured, home, COA1, status=0, seq=seq, key=ctx.pairs[home].kbm(craft.a16(COA1)))
    checks_cn._bind(ctx, home, COA2)
    last = checks_cn._bind(ctx, home, COA3)
    return _replay_refused(ctx, captured, COA3, last, "after two moves")


def _new_pair(ctx: Context, home: str, correspondent: str = CN) -> None:
    """Rekey ``home``'s pair: new preconfigured data written where the node under test reads
    its keys, and the node told to read them again (its target's ``reload`` command; for our
    agents ``testbed agent-ctl SOCKET reload``, what playbooks/rekey.yml runs)."""
    data = generate(home, correspondent)
    installed = dict(ctx.iut.installed_pairs)
    installed[home] = PairFile(home, correspondent, data)
    ctx.iut.reload_keys(list(installed.values()), list(ctx.iut.installed_mn_ha))
    ctx.pairs[home] = craft.PairKeys.of(data)


@scenario("replay-past-2^15", "after the sequence number advanced 2^15 in all a captured BU would compare as newer "
          "(modulo 2^16); the CN ends the key instead (rekey_required) and refuses it; after a rekey the pair binds "
          "again", "R13, R14")
def replay_past_half(ctx: Context) -> str:
    home, pair = P.r13, ctx.pairs[P.r13]
    captured = ctx.bu(home, seq=1, coa=COA1)
    ctx.expect_ba(captured, home, COA1, status=0, seq=1, key=pair.kbm(craft.a16(COA1)), what="BU 1")
    for seq in (16001, 32001):
        ctx.expect_ba(ctx.bu(home, seq=seq, coa=COA2), home, COA2, status=0, seq=seq,
                      key=pair.kbm(craft.a16(COA2)), what=f"BU {seq}")
    t = ctx.wire.now()
    for seq in (32770, 40001):
        got = ctx.quiet(ctx.bu(home, seq=seq, coa=COA2), mh_type=craft.BA)
        if any(h.status == 0 for h in got):
            raise CheckFailed(f"BU {seq} (a total advance past 2^15) was accepted")
    events = ctx.node_events(t, "rekey_required", home=home)
    if not events:
        raise CheckFailed("the CN did not report rekey_required when the key's advance would pass 2^15")
    # 1 compared with 40001 modulo 2^16: (1 - 32001) mod 65536 = 33536 >= 2^15, not newer; with
    # 32001 + 32770 ... a number 2^15 past the captured one makes the captured one "newer" again
    got = ctx.quiet(captured, mh_type=craft.BA)
    if any(h.status == 0 for h in got):
        raise CheckFailed("the BU captured at the start was accepted again")
    if ctx.bound_at(home, COA1):
        raise CheckFailed("the binding went back to the care-of address of the captured BU")
    _new_pair(ctx, home)
    ctx.trace.append("-- new preconfigured data for the pair written, the CN reloaded its keys --")
    ctx.seq[home] = 0
    seq = checks_cn._bind(ctx, home, COA3)
    return (f"1, 16001, 32001 accepted; 32770 and 40001 refused with rekey_required ({len(events)} events); the "
            f"captured BU 1 refused; after the rekey BU {seq} with the new key: BA 0")


@scenario("forged-wrong-key", "a BU for a precomputed peer authenticated with a wrong key is dropped silently", "R5")
def forged_wrong_key(ctx: Context) -> str:
    return checks_cn.wrong_key(ctx)


@scenario("forged-no-bad", "a BU for a precomputed peer without Binding Authorization Data is dropped", "R5")
def forged_no_bad(ctx: Context) -> str:
    return checks_cn.no_bad(ctx)


@scenario("forged-bad-not-last", "a BU whose Binding Authorization Data is not the last option is dropped", "R5")
def forged_bad_not_last(ctx: Context) -> str:
    return checks_cn.bad_not_last(ctx)


@scenario("forged-other-mn", "a BU for one mobile node with another mobile node's authenticator is dropped", "R5, R10")
def forged_other_mn(ctx: Context) -> str:
    return checks_cn.other_mn(ctx)


@scenario("cn-refuses-rr-for-precomputed", "the CN refuses return routability for a precomputed home address: its "
          "HoTI gets no HoT, so a bidding-down attacker gets no token", "R15")
def cn_no_rr(ctx: Context) -> str:
    got = ctx.quiet(craft.home_test_init(P.main, CN, os.urandom(8)), mh_type=craft.HOT)
    got += ctx.quiet(craft.tunnelled(COA1, CN, craft.home_test_init(P.main, CN, os.urandom(8))), mh_type=craft.HOT)
    if got:
        raise CheckFailed(f"the HoTI of a precomputed home address was answered: {got[0].packet.summary()}")
    t = ctx.wire.now()
    ctx.quiet(craft.home_test_init(P.main, CN, os.urandom(8)), mh_type=craft.HOT)
    drops = [e for e in ctx.node_events(t, "drop", 1.0) if "R15" in str(e.get("reason"))]
    return f"no HoT for the HoTI of {P.main}" + (f"; the CN logged why ({drops[0]['reason']})" if drops else "")


@scenario("unverified-careof", "a trusted mobile node binds a victim's address as its care-of address and the CN "
          "sends there: RFC 4449 does not verify the care-of address", "R17")
def unverified_careof(ctx: Context) -> str:
    home, pair = P.fuzz, ctx.pairs[P.fuzz]
    seq = ctx.next_seq(home)
    pkt = craft.binding_update(VICTIM, CN, seq=seq, home=home, key=pair.kbm(craft.a16(VICTIM)))
    ctx.expect_ba(pkt, home, VICTIM, status=0, seq=seq, key=pair.kbm(craft.a16(VICTIM)),
                  what="a BU with the victim's address as care-of address")
    t = ctx.wire.now()
    done = ctx.iut.run_in_node([sys.executable, "-m", "testbed.cli", "agent-ctl", ctx.iut.values["socket_dir"] + "/ctl.sock",
                                "probe_start", f"home={home}", "rate=50", "count=5"])
    if done.returncode != 0:
        raise CheckFailed(f"could not ask the CN to send to {home}: {done.stderr.strip()[:200]}")
    got = ctx.heard(t, ANSWER_S, 5, dst=VICTIM, not_src=VICTIM)
    data = [h for h in got if h.next_header != craft.MH and h.rh2 == craft.a16(home)]
    if not data:
        raise CheckFailed(f"the CN bound {home} at {VICTIM} but sent none of its packets there")
    return Expected(f"BA 0 for the BU naming {VICTIM}; {len(data)} packets for {home} went to the victim {VICTIM} "
                    "(RFC 4449 trusts the mobile node: the care-of address is not verified)")


@scenario("rr-default-cn", "a peer without preconfigured data binds with return routability (HoTI/CoTI, then a BU "
          "with the tokens' Kbm)", "R12", profile="rr")
def rr_default_cn(ctx: Context) -> str:
    return checks_cn.rr_bind(ctx)


@scenario("rr-offpath-attacker", "an off-path attacker that holds the care-of address (it gets the CoT) but never "
          "sees the HoT cannot bind a return-routability home address", "R12", profile="rr")
def rr_offpath(ctx: Context) -> str:
    home = plan.RR_HOMES[1]
    cookie = os.urandom(8)
    t = ctx.send(craft.careof_test_init(COA4, CN, cookie))
    cot = ctx.heard(t, ANSWER_S, 1, mh_type=craft.COT, dst=COA4)
    if not cot:
        raise CheckFailed("the CN did not answer the attacker's CoTI (the scenario needs the CoT)")
    guesses = []
    for _ in range(3):
        kbm = craft.kbm_from_tokens(os.urandom(8), cot[0].token)
        pkt = craft.binding_update(COA4, CN, seq=ctx.next_seq(home), home=home, key=kbm,
                                   options=[craft.MIP6OptNonceIndices(olen=4, hni=cot[0].nonce_index,
                                                                      coni=cot[0].nonce_index)])
        got = ctx.quiet(pkt, mh_type=craft.BA)
        if any(h.status == 0 for h in got):
            raise CheckFailed("a BU with a guessed home keygen token was accepted")
        guesses.append("dropped" if not got else f"BA {got[0].status}")
    if ctx.bound_at(home, COA4):
        raise CheckFailed(f"the attacker's care-of address {COA4} is bound for {home}")
    return f"CoT received; three BUs with guessed home tokens: {', '.join(guesses)}; no binding"


@scenario("weak-keys-refused", "weak or duplicate preconfigured data is refused by the tooling (testbed keygen "
          "--check) and by the agent (it does not start)", "R3, R10", profile="cn")
def weak_keys(ctx: Context) -> str:
    work = ctx.iut.key_dir / "weak"
    work.mkdir(mode=0o700, exist_ok=True)
    good = generate(P.main, CN)
    files = {
        "zero.yaml": (P.main, "00" * 20, good.home_nonce.hex(), good.careof_nonce.hex()),
        "short.yaml": (P.main, "5a" * 8, good.home_nonce.hex(), good.careof_nonce.hex()),
        "dup-a.yaml": (P.main, good.kcn.hex(), good.home_nonce.hex(), good.careof_nonce.hex()),
        "dup-b.yaml": (P.other, good.kcn.hex(), good.home_nonce.hex(), good.careof_nonce.hex()),
    }
    for name, (home, kcn, hn, cn) in files.items():
        fd = os.open(work / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'home_address: "{home}"\ncorrespondent: "{CN}"\nkcn: "{kcn}"\n'
                    f'home_nonce: "{hn}"\ncareof_nonce: "{cn}"\n')
    tool = [sys.executable, "-m", "testbed.cli"]
    results = []
    for label, names in (("all-zero Kcn", ["zero.yaml"]), ("8-octet Kcn", ["short.yaml"]),
                         ("one Kcn for two pairs", ["dup-a.yaml", "dup-b.yaml"])):
        done = ctx.iut.run_in_node(tool + ["keygen", "--check", *[str(work / n) for n in names]])
        line = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        ctx.trace.append(f"testbed keygen --check ({label}): exit {done.returncode}: {line[0][:160]}")
        if done.returncode != 2:
            raise CheckFailed(f"testbed keygen --check accepted {label} (exit {done.returncode})")
        if good.kcn.hex() in done.stderr + done.stdout:
            raise CheckFailed("testbed keygen --check printed the Kcn")
        results.append(f"{label}: exit 2")
    for label, names in (("all-zero Kcn", ["zero.yaml"]), ("one Kcn for two pairs", ["dup-a.yaml", "dup-b.yaml"])):
        cfg = work / f"agent-{names[0]}"
        cfg.write_text("role: cn\nnode: weak\ninterfaces: [iut-eth0]\naddress: \"2001:db8:3::9\"\n"
                       f"preconfigured: {[str(work / n) for n in names]}\nstate_dir: \"{work}/state\"\n"
                       f"event_log: \"{work}/events.jsonl\"\ncontrol_socket: \"{work}/ctl.sock\"\n")
        done = ctx.iut.run_in_node(tool + ["agent", "--config", str(cfg)], timeout=20)
        line = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        ctx.trace.append(f"testbed agent (CN, {label}): exit {done.returncode}: {line[0][:160]}")
        if done.returncode != 2:
            raise CheckFailed(f"the CN agent started with {label} (exit {done.returncode})")
        results.append(f"agent with {label}: exit 2")
    return "; ".join(results)
