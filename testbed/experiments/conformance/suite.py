"""``testbed conformance``: the black-box suite against one target, its results directory.

For each role the target claims a profile of (cn: ``rfc4449``/``rr``, ha, mn) the node under
test is addressed, given keys, started and checked (``checks_cn``, ``checks_ha``,
``checks_mn``), then stopped; checks of profiles it does not claim are reported as not
applicable. The tester captures its link for the whole run (``lab/tester-tester-eth0.pcap``).

Results: ``report.md`` (each check with its RFC section, verdict and evidence),
``summary.json`` (``scenarios``: name, requirement, verdict, evidence), ``junit.xml``,
and ``lab/`` (the capture, the node's configuration files, event logs and output).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from testbed.experiments.conformance import checks_cn, checks_ha, checks_mn, plan  # noqa: F401 - registers checks
from testbed.experiments.conformance.context import REGISTRY, Check, CheckFailed, Context, Expected, NotApplicable
from testbed.experiments.conformance.iut import Iut, MnHaFile, PairFile
from testbed.experiments.conformance.target import Target
from testbed.experiments.verdicts import (
    ERROR,
    EXPECTED,
    FAIL,
    NOT_APPLICABLE,
    PASS,
    Outcome,
    Timer,
    evidence_sections,
    verdict_table,
    write_outcomes,
)
from testbed.lab import craft
from testbed.errors import ConfigError
from testbed.lab.errors import LabError
from testbed.lab.lab import Lab
from testbed.lab.tester import NodeWire
from testbed.mip6.keys import generate
from testbed.mip6.mnha import generate_mn_ha
from testbed.mip6.weakening import role_of

SESSIONS = (("cn", ("rfc4449", "rr", "cn")), ("ha", ("ha",)), ("mn", ("mn",)))
# the profile a role's broken variants run under (its checks are chosen by id)
VARIANT_PROFILE = {"cn": "rfc4449", "ha": "ha", "mn": "mn"}


def weakened_for(role: str, weaken: tuple[str, ...]) -> tuple[str, ...]:
    """The names of ``weaken`` that weaken an agent of ``role`` (each name is one role's)."""
    return tuple(name for name in weaken if role_of(name) == role)


def checks_for(profiles: tuple[str, ...], only: set[str] | None = None) -> list[Check]:
    return [c for c in REGISTRY if c.profile in profiles and (only is None or c.id in only)]


def _claimed(target: Target, profile: str) -> bool:
    if profile == "cn":
        return target.claims("rfc4449") or target.claims("rr")
    return target.claims(profile)


def _session_keys(role: str, target: Target):
    """The keys the node under test gets for a role, and what the tester keeps of them."""
    pairs: list[PairFile] = []
    mn_ha: list[MnHaFile] = []
    if role == "cn" and target.claims("rfc4449"):
        for home in plan.PRECOMPUTED_HOMES:
            pairs.append(PairFile(home, plan.CN_ADDRESS, generate(home, plan.CN_ADDRESS)))
    elif role == "ha":
        for home in (*plan.PRECOMPUTED_HOMES[:4], plan.OUTSIDE_HOME):
            mn_ha.append(MnHaFile(home, plan.HA_ADDRESS, generate_mn_ha(home, plan.HA_ADDRESS)))
    elif role == "mn":
        pairs.append(PairFile(plan.MN_HOME, plan.MN_CN_PRECOMPUTED, generate(plan.MN_HOME, plan.MN_CN_PRECOMPUTED)))
        mn_ha.append(MnHaFile(plan.MN_HOME, plan.MN_HOME_AGENT, generate_mn_ha(plan.MN_HOME, plan.MN_HOME_AGENT)))
    return pairs, mn_ha


def run_check(ctx: Context, c: Check) -> Outcome:
    ctx.trace = []
    ctx.events = []
    ctx.t0 = time.monotonic_ns()
    timer = Timer()
    try:
        detail = c.run(ctx)
        ctx.alive()
        verdict = EXPECTED if isinstance(detail, Expected) else PASS
    except CheckFailed as exc:
        verdict, detail = FAIL, str(exc)
    except NotApplicable as exc:
        verdict, detail = NOT_APPLICABLE, str(exc)
    except LabError as exc:
        verdict, detail = ERROR, f"the check could not run: {exc}"
    evidence = {"detail": str(detail), "packets": list(ctx.trace), "level": c.level}
    evidence.update(getattr(ctx, "fuzz_figures", None) or {})
    ctx.fuzz_figures = None
    if ctx.events:
        evidence["events"] = list(ctx.events)
    return Outcome(c.id, c.reference, verdict, evidence,
                   group=c.profile, title=c.title, seconds=timer.seconds)


def run_conformance(target: Target, out: Path, *, weaken: tuple[str, ...] = (), only: set[str] | None = None,
                    progress: Callable[[Outcome], None] | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    outcomes: list[Outcome] = []
    sessions = []
    with Lab("conformance", run_dir=out / "lab") as lab:
        iut_mac = lab.addresses.nodes["iut"].interfaces[plan.IUT_IFACE].mac
        capture = lab.capture("tester", plan.TESTER_IFACE)
        wire = NodeWire(lab, "tester", plan.TESTER_IFACE, dst_mac=iut_mac)
        try:
            for role, profiles in SESSIONS:
                claimed = tuple(p for p in profiles if _claimed(target, p))
                unclaimed = tuple(p for p in profiles if p not in claimed)
                for c in checks_for(unclaimed, only):
                    o = Outcome(c.id, c.reference, NOT_APPLICABLE,
                                {"detail": f"the target does not claim profile {c.profile}"},
                                group=c.profile, title=c.title)
                    outcomes.append(o)
                    if progress:
                        progress(o)
                todo = checks_for(claimed, only)
                if not todo:
                    continue
                sessions.append(_session(lab, wire, target, role, claimed[0], todo, out, weakened_for(role, weaken),
                                         outcomes, progress))
        finally:
            wire.close()
            capture.stop()
    outcomes.sort(key=lambda o: _order(o.name))
    summary_extra = {"target": target.name, "target_file": target.source, "profiles": list(target.profiles),
                     "weakened": list(weaken), "started": started, "sessions": sessions}
    report = _report(target, outcomes, sessions, weaken)
    return write_outcomes(out, "conformance", outcomes, report=report, **summary_extra)


def _order(name: str) -> int:
    ids = [c.id for c in REGISTRY]
    return ids.index(name) if name in ids else len(ids)


def _session(lab, wire, target, role, profile, todo, out, weaken, outcomes, progress, *, run_dir=None) -> dict:
    iut = Iut(lab, target, profile, run_dir or out / "lab", weaken=weaken)
    info = {"role": role, "checks": len(todo)}
    try:
        iut.address()
        pairs, mn_ha = _session_keys(role, target)
        iut.install_keys(pairs, mn_ha)
        iut.start()
        info["rss_kib_start"] = iut.rss_kib()
        ctx = Context(wire, iut, profile, pairs={p.home: craft.PairKeys.of(p.data) for p in pairs},
                      mn_ha={m.home: craft.MnHaKeys.of(m.sa) for m in mn_ha},
                      max_lifetime=target.precomputed_max_lifetime)
        for c in todo:
            if not iut.alive():
                o = Outcome(c.id, c.reference, FAIL, {"detail": "the node under test is not running (it stopped "
                                                                "during an earlier check)"},
                            group=c.profile, title=c.title)
            else:
                o = run_check(ctx, c)
            outcomes.append(o)
            if progress:
                progress(o)
        info["rss_kib_end"] = iut.rss_kib()
        info["restarts"] = iut.starts - 1
        info["still_running"] = iut.alive()
    except LabError as exc:
        info["error"] = str(exc)
        done = {o.name for o in outcomes}
        for c in todo:
            if c.id not in done:
                o = Outcome(c.id, c.reference, ERROR, {"detail": f"the {role} session could not run: {exc}"},
                            group=c.profile, title=c.title)
                outcomes.append(o)
                if progress:
                    progress(o)
    finally:
        iut.close()
    return info


def _report(target: Target, outcomes: list[Outcome], sessions: list[dict], weaken: tuple[str, ...]) -> str:
    counts = {v: sum(1 for o in outcomes if o.verdict == v) for v in (PASS, FAIL, ERROR, NOT_APPLICABLE)}
    lines = [
        f"# Conformance: target `{target.name}`",
        "",
        f"{target.description}" if target.description else "",
        "",
        f"Target file: `{target.source}`. Profiles claimed: {', '.join(target.profiles)}.",
    ]
    if weaken:
        lines += ["", f"**Deliberately weakened (test-only) defences: {', '.join(weaken)}.** This run shows that the "
                      "checks can fail; its verdicts say nothing about the real agents."]
    lines += [
        "",
        f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[ERROR]} errors, {counts[NOT_APPLICABLE]} not applicable "
        f"(of {len(outcomes)}). A check judges only what came back on the tester's wire, and whether the node "
        "under test kept running.",
        "",
        "| check | RFC section (requirement) | verdict | what was seen |",
        "|---|---|---|---|",
    ]
    lines += verdict_table(outcomes)[2:]
    lines += ["", "## The node under test per role", ""]
    for s in sessions:
        lines.append(f"- {s['role']}: {s['checks']} checks; memory (RSS) {s.get('rss_kib_start')} KiB at start, "
                     f"{s.get('rss_kib_end')} KiB at the end; restarted by checks {s.get('restarts', 0)} times; "
                     f"running at the end: {s.get('still_running')}" + (f"; error: {s['error']}" if 'error' in s else ""))
    lines += ["", "## Checks", ""]
    lines += evidence_sections(outcomes, packets=20)
    lines += ["", "Files: `summary.json`, `junit.xml`, `lab/tester-tester-eth0.pcap` (everything the tester saw), "
                  "`lab/iut/<profile>/` (the node's configuration, event log and output).", ""]
    return "\n".join(lines)


def run_broken_variants(target: Target, out: Path, *, names: tuple[str, ...] | None = None,
                        progress: Callable[[Outcome], None] | None = None) -> dict:
    """Each test-only weakening of our agents (CN, HA, MN) against the checks that guard its
    defence (``broken.BREAKS``): the agent of the weakening's role runs with it, and every one
    of those checks must fail. One outcome per (weakening, check): ``pass`` when the check
    failed as it must, ``fail`` when it passed anyway."""
    from testbed.experiments.conformance.broken import BREAKS, role_of
    from testbed.mip6.weakening import BY_ROLE

    if target.name != "ours":
        raise ConfigError("--broken-variants: only with --target ours (the weakenings are our agents')")
    chosen = tuple(names) if names else tuple(BREAKS)
    for name in chosen:
        if name not in BREAKS:
            raise ConfigError(f"--weaken {name}: no broken variant with checks (known: {', '.join(BREAKS)})")
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    outcomes: list[Outcome] = []
    sessions = []
    with Lab("conformance", run_dir=out / "lab") as lab:
        iut_mac = lab.addresses.nodes["iut"].interfaces[plan.IUT_IFACE].mac
        capture = lab.capture("tester", plan.TESTER_IFACE)
        wire = NodeWire(lab, "tester", plan.TESTER_IFACE, dst_mac=iut_mac)
        try:
            for name in chosen:
                role = role_of(name)
                what = BY_ROLE[role][name]
                todo = [c for c in REGISTRY if c.id in BREAKS[name]]
                raw: list[Outcome] = []
                info = _session(lab, wire, target, role, VARIANT_PROFILE[role], todo, out, (name,), raw, None,
                                run_dir=out / "lab" / "variants" / name)
                info["weakening"] = name
                sessions.append(info)
                for o in raw:
                    held = o.verdict == FAIL
                    v = Outcome(f"{name} -> {o.name}", o.requirement, PASS if held else (ERROR if o.verdict == ERROR else FAIL),
                                {"detail": (f"with '{name}' off ({what}) the check failed: {o.detail}" if held else
                                            f"with '{name}' off ({what}) the check did not fail ({o.verdict}): "
                                            f"{o.detail}"),
                                 "packets": o.evidence.get("packets", []), "check_verdict": o.verdict},
                                group=name, title=o.title, seconds=o.seconds)
                    outcomes.append(v)
                    if progress:
                        progress(v)
        finally:
            wire.close()
            capture.stop()
    lines = ["# Broken variants of our agents", "",
             "Each test-only weakening (testbed/mip6/weakening.py; an agent accepts one only with "
             "MIP6_TESTBED_ALLOW_WEAKENING=1 in its environment) turns one defence of the CN, HA or MN off. The "
             "checks that guard that defence ran against the agent so weakened: a row passes when its check "
             "**failed**, as it must.", ""]
    lines += verdict_table(outcomes, name_header="weakening -> check")
    lines += ["", "## Evidence", ""] + evidence_sections(outcomes, packets=12)
    return write_outcomes(out, "conformance-broken-variants", outcomes, report="\n".join(lines) + "\n",
                          target=target.name, started=started, sessions=sessions)


def describe(outcome: Outcome) -> str:
    return json.dumps(outcome.as_dict(), default=str)
