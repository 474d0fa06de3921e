"""Verdicts with evidence, and the files other tools read them from: ``summary.json``,
JUnit XML, and the table of ``report.md``. Shared by the security scenarios
(``testbed experiment security``) and the conformance suite (``testbed conformance``).

A verdict is one of

- ``pass``: the defence held (or the behaviour conforms);
- ``fail``: it did not;
- ``expected``: behaviour the RFC accepts and the scenario demonstrates (R17: the care-of
  address is not verified); counts as passed;
- ``not applicable``: the node under test does not claim the profile the check needs;
- ``error``: the check could not be run to a verdict (the lab or the tool failed).

Evidence is a dict: ``detail`` (one sentence), ``packets`` (one line per packet, from the
wire), ``events`` (the agents' events that decided it) and any figures. Secrets never go
into evidence: packets are summarised, never dumped with their authenticators' keys.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

PASS, FAIL, EXPECTED, NOT_APPLICABLE, ERROR = "pass", "fail", "expected", "not applicable", "error"
VERDICTS = (PASS, FAIL, EXPECTED, NOT_APPLICABLE, ERROR)
PASSED = (PASS, EXPECTED)


@dataclass
class Outcome:
    name: str
    requirement: str  # "R4, R13, R14" or "RFC 6275 9.5.1"
    verdict: str
    evidence: dict = field(default_factory=dict)
    group: str = ""
    title: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")

    @property
    def ok(self) -> bool:
        return self.verdict in PASSED or self.verdict == NOT_APPLICABLE

    @property
    def detail(self) -> str:
        return str(self.evidence.get("detail", ""))

    def as_dict(self) -> dict:
        return asdict(self)


class Timer:
    def __init__(self) -> None:
        self.start = time.monotonic()

    @property
    def seconds(self) -> float:
        return round(time.monotonic() - self.start, 3)


def counts(outcomes: list[Outcome]) -> dict[str, int]:
    out = {v: 0 for v in VERDICTS}
    for o in outcomes:
        out[o.verdict] += 1
    return out


def junit_xml(suite: str, outcomes: list[Outcome]) -> str:
    """JUnit XML (the shape Jenkins, GitLab and GitHub annotations read): one testcase per
    outcome, ``classname`` its group; fail -> <failure>, error -> <error>, not applicable ->
    <skipped>; ``expected`` passes with its detail in <system-out>."""
    c = counts(outcomes)
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(outcomes)), failures=str(c[FAIL]),
                       errors=str(c[ERROR]), skipped=str(c[NOT_APPLICABLE]),
                       time=f"{sum(o.seconds for o in outcomes):.3f}")
    for o in outcomes:
        case = ET.SubElement(ts, "testcase", classname=f"{suite}.{o.group or 'all'}", name=o.name,
                             time=f"{o.seconds:.3f}")
        message = f"{o.requirement}: {o.detail}"
        if o.verdict == FAIL:
            ET.SubElement(case, "failure", message=message[:500]).text = _evidence_text(o)
        elif o.verdict == ERROR:
            ET.SubElement(case, "error", message=message[:500]).text = _evidence_text(o)
        elif o.verdict == NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=message[:500])
        else:
            ET.SubElement(case, "system-out").text = f"{o.verdict}: {message}"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _evidence_text(o: Outcome) -> str:
    lines = [o.detail]
    lines += [f"packet: {p}" for p in o.evidence.get("packets", [])]
    lines += [f"event: {json.dumps(e, sort_keys=True)}" for e in o.evidence.get("events", [])]
    return "\n".join(lines)


def summary_dict(outcomes: list[Outcome], **extra) -> dict:
    """``summary.json``: ``scenarios`` (name, requirement, verdict, evidence, ...), counts, ok."""
    return {
        "ok": all(o.ok for o in outcomes),
        "counts": counts(outcomes),
        "scenarios": [o.as_dict() for o in outcomes],
        **extra,
    }


def verdict_table(outcomes: list[Outcome], *, name_header: str = "scenario") -> list[str]:
    """Markdown table lines: one row per outcome."""
    lines = [f"| {name_header} | requirement | verdict | evidence |", "|---|---|---|---|"]
    for o in outcomes:
        mark = {PASS: "pass", FAIL: "**FAIL**", EXPECTED: "expected", NOT_APPLICABLE: "n/a", ERROR: "**ERROR**"}[o.verdict]
        lines.append(f"| {o.name} | {o.requirement} | {mark} | {_cell(o.detail)} |")
    return lines


def evidence_sections(outcomes: list[Outcome], *, packets: int = 12, events: int = 8) -> list[str]:
    """Per outcome, its evidence: the packets from the wire and the events that decided it."""
    lines = []
    for o in outcomes:
        lines += ["", f"### {o.name} ({o.verdict})", "", o.title or o.detail]
        if o.title and o.detail:
            lines += ["", o.detail]
        figures = {k: v for k, v in o.evidence.items() if k not in ("detail", "packets", "events")}
        if figures:
            lines += ["", "```", json.dumps(figures, indent=1, sort_keys=True, default=str), "```"]
        shown = o.evidence.get("packets", [])
        if shown:
            lines += ["", "Packets:", "", "```"] + shown[:packets]
            if len(shown) > packets:
                lines.append(f"... {len(shown) - packets} more")
            lines.append("```")
        evs = o.evidence.get("events", [])
        if evs:
            lines += ["", "Events:", "", "```"] + [json.dumps(e, sort_keys=True) for e in evs[:events]]
            if len(evs) > events:
                lines.append(f"... {len(evs) - events} more")
            lines.append("```")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:300]


def write_outcomes(out: Path, suite: str, outcomes: list[Outcome], *, report: str, **extra) -> dict:
    """``summary.json``, ``junit.xml`` and ``report.md`` in ``out``; returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_dict(outcomes, **extra)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    (out / "junit.xml").write_text(junit_xml(suite, outcomes))
    (out / "report.md").write_text(report)
    return summary
