"""``testbed experiment handover``, the main job: results directory, report, bad arguments."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import pytest

PYTHON = sys.executable


def _testbed(*args):
    return subprocess.run([PYTHON, "-m", "testbed.cli", *args], capture_output=True, text=True)


@pytest.mark.lab
def test_handover_experiment_writes_complete_results_without_secrets(tmp_path):
    out = tmp_path / "results"
    done = _testbed("experiment", "handover", "--moves", "2", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("spec.json", "metrics.csv", "metrics.json", "summary.json", "handover.png", "report.md"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [(r["mechanism"], r["move"]) for r in rows] == [("rr", "1"), ("rr", "2"), ("precomputed", "1"), ("precomputed", "2")]
    assert all(float(r["move_to_ba_ms"]) > float(r["move_to_coa_ms"]) > 0 for r in rows)
    # each move says how long the host paused the machine between usable CoA and BA
    assert all(0 <= float(r["paused_ms"]) <= float(r["move_to_ba_ms"]) - float(r["move_to_coa_ms"]) + 1 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["machine_pauses"]["cpus"] >= 1
    for name, m in summary["mechanisms"].items():
        undisturbed = [r for r in rows if r["mechanism"] == name and float(r["paused_ms"]) == 0]
        assert m["undisturbed_moves"] == len(undisturbed)
        assert (m["median_coa_to_ba_undisturbed_ms"] is None) == (not undisturbed)
    assert summary["ok"] and summary["model_ms"]["precomputed"] == 16.0
    assert set(summary["mechanisms"]["precomputed"]["mh_types"]) == {"BU", "BA"}
    assert "HoTI" in summary["mechanisms"]["rr"]["mh_types"] or "CoTI" in summary["mechanisms"]["rr"]["mh_types"]
    report = (out / "report.md").read_text()
    assert "precomputed Kbm (RFC 4449)" in report and "return routability (RFC 6275)" in report
    # No key material anywhere in the results: no key files, no long hex runs in text files.
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".csv", ".log", ".yaml", ".conf", ".txt"):
            text = path.read_text(errors="replace")
            assert "kcn" not in text.lower() or path.name == "report.md", path
            assert not re.search(r"[0-9a-f]{40}", text), path


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    done = _testbed("experiment", "handover", "--param", "bogus=1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "bogus" in done.stderr
    done = _testbed("experiment", "handover", "--param", "core_ha_delay=fast")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "core_ha_delay" in done.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("precious")
    done = _testbed("experiment", "handover", "--out", str(full))
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (full / "keep.txt").read_text() == "precious"


@pytest.mark.lab
def test_lab_handover_self_test_reports_both_mechanisms():
    done = _testbed("lab", "--topo", "handover", "--test", "handover", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    assert data["ok"]
    by_name = {m["mechanism"]: m for m in data["mechanisms"]}
    assert set(by_name) == {"rr", "precomputed"}
    assert all(m["bound"] and len(m["move_to_ba_ms"]) == 1 and m["move_to_ba_ms"][0] > 0 for m in by_name.values())
    assert set(by_name["precomputed"]["mh_types"]) == {"BU", "BA"}
    assert {"HoTI", "HoT", "CoTI", "CoT"} <= set(by_name["rr"]["mh_types"])
