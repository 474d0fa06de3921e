"""``testbed experiment storm`` (issue 12 item 5), reduced to 20 mobile nodes with their own
agents (16 precomputed, 4 return routability): all bound before AR1 fails, every binding at
the CN, the HA and in the MN's own list follows to AR2, none lost, and the CN's BU-to-BA
figures come from its event log. (The 100-MN run and its figures: docs/experiments-storm.md.)"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
MOBILES = 20


def test_storm_of_twenty_mobiles_every_binding_follows(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "experiment", "storm", "--mobiles", str(MOBILES),
                           "--json", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=240, check=False)
    assert done.stdout.strip(), done.stderr
    summary = json.loads(done.stdout)
    assert summary["error"] is None, summary["error"]
    assert summary["all_bound_before"]
    assert (summary["followed"], summary["lost"], summary["not_followed"]) == (MOBILES, 0, [])
    assert summary["ok"] and done.returncode == 0
    assert summary["rr_mobiles"] == 4 and set(summary["per_mechanism"]) == {"precomputed", "rr"}
    storm = summary["cn"]["storm"]
    # every MN's BU to the CN after the failure was answered, each one timed from the CN's log
    assert storm["unanswered"] == 0 and storm["bas_sent"] >= MOBILES
    assert 0 < storm["bu_to_ba_ms"]["median"] <= storm["bu_to_ba_ms"]["p99"]
    assert summary["ha"]["storm"]["bas_sent"] >= MOBILES and summary["ha"]["storm"]["unanswered"] == 0
    assert 0 < summary["all_followed_after_s"] < 30
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == MOBILES and all(r["followed"] == "True" for r in rows)
    assert all(r["careof"].startswith("2001:db8:a:2:") for r in rows)  # AR2's prefix
    # each MN's move to the CN's BA is after its usable CoA
    assert all(float(r["move_to_cn_ba_ms"]) > float(r["move_to_coa_ms"]) > 0 for r in rows)
    assert (out / "report.md").read_text().startswith("# Binding storm")
    assert summary["host"]["monitor"]["realtime"]


def test_storm_refuses_bad_arguments(tmp_path):
    for argv, words in ((["--mobiles", "0"], "--mobiles 0"), (["--rr-share", "1.5"], "--rr-share 1.5"),
                        (["--param", "n_mns=3"], "n_mns")):
        done = subprocess.run([sys.executable, "-m", "testbed.cli", "experiment", "storm", *argv,
                               "--out", str(tmp_path / "x")], capture_output=True, text=True, cwd=REPO,
                              timeout=60, check=False)
        assert done.returncode == 2, done.stderr
        assert words in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "x").exists()
