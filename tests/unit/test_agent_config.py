"""Agent configuration files: each role's keys, and one-line refusals of bad ones."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from testbed.agent.config import parse_agent_config
from testbed.errors import ConfigError

COMMON = {"state_dir": "st", "event_log": "ev.jsonl", "control_socket": "c.sock"}
MN = {**COMMON, "role": "mn", "interfaces": ["mn-eth0"], "home_address": "2001:db8:1::100",
      "home_agent": "2001:db8:1::1", "home_prefix": "2001:db8:1::/64", "correspondents": ["2001:db8:3::1"],
      "preconfigured": ["pair.yaml"], "mn_ha_keys": ["mnha.yaml"]}
CN = {**COMMON, "role": "cn", "address": "2001:db8:3::1", "preconfigured": ["a.yaml", "/etc/mip6/b.yaml"]}
HA = {**COMMON, "role": "ha", "address": "2001:db8:1::1", "home_prefix": "2001:db8:1::/64", "mn_ha_keys": ["k.yaml"]}


def test_valid_configurations_of_each_role(tmp_path):
    source = str(tmp_path / "agent.yaml")
    mn = parse_agent_config(MN, source)
    assert mn.node == "mn" and mn.interfaces == ("mn-eth0",) and str(mn.home_address) == "2001:db8:1::100"
    assert mn.preconfigured == (tmp_path / "pair.yaml",)  # relative paths are relative to the file
    cn = parse_agent_config(CN, source)
    assert [str(p) for p in cn.preconfigured] == [str(tmp_path / "a.yaml"), "/etc/mip6/b.yaml"]
    assert cn.precomputed_max_lifetime == 0xFFFF and cn.probe_port == 7777
    assert mn.home_token_reuse is True
    assert parse_agent_config({**MN, "home_token_reuse": False}, source).home_token_reuse is False
    ha = parse_agent_config({**HA, "node": "home-agent"}, source)
    assert ha.node == "home-agent" and ha.interfaces == ()


def test_persistence_is_strict_by_default_or_a_reserve_per_agent(tmp_path):
    source = str(tmp_path / "agent.yaml")
    for doc in (CN, MN, HA):
        assert parse_agent_config(doc, source).persistence.describe() == "strict"
        assert parse_agent_config({**doc, "persistence": "strict"}, source).persistence.strict
        reserve = parse_agent_config({**doc, "persistence": {"reserve": 64}}, source).persistence
        assert reserve.reserve == 64 and not reserve.strict and reserve.describe() == "reserve: 64"


@pytest.mark.parametrize(
    "doc, words",
    [
        ({**CN, "role": "router"}, "role"),
        ({**CN, "home_agent": "2001:db8:1::1"}, "unknown key 'home_agent'"),
        ({k: v for k, v in CN.items() if k != "address"}, "missing key 'address'"),
        ({**CN, "address": "2001:db8::zz"}, "is not an IPv6 address"),
        ({**MN, "interfaces": []}, "a mobile node needs its interface"),
        ({**MN, "interfaces": ["a", "a"]}, "an interface is named twice"),
        ({**MN, "mn_ha_keys": ["a.yaml", "b.yaml"]}, "exactly one MN-HA key file"),
        ({**MN, "home_address": "2001:db8:2::100"}, "is not in home_prefix"),
        ({**HA, "address": "2001:db8:9::1"}, "is not in home_prefix"),
        ({**CN, "probe_port": 70000}, "probe_port"),
        ({**CN, "interfaces": ["a-name-longer-than-15"]}, "interfaces"),
        ({**MN, "home_token_reuse": "no"}, "home_token_reuse: 'no' is not true or false"),
        ({**CN, "home_token_reuse": False}, "unknown key 'home_token_reuse'"),
        ({**CN, "persistence": "lazy"}, "persistence: 'lazy' is neither 'strict' nor a mapping {reserve: N}"),
        ({**CN, "persistence": {"reserve": 0}}, "persistence: reserve 0 is not a whole number in 1..4096"),
        ({**HA, "persistence": {"reserve": 4097}}, "persistence: reserve 4097"),
        ({**MN, "persistence": {"reserve": "64"}}, "persistence: reserve '64'"),
        ({**CN, "persistence": {"reserve": 64, "sync": True}}, "persistence:"),
    ],
)
def test_bad_configurations_are_refused_in_one_line(doc, words):
    with pytest.raises(ConfigError) as err:
        parse_agent_config(doc, "/etc/mip6/agent.yaml")
    message = str(err.value)
    assert message.startswith("/etc/mip6/agent.yaml: ") and words in message and "\n" not in message


# ---------------------------------------------------------------- configuration files the agent refuses at once



def _bad_files(tmp_path):
    """The issue's three files: not UTF-8 (was a traceback, exit 1), a named pipe (was read
    for ever), 50 MB (was read and parsed for 30 s)."""
    nonutf8 = tmp_path / "latin1.yaml"
    nonutf8.write_bytes(b"role: cn\nnode: caf\xe9\n")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as f:
        f.truncate(50 * 1000 * 1000)  # sparse: 50 MB of zeros without writing them
    return {"not UTF-8": nonutf8, "not a regular file": fifo, "too large": big}


def test_bad_configuration_files_are_refused_in_one_line_with_exit_2_at_once(tmp_path):
    """Each within the deadline (the process is killed after 10 s: a hang or a 30 s read
    fails the test), one line naming the file and the problem, exit 2, nothing created.
    benchmarks/test_agent_config_refusal.py measures how long it takes (well under 1 s)."""
    for problem, path in _bad_files(tmp_path).items():
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "testbed.cli", "agent", "--config", str(path)],
                              capture_output=True, text=True, timeout=10)
        elapsed = time.monotonic() - start
        assert done.returncode == 2, (problem, done.stderr)
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert str(path) in done.stderr and problem in done.stderr, done.stderr
        print(f"{problem}: refused in {elapsed:.2f} s")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml", "fifo.yaml", "latin1.yaml"]


def test_configuration_nested_too_deeply_is_one_line(tmp_path):
    from testbed.agent.config import load_agent_config

    path = tmp_path / "deep.yaml"
    path.write_text("[" * 5000)
    with pytest.raises(ConfigError, match="nest") as err:  # libyaml says it, or our RecursionError guard
        load_agent_config(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("value, words", [("reserve:0", "reserve 0 is not a whole number in 1..4096"),
                                          ("lazy", "expected strict or reserve:N"), ("reserve:", "expected strict")])
def test_the_experiments_persistence_option_is_checked_before_anything_runs(value, words):
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "experiment", "handover", "--persistence", value],
                          capture_output=True, text=True)
    assert done.returncode == 2 and words in done.stderr and done.stderr.count("\n") == 1, done.stderr
    from testbed.commands.experiment import parse_persistence_option

    assert parse_persistence_option("strict") == "strict" and parse_persistence_option("reserve:64") == {"reserve": 64}


def test_keep_warm_is_off_by_default_and_a_bounded_number_of_milliseconds(tmp_path):
    source = str(tmp_path / "agent.yaml")
    for doc in (CN, MN, HA):
        assert parse_agent_config(doc, source).keep_warm_ms == 0
        assert parse_agent_config({**doc, "keep_warm_ms": 2}, source).keep_warm_ms == 2.0
        assert parse_agent_config({**doc, "keep_warm_ms": 0.5}, source).keep_warm_ms == 0.5
    for bad in (0.1, -1, 1001, float("nan"), float("inf"), True, "2", [2]):
        with pytest.raises(ConfigError) as exc:
            parse_agent_config({**CN, "keep_warm_ms": bad}, source)
        assert str(exc.value).startswith(f"{source}: keep_warm_ms: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize("args, words", [
    (["--keep-warm", "5000"], "--keep-warm: keep_warm_ms: 5000.0 is neither 0"),
    (["--keep-warm", "nan"], "--keep-warm: keep_warm_ms: nan"),
    (["--keep-warm", "2", "--inventory", "playbooks/inventory/multihost.yml"], "only for the Mininet labs"),
])
def test_the_experiments_keep_warm_option_is_checked_before_anything_runs(args, words, tmp_path):
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "experiment", "handover", *args, "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and words in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert not out.exists()
