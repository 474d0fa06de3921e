"""``testbed experiment handover``, the main job: the README's command as written, Ctrl-C,
bad arguments."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]
MECHANISMS = ("precomputed", "rr", "rr-scratch")


def _testbed(*args, **kw):
    return subprocess.run([PYTHON, "-m", "testbed.cli", *args], capture_output=True, text=True, **kw)


def _check_results(out: Path, moves: int) -> dict:
    for name in ("spec.json", "metrics.csv", "metrics.json", "summary.json", "host.json", "handover.png", "report.md"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [(r["mechanism"], r["move"]) for r in rows] == [(m, str(i)) for m in MECHANISMS for i in range(1, moves + 1)]
    for r in rows:  # metrics for every move: its points in order, and the split
        assert 0 <= float(r["move_to_coa_ms"]) < float(r["bu_sent_ms"]) < float(r["bu_at_cn_ms"]) \
            < float(r["ba_sent_ms"]) < float(r["move_to_ba_ms"]), r
        assert float(r["coa_to_ba_ms"]) > float(r["model_ms"]) > 0, r
        assert 0 <= float(r["paused_ms"]) <= float(r["coa_to_ba_ms"]) + 1, r
        # undisturbed: host pauses took at most 2 % of the model's time in the move's window
        assert (r["undisturbed"] == "True") == (float(r["paused_ms"]) <= 0.02 * float(r["model_ms"])), r
        assert float(r["durable_writes_ms"]) > 0 and r["unexplained_ms"] != "", r
        assert r["missing"] == "" and r["cn_binding_ok"] == "True", r
    scratch = [r for r in rows if r["mechanism"] == "rr-scratch"]
    assert all(float(r["home_ba_ms"]) < float(r["bu_sent_ms"]) for r in scratch)  # HoTI waited for the home BA
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and not summary["interrupted"]
    assert summary["model_ms"] == {"precomputed": 16.0, "rr": 32.0, "rr-scratch": 158.0}
    for name in MECHANISMS:
        m = summary["mechanisms"][name]
        assert m["moves"] == moves and m["model_ms"] == summary["model_ms"][name]
        undisturbed = [r for r in rows if r["mechanism"] == name and r["undisturbed"] == "True"]
        assert m["undisturbed_moves"] == len(undisturbed)
        assert set(m["coa_to_ba_ms"]) == set(m["coa_to_ba_undisturbed_ms"]) == {"median", "p95"}
        assert (m["coa_to_ba_undisturbed_ms"]["median"] is None) == (not undisturbed)
        assert m["phases_ms"] and all(v > 0 for v in m["phases_ms"].values())
        assert "unexplained_ms" in m and "probes_lost" in m and "ratio" in m
    assert set(summary["mechanisms"]["precomputed"]["mh_types"]) == {"BU", "BA"}
    assert {"HoTI", "HoT", "CoTI", "CoT"} <= set(summary["mechanisms"]["rr-scratch"]["mh_types"])
    assert "HoTI" not in summary["mechanisms"]["rr"]["mh_types"] or \
        summary["mechanisms"]["rr"]["mh_types"]["HoTI"] < summary["mechanisms"]["rr-scratch"]["mh_types"]["HoTI"]
    host = summary["host"]
    assert host["monitor"]["realtime"] and "paused_fraction" in host and "steal_fraction" in host
    report = (out / "report.md").read_text()
    for label in ("precomputed Kbm (RFC 4449)", "valid home token", "from scratch", "unexplained", "host pauses"):
        assert label in report, label
    # No key material anywhere in the results: no key files, no long hex runs in text files.
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".csv", ".log", ".yaml", ".conf", ".txt"):
            text = path.read_text(errors="replace")
            assert "kcn" not in text.lower() or path.name == "report.md", path
            assert not re.search(r"[0-9a-f]{40}", text), path
    return summary


@pytest.mark.lab
def test_readme_main_command_as_written_from_the_repository_root():
    """`bash scripts/run` as the README says (here with --moves 2), from the repository root,
    with its default results directory; removes only the directory it created."""
    results = REPO / "results"
    existed = results.exists()
    before = set(results.iterdir()) if existed else set()
    done = subprocess.run(["bash", "scripts/run", "--moves", "2"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
    created = sorted(set(results.iterdir()) - before) if results.exists() else []
    try:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert len(created) == 1 and created[0].name.startswith("handover-"), created
        out = created[0]
        assert f"results: {out}" in done.stdout  # said as an absolute path
        # the agents' event logs are in the results, not beside their configuration files
        for name in MECHANISMS:
            log = (out / name / "events" / name / "mn.jsonl").read_text()
            assert log
            # moves paced under MAX_UPDATE_RATE: the handovers measured no rate limit
            assert '"send_deferred"' not in log, name
        _check_results(out, 2)
        # the backend said once, in one short line; one line per move (not a terminal)
        assert done.stdout.count("link delay:") == 1
        backend = next(line for line in done.stdout.splitlines() if line.startswith("link delay:"))
        assert len(backend) < 80, backend
        assert sum(1 for line in done.stdout.splitlines() if re.search(r": move \d+/2 to ar[12]: ", line)) == 6
    finally:
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        if not existed and results.exists() and not any(results.iterdir()):
            results.rmdir()


@pytest.mark.lab
def test_ctrl_c_stops_cleanly_keeps_the_moves_and_writes_the_report(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.Popen([PYTHON, "-m", "testbed.cli", "experiment", "handover", "--mechanism", "precomputed",
                             "--moves", "100", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    seen = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "".join(seen) + proc.stderr.read()
            seen.append(line)
            if "move 2/100" in line:
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + rest + err
    assert "Traceback" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and not summary["ok"]
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert 2 <= len(rows) < 100 and all(r["mechanism"] == "precomputed" for r in rows)
    assert summary["mechanisms"]["precomputed"]["moves"] >= 2
    assert (out / "handover.png").is_file() and "Interrupted" in (out / "report.md").read_text()
    # the lab is gone: no namespace, interface or process of the run is left
    run_id = json.loads((out / "precomputed" / "lab.json").read_text())["run_id"]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"m6{run_id}" not in links
    from testbed.lab.state import state_dir

    assert not (state_dir() / f"{run_id}.json").exists()
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline_has(p, str(out))]


def _cmdline_has(proc: Path, text: str) -> bool:
    try:
        return text in (proc / "cmdline").read_text(errors="replace")
    except OSError:
        return False


def test_bad_arguments_are_one_line_and_exit_2(tmp_path):
    done = _testbed("experiment", "handover", "--param", "bogus=1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "bogus" in done.stderr
    done = _testbed("experiment", "handover", "--param", "core_ha_delay=fast")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "core_ha_delay" in done.stderr
    done = _testbed("experiment", "handover", "--mechanism", "rr-fast")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "rr-scratch" in done.stderr
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("precious")
    done = _testbed("experiment", "handover", "--out", str(full))
    assert done.returncode == 2 and "not an empty directory" in done.stderr
    assert (full / "keep.txt").read_text() == "precious"
    # a relative --out is named absolute (resolved once, against the current directory)
    (tmp_path / "rel").mkdir()
    (tmp_path / "rel" / "x").write_text("")
    done = _testbed("experiment", "handover", "--out", "rel", cwd=tmp_path)
    assert done.returncode == 2 and str(tmp_path / "rel") in done.stderr


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
