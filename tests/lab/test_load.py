"""``testbed load`` on a real link (issue 12 item 4), reduced: 200 emulated mobile nodes (180
with preconfigured data, 20 with return routability) bind, move once closed loop and then
open loop at 300 bindings/s, against the real CN agent. Every binding must be there at the
right care-of address, every BA authentic, and the figures present and sane. (The 10,000
mobile run and its rates are a benchmark run by hand: ``testbed load``.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def test_reduced_load_binds_every_mobile_and_reports_sane_figures(tmp_path):
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "load", "--mobiles", "200", "--moves", "1",
                           "--rate", "300", "--open-seconds", "1", "--json", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
    assert done.stdout.strip(), done.stderr
    summary = json.loads(done.stdout)
    assert done.returncode == (0 if summary["ok"] else 1)  # 1: a rate target missed, never a crash
    (row,) = summary["rows"]
    (run,) = summary["runs"]
    # none lost: the CN's binding cache holds all 200 at their last care-of address and number
    assert run["check"] == {"mobiles": 200, "bound_right": 200, "lost": 0, "missing": 0, "wrong": 0,
                            "bad_ba_authenticators": 0, "other_bindings": 0, "examples": []}
    assert row["none_lost"] and summary["none_lost"]
    assert (row["precomputed"], row["rr"]) == (180, 20)
    phases = {p["phase"]: p for p in run["phases"]}
    assert [p["jobs"] for p in run["phases"]] == [200, 200, 300] and row["failed_jobs"] == 0
    assert phases["bind"]["accepted"] == phases["moves"]["accepted"] == 200  # closed loop: each one acknowledged
    # open loop: a mobile moving again before its BA supersedes its last BU (a slow machine)
    assert phases["open"]["accepted"] + phases["open"]["superseded"] == 300
    assert set(phases["moves"]["by_mechanism"]) == {"precomputed", "rr"}
    for p in run["phases"]:
        assert p["bindings_per_s"] > 0 and 0 < p["ba_median_ms"] <= p["ba_p99_ms"] < 10_000
        assert p["bus_sent"] >= p["accepted"] and p["cn_cpu_per_bu_us"] > 0
    assert phases["open"]["offered_per_s"] == 300 and phases["open"]["bindings_per_s"] <= 300 * 1.2
    # the agent's own figures
    assert row["persistence"] == "strict" and row["state_filesystem"] not in ("", "unknown")
    assert 0 < row["startup_s"] < 60 and run["key_loading"]["files"] == 180
    assert row["memory_per_binding_bytes"] is not None and row["cpu_per_bu_us"] > 0
    assert run["agent_turnaround"]["bas"] >= 700  # every BA the agent sent, from its event log
    assert 0 < run["engine"]["precomputed_bu_median_us"] < run["engine"]["rr_binding_us"]
    assert row["engine_bound_per_s"] > 0 and row["rate_ratio"] == round(row["moves_per_s"] / row["engine_bound_per_s"], 3)
    assert run["durable_write"]["update_median_us"] > 0
    assert {"steal_s", "loadavg_1min_before", "other_busy"} <= set(run["machine"])
    # results: the summary and the agent's event log; no key material anywhere
    out = tmp_path / "out"
    assert json.loads((out / "load.json").read_text())["rows"] == summary["rows"]
    log = (out / "200-cn.jsonl").read_text()
    assert '"event":"ba_sent"' in log and "kcn" not in log
