"""``testbed experiment fuzz``: mutated and generated malformed packets against our CN, HA and
MN agents in the node under test of the conformance lab, each agent in turn.

Per agent: it binds once (valid traffic, the seeds of the mutations), its memory is read,
``count`` packets go out from the tester (``testbed.lab.fuzz``: mutations of the valid
messages, and packets scapy's ``fuzz()`` generates, a seeded run), then the agent must still
run (no crash, no restart) and still bind; its drop reasons are counted from its event log
and its memory read again. One verdict per agent in ``report.md``, ``summary.json`` and
``junit.xml`` like the security scenarios.
"""

from __future__ import annotations

import collections
import re
import time
from collections.abc import Callable
from pathlib import Path

from testbed.experiments.conformance import checks_cn, checks_ha, checks_mn, plan
from testbed.experiments.conformance.context import CheckFailed, Context, check
from testbed.experiments.conformance.suite import _session
from testbed.experiments.conformance.target import load_target
from testbed.experiments.verdicts import Outcome, evidence_sections, verdict_table, write_outcomes
from testbed.lab import craft
from testbed.lab.lab import Lab
from testbed.lab.tester import NodeWire

FUZZ: list = []
SETTINGS = {"count": 100_000, "rate": 4000.0, "seed": 1, "generated": 2000}


def _fuzz(ctx: Context, seeds: list[bytes], sources: list[tuple[str, str]]) -> dict:
    ctx.events.clear()
    rss_before = ctx.iut.rss_kib()
    n, rate = SETTINGS["count"], SETTINGS["rate"]
    t0 = ctx.wire.now()
    answer = ctx.wire.call("fuzz", timeout=n / rate * 3 + 120, seeds=[s.hex() for s in seeds], count=n,
                           seed=SETTINGS["seed"], rate=rate, generated=min(SETTINGS["generated"], n),
                           sources=sources)
    ctx.trace.append(f"> {answer['sent']} fuzzed packets in {answer['seconds']:.1f} s: {answer['strategies']}")
    ctx.trace.append(f"< meanwhile on the wire: {answer['answers']}")
    time.sleep(1.0)  # let the agent drain its socket before judging
    ctx.alive()
    reasons: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    for e in ctx.iut.events():
        if int(e.get("t_ns", 0)) < t0:
            continue
        kinds[e.get("event", "?")] += 1
        if e.get("event") == "drop":
            reasons[re.sub(r"\d+", "N", str(e.get("reason", "?")).split(":")[0])[:90]] += 1
    if kinds.get("internal_error"):
        raise CheckFailed(f"{kinds['internal_error']} internal_error events (an engine raised) during the fuzz run")
    return {"sent": answer["sent"], "seconds": round(answer["seconds"], 1), "strategies": answer["strategies"],
            "send_errors": answer["send_errors"], "answers_seen": answer["answers"],
            "drop_reasons": dict(reasons.most_common(25)), "drops": sum(reasons.values()),
            "event_counts": dict(kinds.most_common(15)), "rss_kib_before": rss_before, "rss_kib_after": ctx.iut.rss_kib(),
            "restarts": ctx.iut.starts - 1}


def _figures(ctx: Context, figures: dict, bound: str) -> str:
    ctx.fuzz_figures = figures  # type: ignore[attr-defined]
    return (f"{figures['sent']} packets in {figures['seconds']} s; still running, no restart; {bound}; "
            f"{figures['drops']} drops logged; RSS {figures['rss_kib_before']} -> {figures['rss_kib_after']} KiB")


@check("fuzz-cn", "rfc4449", "mutated and generated packets against the CN agent: no crash, it still binds",
       "robustness (RFC 6275 9.2: malformed messages dropped)", None, registry=FUZZ)
def fuzz_cn(ctx: Context) -> str:
    home, pair = plan.PEERS.fuzz, ctx.pairs[plan.PEERS.fuzz]
    checks_cn._bind(ctx, home, plan.CAREOF[0])
    seeds = [ctx.bu(home, coa=plan.CAREOF[0]), ctx.bu(home, coa=plan.CAREOF[1], lifetime=0),
             craft.home_test_init(plan.RR_HOMES[0], plan.CN_ADDRESS, b"12345678"),
             craft.careof_test_init(plan.CAREOF[2], plan.CN_ADDRESS, b"abcdefgh"),
             craft.with_home_address(plan.CAREOF[0], plan.CN_ADDRESS, home),
             craft.binding_update(plan.CAREOF[1], plan.CN_ADDRESS, seq=9, home=plan.RR_HOMES[0], key=bytes(20),
                                  options=[craft.MIP6OptNonceIndices(olen=4, hni=1, coni=2)])]
    figures = _fuzz(ctx, seeds, [(plan.CAREOF[0], plan.CN_ADDRESS), (home, plan.CN_ADDRESS)])
    ctx.seq[home] = (ctx.seq.get(home, 0) + 1000) & 0xFFFF  # past whatever the mutants' numbers did
    seq = checks_cn._bind(ctx, home, plan.CAREOF[3])
    del pair
    return _figures(ctx, figures, f"afterwards BU {seq}: BA 0")


