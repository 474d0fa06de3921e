"""``testbed load``: bad arguments are one line and exit 2 before anything is built; the
figures print as a plain table off a terminal."""

from __future__ import annotations

import io

import pytest

from testbed.cli import main
from testbed.experiments.load import default_moves, summarize
from testbed.experiments.load_table import plain, print_summary


@pytest.mark.parametrize("argv, words", [
    (["--mobiles", "0"], "--mobiles 0: expected 1..65535"),
    (["--mobiles", "100", "70000"], "--mobiles 70000"),
    (["--rr-share", "1.5"], "--rr-share 1.5"),
    (["--window", "0"], "--window 0"),
    (["--rate", "-1"], "--rate -1"),
    (["--open-seconds", "0"], "--open-seconds 0"),
    (["--cn-option", "role=mn"], "--cn-option role: set by the load run itself"),
    (["--cn-option", "colour=blue"], "--cn-option: unknown key 'colour' for role cn"),
    (["--cn-option", "precomputed_max_lifetime=0"], "precomputed_max_lifetime: 0 is not a whole number"),
    (["--cn-option", "novalue"], "expected NAME=VALUE"),
    (["--profile", "/tmp/x.prof"], "--profile: give one --mobiles N"),
    (["--state-dir", "/nonexistent/dir"], "--state-dir /nonexistent/dir: not a directory"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, words):
    assert main(["load", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("testbed: error: ") and err.count("\n") == 1 and words in err, err


def test_out_must_not_hold_results(tmp_path, capsys):
    (tmp_path / "load.json").write_text("{}")
    assert main(["load", "--mobiles", "10", "--out", str(tmp_path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (tmp_path / "load.json").read_text() == "{}"


def raw_run(mobiles: int, lost: int = 0) -> dict:
    phase = {"failed": 0, "retransmissions": 0, "ba_median_ms": 1.5, "ba_p99_ms": 4.0}
    return {
        "mobiles": mobiles, "precomputed": mobiles - mobiles // 10, "rr": mobiles // 10, "startup_s": 0.9,
        "moves": 3, "engine": {"bound_per_s": 10000.0, "per_binding_us": 100.0},
        "phases": [{**phase, "phase": "bind", "bindings_per_s": 800.0},
                   {**phase, "phase": "moves", "bindings_per_s": 6000.0},
                   {**phase, "phase": "open", "bindings_per_s": 4900.0, "offered_per_s": 5000.0}],
        "check": {"lost": lost, "bad_ba_authenticators": 0}, "memory_per_binding_bytes": 700,
        "cn_cpu_per_bu_us": 150.0, "durable_write": {"update_median_us": 300.0}, "persistence": "strict",
        "state_filesystem": "ext4",
        "machine": {"loadavg_1min_before": 0.5, "loadavg_1min_after": 1.5, "steal_s": {"cpu0": 0.1},
                    "seconds": 10, "cpu_pressure_some": 0.2, "other_busy": [{"comm": "dockerd", "cpu_s": 0.3}]},
    }


def test_summary_rows_judge_the_targets_and_print_plainly():
    runs = [raw_run(100), raw_run(10000, lost=2)]
    rows = [summarize(r) for r in runs]
    assert rows[0]["rate_ratio"] == 0.6 and rows[0]["rate_target_met"] and rows[0]["none_lost"]
    assert rows[0]["open_ratio"] == 0.49 and rows[0]["cpu_ratio"] == 1.5  # 4,900 of 10,000; 150 us of 100
    assert not rows[1]["none_lost"] and rows[1]["lost"] == 2
    summary = {"rows": rows, "runs": runs, "ok": False}
    text = plain(summary)
    lines = text.splitlines()
    assert lines[0].startswith("Correspondent agent under load: persistence strict, sequence store on ext4")
    assert "mobiles" in lines[1] and "lost" in lines[1] and lines[3].lstrip().startswith("10,000")
    assert "6,000" in lines[2] and "0.60" in lines[2] and "0.49" in lines[2] and "1.5" in lines[2]
    assert "open/bound" in lines[1] and "CPU/engine" in lines[1]
    stream = io.StringIO()
    print_summary(summary, stream)
    printed = stream.getvalue()
    assert printed.startswith(text) and "none lost: NO" in printed and "others busy: dockerd 0.3 s" in printed
    assert "given up" not in printed  # no open-loop binding was superseded


def test_notes_count_open_loop_bindings_given_up_by_a_new_move():
    run = raw_run(100)
    run["phases"][2].update(jobs=52914, superseded=2015)
    summary = {"rows": [summarize(run)], "runs": [run], "ok": True}
    stream = io.StringIO()
    print_summary(summary, stream)
    assert "open loop: 2,015 of 52,914 bindings given up by their mobile moving again first" in stream.getvalue()


def test_default_moves_give_the_move_phase_enough_bus():
    assert default_moves(100) == 30 and default_moves(1000) == 3 and default_moves(10000) == 1
