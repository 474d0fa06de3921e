"""``testbed experiment security``: attack scenarios against our agents, each with a verdict,
its evidence and the requirement it checks.

The lab is the conformance lab (``topologies/conformance.py``): the attacker node (the
``tester``) and the node under test on one link. Our CN agent runs in the node under test for
the correspondent scenarios, then our MN agent for the mobile-node ones. The attacker builds
its packets with scapy (``testbed.lab.craft``) and sends them from a raw socket; it also
plays the legitimate parties (the mobile nodes whose BUs it captures and replays, the home
agent, the routers). Evidence: the packets on the attacker's wire (``lab/tester-tester-eth0.pcap``
holds all of them) and the agents' events.

Results: ``report.md``, ``summary.json`` (``scenarios``: name, requirement, verdict,
evidence), ``junit.xml`` and ``lab/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from testbed.experiments.conformance import plan
from testbed.experiments.conformance.suite import _session, weakened_for
from testbed.experiments.conformance.target import load_target
from testbed.experiments.security import scenarios_cn, scenarios_mn  # noqa: F401 - registers the scenarios
from testbed.experiments.security.scenarios_cn import SCENARIOS
from testbed.experiments.verdicts import (
    ERROR,
    EXPECTED,
    FAIL,
    PASS,
    Outcome,
    evidence_sections,
    verdict_table,
    write_outcomes,
)
from testbed.lab.lab import Lab
from testbed.lab.tester import NodeWire

SESSIONS = (("cn", "rfc4449", ("rfc4449", "rr", "cn")), ("mn", "mn", ("mn",)))


def scenario_names() -> list[str]:
    from testbed.experiments.security import rekey

    names = [s.id for s in SCENARIOS]
    return names[: names.index("key-end-of-life-mn") + 1] + [rekey.NAME] + names[names.index("key-end-of-life-mn") + 1:]


def run_security(out: Path, *, only: set[str] | None = None, weaken: tuple[str, ...] = (),
                 progress: Callable[[Outcome], None] | None = None) -> dict:
    target = load_target("ours")
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    outcomes: list[Outcome] = []
    sessions: list[dict] = []
    if only is None or any(s.id in only for s in SCENARIOS):
        sessions = _attacker_lab(out, target, only, weaken, outcomes, progress)
    from testbed.experiments.security import rekey

    if only is None or rekey.NAME in only:
        o = rekey.run_rekey_scenario(out)
        outcomes.append(o)
        if progress:
            progress(o)
    for o in outcomes:
        o.group = "security"
    order = scenario_names()
    outcomes.sort(key=lambda o: order.index(o.name) if o.name in order else len(order))
    report = _report(outcomes, sessions, weaken)
    return write_outcomes(out, "security", outcomes, report=report, started=started, sessions=sessions,
                          weakened=list(weaken))


def _attacker_lab(out: Path, target, only, weaken, outcomes: list[Outcome], progress) -> list[dict]:
    """The scenarios of the conformance lab: our CN, then our MN in the node under test."""
    sessions = []
    with Lab("conformance", run_dir=out / "lab") as lab:
        iut_mac = lab.addresses.nodes["iut"].interfaces[plan.IUT_IFACE].mac
        capture = lab.capture("tester", plan.TESTER_IFACE)
        wire = NodeWire(lab, "tester", plan.TESTER_IFACE, dst_mac=iut_mac, tag="attacker")
        try:
            for role, profile, profiles in SESSIONS:
                todo = [s for s in SCENARIOS if s.profile in profiles and (only is None or s.id in only)]
                if todo:
                    sessions.append(_session(lab, wire, target, role, profile, todo, out,
                                             weakened_for(role, weaken), outcomes, progress))
        finally:
            wire.close()
            capture.stop()
    return sessions


def _report(outcomes: list[Outcome], sessions: list[dict], weaken: tuple[str, ...]) -> str:
    n = {v: sum(1 for o in outcomes if o.verdict == v) for v in (PASS, EXPECTED, FAIL, ERROR)}
    lines = ["# Security scenarios", "",
             "Attacks on our agents in the lab, each judged on the wire and in the agents' events. Verdicts: "
             "`pass` the defence held; `expected` behaviour the RFC accepts (shown, not a defect); `fail` the "
             "defence did not hold.", ""]
    if weaken:
        from testbed.experiments.security import rekey

        lines += [f"**Our agents ran with test-only weakenings: {', '.join(weaken)}** (each in its own role's "
                  "agent). Its verdicts show what a broken agent looks like, nothing about the real ones; "
                  f"`{rekey.NAME}` runs its own agents, never weakened.", ""]
    lines += [f"{n[PASS]} passed, {n[EXPECTED]} expected, {n[FAIL]} failed, {n[ERROR]} errors (of {len(outcomes)}).", ""]
    lines += verdict_table(outcomes)
    lines += ["", "## Agents", ""]
    for s in sessions:
        lines.append(f"- {s['role']}: {s['checks']} scenarios; memory (RSS) {s.get('rss_kib_start')} KiB at start, "
                     f"{s.get('rss_kib_end')} KiB at the end; restarted {s.get('restarts', 0)} times; running at the "
                     f"end: {s.get('still_running')}" + (f"; error: {s['error']}" if "error" in s else ""))
    lines += ["", "## Evidence", ""] + evidence_sections(outcomes, packets=24)
    lines += ["", "Files: `summary.json`, `junit.xml`, `lab/tester-tester-eth0.pcap` (every packet on the attacker's "
                  "link), `lab/iut/<profile>/events.jsonl` (the agents' events).", ""]
    return "\n".join(lines)
