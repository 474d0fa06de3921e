"""``testbed experiment security`` and ``testbed conformance`` on a real lab (issue 11 items
1 and 2): our agents in the node under test, the attacker/tester sending scapy-built packets
on a real link. Every scenario and check must come out as stated, and the results directory
must hold what other tools read (summary.json, junit.xml, report.md) and no key material."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]

SECURITY = {
    "replay-live": ("R4, R14", "pass"),
    "replay-after-restart": ("R4, R14", "pass"),
    "replay-after-moves": ("R4, R14", "pass"),
    "replay-past-2^15": ("R13, R14", "pass"),
    "forged-wrong-key": ("R5", "pass"),
    "forged-no-bad": ("R5", "pass"),
    "forged-bad-not-last": ("R5", "pass"),
    "forged-other-mn": ("R5, R10", "pass"),
    "cn-refuses-rr-for-precomputed": ("R15", "pass"),
    "unverified-careof": ("R17", "expected"),
    "rr-default-cn": ("R12", "pass"),
    "rr-offpath-attacker": ("R12", "pass"),
    "weak-keys-refused": ("R3, R10", "pass"),
    "bidding-down-mn": ("R15", "pass"),
    "rr-default-mn": ("R12", "pass"),
    "key-end-of-life-mn": ("R13", "pass"),
    "rekey-with-ansible": ("R13, R8", "pass"),
}


def _testbed(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, check=False)


def _no_key_material(out: Path) -> None:
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".md", ".json", ".xml", ".jsonl", ".yaml", ".log"):
            text = path.read_text(errors="replace")
            # the key files' fields (what the suite writes 0600 on tmpfs, removed after the run)
            # (a key_id is a 16-digit fingerprint and may appear)
            assert not re.search(r"(home_nonce|careof_nonce)\W{1,4}[0-9a-fA-F]{16}", text), path
            assert not re.search(r"(kcn|key)\W{1,4}[0-9a-fA-F]{32,}", text), path


def test_security_experiment_gives_every_scenario_its_verdict_with_evidence(tmp_path):
    out = tmp_path / "security"
    done = _testbed("experiment", "security", "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-3000:]
    summary = json.loads(done.stdout)
    got = {s["name"]: (s["requirement"], s["verdict"]) for s in summary["scenarios"]}
    assert got == SECURITY, {k: v for k, v in got.items() if SECURITY.get(k) != v}
    assert json.loads((out / "summary.json").read_text())["scenarios"] == summary["scenarios"]
    by_name = {s["name"]: s for s in summary["scenarios"]}
    for s in summary["scenarios"]:
        assert s["evidence"]["detail"] and s["evidence"]["packets"], s["name"]  # what was seen on the wire
    # the agents' own words as evidence: the R13 end of life, at the CN and at the MN
    assert any(e["event"] == "rekey_required" for e in by_name["replay-past-2^15"]["evidence"]["events"])
    assert any(e["event"] == "rekey_required" for e in by_name["key-end-of-life-mn"]["evidence"]["events"])
    assert any("SIGKILL" in p for p in by_name["replay-after-restart"]["evidence"]["packets"])
    rekey = by_name["rekey-with-ansible"]["evidence"]
    assert [e["event"] for e in rekey["events"]] == ["rekey_required", "rekey_required"]  # the CN's, then the MN's
    assert rekey["rekey"]["rekeyed"]["mn:cn"]["old"] != rekey["rekey"]["rekeyed"]["mn:cn"]["new"]
    assert rekey["messages_valid_under_new_key"] >= 2  # a BU and its BA under the new key, on the CN's link
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == (str(len(SECURITY)), "0", "0")
    report = (out / "report.md").read_text()
    assert all(f"| {name} | {req} |" in report for name, (req, _) in SECURITY.items())
    assert (out / "lab" / "tester-tester-eth0.pcap").stat().st_size > 1000
    _no_key_material(out)


def test_conformance_of_our_agents_passes_every_check_and_names_its_rfc_section(tmp_path):
    out = tmp_path / "conformance"
    done = _testbed("conformance", "--target", "ours", "--json", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-3000:]
    summary = json.loads(done.stdout)
    verdicts = {s["name"]: s["verdict"] for s in summary["scenarios"]}
    assert len(verdicts) >= 50 and set(verdicts.values()) == {"pass"}, {k: v for k, v in verdicts.items() if v != "pass"}
    assert {s["group"] for s in summary["scenarios"]} == {"rfc4449", "rr", "cn", "ha", "mn"}
    assert all("RFC" in s["requirement"] for s in summary["scenarios"])
    assert [s["still_running"] for s in summary["sessions"]] == [True, True, True]
    report = (out / "report.md").read_text()
    assert "| CN-4449-12 | RFC 4449 4 (R4, R14) | pass |" in report
    _no_key_material(out)


def test_broken_variants_of_our_agents_make_their_checks_fail(tmp_path):
    """A reduced set in CI, every role (the whole set: ``testbed conformance --target ours
    --broken-variants``)."""
    out = tmp_path / "broken"
    names = ("auth", "persist", "bad_last", "binding_errors", "keeps_serving", "ha_auth", "mn_bidding_down")
    done = _testbed("conformance", "--target", "ours", "--broken-variants", "--json", "--out", str(out),
                    *[a for n in names for a in ("--weaken", n)])
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-3000:]
    summary = json.loads(done.stdout)
    rows = summary["scenarios"]
    assert {r["group"] for r in rows} == set(names)
    # every row passes because its check FAILED against the weakened CN
    assert all(r["verdict"] == "pass" and r["evidence"]["check_verdict"] == "fail" for r in rows), \
        [r["name"] for r in rows if r["verdict"] != "pass"]
    assert {"persist -> CN-4449-12", "keeps_serving -> CN-KEEPS-SERVING", "ha_auth -> HA-03",
            "mn_bidding_down -> MN-08"} <= {r["name"] for r in rows}
    assert [s["role"] for s in summary["sessions"]] == ["cn"] * 5 + ["ha", "mn"]


def test_security_scenarios_fail_with_the_weakenings_that_break_them(tmp_path):
    """A reduced set in CI (testbed/experiments/security/broken.py has every scenario's): one
    run, each name in its own role's agent: the CN forgets its numbers, the MN bids down."""
    out = tmp_path / "weak"
    done = _testbed("experiment", "security", "--scenario", "replay-after-restart", "--scenario", "bidding-down-mn",
                    "--weaken", "persist", "--weaken", "mn_bidding_down", "--json", "--out", str(out))
    assert done.returncode == 1, done.stderr[-2000:] + done.stdout[-3000:]
    rows = {s["name"]: s for s in json.loads(done.stdout)["scenarios"]}
    assert {k: r["verdict"] for k, r in rows.items()} == {"replay-after-restart": "fail", "bidding-down-mn": "fail"}
    assert "was accepted (BA 0)" in rows["replay-after-restart"]["evidence"]["detail"]
    assert "started return routability" in rows["bidding-down-mn"]["evidence"]["detail"]


def test_weakenings_are_refused_for_another_target_and_unknown_names(tmp_path):
    target = tmp_path / "other.yaml"
    target.write_text((REPO / "testbed/experiments/conformance/targets/ours.yaml").read_text()
                      .replace("name: ours", "name: other"))
    done = _testbed("conformance", "--target", str(target), "--weaken", "auth", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "only with --target ours" in done.stderr and "Traceback" not in done.stderr
    done = _testbed("experiment", "security", "--weaken", "nope", "--out", str(tmp_path / "s"))
    assert done.returncode == 2 and "--weaken nope" in done.stderr
    done = _testbed("experiment", "security", "--weaken", "ha_auth", "--out", str(tmp_path / "s"))
    assert done.returncode == 2 and "home agent" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "s").exists()


def test_fuzzing_leaves_every_agent_running_and_binding(tmp_path):
    """A reduced count in CI (the full run: ``testbed experiment fuzz``, 100,000 packets per agent)."""
    out = tmp_path / "fuzz"
    done = _testbed("experiment", "fuzz", "--count", "2000", "--rate", "3000", "--seed", "7", "--json",
                    "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-3000:]
    summary = json.loads(done.stdout)
    rows = {s["name"]: s for s in summary["scenarios"]}
    assert set(rows) == {"fuzz-cn", "fuzz-ha", "fuzz-mn"} and all(r["verdict"] == "pass" for r in rows.values())
    for r in rows.values():
        ev = r["evidence"]
        assert ev["sent"] == 2000 and ev["restarts"] == 0 and not ev["send_errors"]
        assert ev["drops"] > 100 and ev["drop_reasons"]  # the malformed ones were refused, with reasons
        assert ev["rss_kib_before"] > 0 and ev["rss_kib_after"] > 0
        assert set(ev["strategies"]) >= {"bitflip", "truncate", "options", "generated"}
    assert [s["still_running"] for s in summary["sessions"]] == [True, True, True]


def test_faults_lose_no_acknowledged_number_and_a_weakened_cn_does(tmp_path):
    """Kills during BU floods (2 in CI; ``testbed experiment faults`` runs 20), a SIGKILL
    injected at each step of the store's write, a full and a read-only state directory:
    every verdict pass. Then the CN with acknowledgements that need no durable write
    (``store_ack``) fails the full-disk scenario: the check can fail."""
    done = _testbed("experiment", "faults", "--kills", "2", "--json", "--out", str(tmp_path / "faults"))
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-3000:]
    summary = json.loads(done.stdout)
    rows = {s["name"]: s for s in summary["scenarios"]}
    assert set(rows) == {"kill-during-flood", "kill-at-store-step", "state-dir-full", "state-dir-read-only"}
    assert all(r["verdict"] == "pass" for r in rows.values()), {k: r["evidence"]["detail"] for k, r in rows.items()}
    assert len(rows["kill-during-flood"]["evidence"]["rounds"]) == 2
    assert rows["kill-at-store-step"]["evidence"]["detail"].count("kept") == 6
    assert any(e["event"] == "store_read_only" for e in rows["state-dir-read-only"]["evidence"]["events"])
    done = _testbed("experiment", "faults", "--scenario", "state-dir-full", "--weaken", "store_ack", "--json",
                    "--out", str(tmp_path / "weak"))
    assert done.returncode == 1
    (row,) = json.loads(done.stdout)["scenarios"]
    assert row["verdict"] == "fail" and "BA 0 for a new peer" in row["evidence"]["detail"]
