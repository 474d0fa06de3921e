"""``testbed check-host``: features and fall-backs, host pauses, and a verdict on timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from testbed.lab.pauses import timing_verdict


def _testbed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize("args, words", [
    (["--seconds", "x"], "--seconds 'x': expected a number of seconds"),
    (["--seconds", "0"], "--seconds 0: expected more than 0"),
    (["--seconds", "nan"], "--seconds nan"),
    (["--seconds", "601"], "at most 600"),
    (["--seconds"], "argument --seconds: expected one argument"),
    (["--verbose"], "unrecognized arguments: --verbose"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, words):
    done = _testbed("check-host", *args)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and words in done.stderr and "Traceback" not in done.stderr


def test_features_figures_and_a_verdict_that_matches_the_exit_status():
    done = _testbed("check-host", "--seconds", "1", "--json")
    data = json.loads(done.stdout)
    names = [f["name"] for f in data["features"]]
    assert names == ["link delay", "kernel Mobile IPv6", "IPv6-in-IPv6 (ip6_tunnel)",
                     "duplicate address detection on mobile nodes", "packet filter (agents' ICMPv6 rules)"]
    kernel = data["kernel"]
    assert kernel["release"] == os.uname().release
    assert set(kernel["modules"]) == {"mip6", "ip6_tunnel", "tunnel6", "xfrm6_tunnel", "sch_netem"}
    if kernel["config_source"] is not None:  # the row says what the configuration says
        option = kernel["config"]["CONFIG_IPV6_MIP6"]
        assert f"CONFIG_IPV6_MIP6={option}" in data["features"][1]["chosen"] or option == "n"
        assert ("not in this kernel" in data["features"][1]["chosen"]) == (option == "n")
    assert data["features"][0]["chosen"] in ("netem", "user-space delay line (testbed.lab.delayline)")
    host = data["host"]
    assert 0.9 <= host["seconds"] <= 5 and host["monitor"]["cpus"] == len(os.sched_getaffinity(0))
    for key in ("paused_fraction", "steal_fraction", "cpu_held", "disturbed_fraction", "load", "per_cpu"):
        assert key in host
    assert host["monitor"]["realtime"] == (os.geteuid() == 0)
    verdict = data["verdict"]["timing"]
    assert verdict in ("trusted", "usable", "not trusted") and data["verdict"]["reasons"]
    assert done.returncode == (1 if verdict == "not trusted" else 0), done.stderr


def _summary(paused=0.0, held=0.0, longest=3.0, busy=0.1, realtime=True, cpus=2, steal=0.0):
    return {"monitor": {"realtime": realtime, "cpus": cpus}, "paused_fraction": paused, "longest_ms": longest,
            "steal_fraction": steal, "cpu_held": {"fraction": held, "longest_ms": 0.0},
            "disturbed_fraction": paused + held, "load": {"busy_fraction": busy}}


def test_timing_verdicts():
    assert timing_verdict(_summary(paused=0.004))[0] == "trusted"
    assert timing_verdict(_summary(paused=0.03))[0] == "usable"
    assert timing_verdict(_summary(paused=0.004, longest=60))[0] == "usable"
    assert timing_verdict(_summary(paused=0.12))[0] == "not trusted"
    assert timing_verdict(_summary(steal=0.15))[0] == "not trusted"
    assert timing_verdict(_summary(realtime=False))[0] == "not trusted"
    # busy CPUs while nothing of ours ran: other programs load the machine
    assert timing_verdict(_summary(busy=0.9), idle=True)[0] == "usable"
    assert timing_verdict(_summary(busy=0.9))[0] == "trusted"  # during a lab run: that is our own load
    assert timing_verdict(_summary(cpus=1))[0] == "usable"