@check("fuzz-ha", "ha", "mutated and generated packets against the HA agent: no crash, it still registers",
       "robustness (RFC 6275 9.2, 10.3.1)", None, registry=FUZZ)
def fuzz_ha(ctx: Context) -> str:
    home = plan.PRECOMPUTED_HOMES[0]
    checks_ha._register(ctx, home, plan.CAREOF[0])
    seeds = [checks_ha._reg(ctx, home, plan.CAREOF[1])[0], checks_ha._reg(ctx, home, plan.CAREOF[1], lifetime=0)[0],
             craft.tunnelled(plan.CAREOF[0], plan.HA_ADDRESS, craft.home_test_init(home, "2001:db8:3::1", b"12345678"))]
    figures = _fuzz(ctx, seeds, [(plan.CAREOF[0], plan.HA_ADDRESS)])
    ctx.seq[home] = (ctx.seq.get(home, 0) + 1000) & 0xFFFF
    seq = checks_ha._register(ctx, home, plan.CAREOF[2])
    return _figures(ctx, figures, f"afterwards registration {seq}: BA 0")


@check("fuzz-mn", "mn", "mutated and generated packets against the MN agent: no crash, it still moves and binds",
       "robustness (RFC 6275 9.2, 11.7)", None, registry=FUZZ)
def fuzz_mn(ctx: Context) -> str:
    coa, bu = checks_mn.bind(ctx, 0)
    home, cn, ha = plan.MN_HOME, plan.MN_CN_PRECOMPUTED, plan.MN_HOME_AGENT
    key = ctx.pairs[home].kbm(craft.a16(coa))
    seeds = [craft.binding_ack(cn, coa, home=home, status=0, seq=bu.seq, lifetime=100, key=key),
             craft.binding_ack(cn, coa, home=home, status=135, seq=bu.seq + 5, key=key),
             craft.binding_refresh_request(cn, coa, home=home), craft.binding_error(cn, coa, status=1, home=home),
             craft.tunnelled(ha, coa, craft.home_test(plan.MN_CN_RR, home, cookie=b"12345678", token=b"t" * 8, index=1)),
             craft.careof_test(plan.MN_CN_RR, coa, cookie=b"abcdefgh", token=b"u" * 8, index=2),
             craft.binding_ack(ha, coa, home=home, status=0, seq=3, lifetime=100, timestamp=1,
                               mn_ha=ctx.mn_ha[home])]
    figures = _fuzz(ctx, seeds, [(cn, coa), (ha, coa)])
    time.sleep(1.1)  # MAX_UPDATE_RATE: a clean second
    coa, bu = checks_mn.bind(ctx, 1)
    return _figures(ctx, figures, f"afterwards it moved to {coa} and bound (BU {bu.seq})")


def run_fuzz(out: Path, *, count: int, rate: float, seed: int,
             progress: Callable[[Outcome], None] | None = None) -> dict:
    SETTINGS.update(count=count, rate=rate, seed=seed)
    target = load_target("ours")
    outcomes: list[Outcome] = []
    sessions = []
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    with Lab("conformance", run_dir=out / "lab") as lab:
        iut_mac = lab.addresses.nodes["iut"].interfaces[plan.IUT_IFACE].mac
        wire = NodeWire(lab, "tester", plan.TESTER_IFACE, dst_mac=iut_mac, tag="fuzzer")
        try:
            for role, profile in (("cn", "rfc4449"), ("ha", "ha"), ("mn", "mn")):
                todo = [c for c in FUZZ if c.profile == profile]
                sessions.append(_session(lab, wire, target, role, profile, todo, out, (), outcomes, progress))
        finally:
            wire.close()
    lines = ["# Fuzzing our agents", "",
             f"{count} packets per agent at {rate:g} a second, seed {seed} (mutations of valid messages and packets "
             "scapy's fuzz() generated; testbed/lab/fuzz.py).", ""]
    lines += verdict_table(outcomes, name_header="agent")
    lines += ["", "## Figures", ""] + evidence_sections(outcomes, packets=4)
    return write_outcomes(out, "fuzz", outcomes, report="\n".join(lines) + "\n", started=started, count=count,
                          rate=rate, seed=seed, sessions=sessions)
