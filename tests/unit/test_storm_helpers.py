"""The storm experiment's pure parts (no root): which MNs use return routability, the
quantiles it reports, its report, and the bridge set-up's command chunks (a segment with 100
mobile nodes overflowed the node shell's terminal line)."""

from __future__ import annotations

from testbed.experiments.storm import quantiles, report, rr_mobiles
from testbed.lab.build import SHELL_LINE_MAX, _chunks


def test_rr_share_spreads_over_the_mobiles():
    mobiles = [f"mn{i}" for i in range(1, 101)]
    rr = rr_mobiles(mobiles, 0.2)
    assert len(rr) == 20 and len(set(rr)) == 20 and set(rr) <= set(mobiles)
    assert rr[0] == "mn1" and rr[1] == "mn6"  # every fifth, not the first twenty
    assert rr_mobiles(mobiles, 0.0) == [] and rr_mobiles(mobiles, 1.0) == mobiles
    assert rr_mobiles(["mn1"], 0.4) == []  # rounds to none


def test_quantiles_nearest_rank():
    q = quantiles([float(v) for v in range(1, 101)])
    assert q == {"count": 100, "median": 50.5, "p99": 99.0, "max": 100.0}
    assert quantiles([]) == {"count": 0, "median": None, "p99": None, "max": None}
    assert quantiles([3.0])["p99"] == 3.0


def test_bridge_commands_are_chunked_under_the_line_limit():
    commands = [f"sysctl -q -w net.ipv6.conf.m6abcdmn{i}-eth0.disable_ipv6=1" for i in range(300)]
    chunks = _chunks(commands, SHELL_LINE_MAX)
    assert [c for chunk in chunks for c in chunk] == commands  # all of them, in order
    assert len(chunks) > 1 and all(len(" && ".join(chunk)) <= SHELL_LINE_MAX for chunk in chunks)
    assert SHELL_LINE_MAX + len(" && echo bridge-ok") < 4096  # the terminal's line
    assert _chunks(["x" * 5000], SHELL_LINE_MAX) == [["x" * 5000]]  # a long one alone


def test_report_says_what_was_lost():
    empty = {"count": 0, "median": None, "p99": None, "max": None}
    side = {"bu_to_ba_ms": empty, "arrival_to_wake_ms": empty, "durable_write_ms": empty, "bus_received": 3,
            "bas_sent": 2, "unanswered": 1, "window_s": None, "bas_per_s": None, "bu_to_ba_undisturbed_ms": empty}
    s = {"mobiles": 3, "rr_mobiles": 0, "keys": "local", "persistence": "strict", "started": "t", "duration_s": 1,
         "ok": False, "error": None, "interrupted": False, "all_bound_before": True, "followed": 2, "lost": 1,
         "not_followed": ["mn3"], "retransmits": 4, "moves_span_ms": 1.0, "all_followed_after_s": None,
         "per_mechanism": {}, "cn": {"storm": side, "first_bindings": side, "drops_in_storm": {}},
         "ha": {"storm": side, "first_bindings": side}, "storm_window": None, "scale": {}, "host": None}
    text = report(s)
    assert "**ok: NO**" in text and "2 of 3; lost: 1 (mn3)" in text and "never answered: 1" in text
