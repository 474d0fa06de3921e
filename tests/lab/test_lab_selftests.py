"""Issue 3's acceptance, through the self-test command (``testbed lab --test ...``), which
checks its own goal: these tests run the command and check its verdict and figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.lab.selftest import MIN_CLEAN_SAMPLES

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def _testbed(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, check=False)


def selftest(*args: str) -> tuple[int, dict]:
    done = _testbed("lab", *args, "--json")
    assert done.stdout.strip(), done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("topo, nodes", [("handover", 7), ("corporate", 16)])
def test_pingall(topo, nodes):
    code, data = selftest("--topo", topo, "--test", "pingall")
    assert data["sent"] == nodes * (nodes - 1)
    assert data["lost"] == 0, [p for p in data["pairs"] if not p["ok"]]
    assert data["ok"] and code == 0
    assert any("link delay" in f for f in data["features"])  # the run says its backend


@pytest.mark.parametrize("delay_ms", [1, 10, 50])
def test_delay(delay_ms):
    code, data = selftest("--topo", "handover", "--test", "delay", "--param", f"delay={delay_ms}ms")
    links = {link["link"]: link for link in data["links"]}
    # every link of the handover topology with a delay parameter is measured, against 2 x delay
    assert set(links) == {"ar1-a1", "ar2-a2", "ha-hm", "core-ar1", "core-ar2", "core-ha", "core-cn",
                          "core-att"}
    assert all(link["configured_rtt_ms"] == 2 * delay_ms for link in links.values())
    # No loss, and the median (of the round trips no host pause or held CPU overlapped) within
    # 0.3 ms + 2 % on every link: this holds on any machine not loaded by other programs. (A
    # link that too few undisturbed round trips crossed has no median and is inconclusive.)
    lost = {name: (link["sent"], link["received"]) for name, link in links.items() if link["received"] != link["sent"]}
    assert not lost, f"backend {data['backend']}: loss: {lost}"
    # (judged as the self-test does: a median of fewer than MIN_CLEAN_SAMPLES clean round trips
    # says nothing, nor one taken while other programs kept the CPUs busy)
    judged = {name: link for name, link in links.items()
              if link["clean_samples"] >= MIN_CLEAN_SAMPLES and not link["contended"]}
    off = {name: link["median_ms"] for name, link in judged.items()
           if link["median_ms"] is None
           or abs(link["median_ms"] - link["configured_rtt_ms"]) > link["tolerance_ms"]}
    assert not off, f"backend {data['backend']}: median off goal: {off}"
    assert all(link["min_ms"] >= link["configured_rtt_ms"] for link in links.values())
    if data["inconclusive"]:
        assert code == 3
        pytest.skip(f"not judgeable: the host paused this machine, or other programs kept its CPUs busy "
                    f"(CPU pressure per link {[link['cpu_pressure'] for link in links.values()]}): {data['host']}")
    bad = {name: link["mdev_ms"] for name, link in links.items() if not link["ok"]}
    assert not bad, f"backend {data['backend']}: mdev off goal: {bad}"
    assert data["ok"] and code == 0


def test_move():
    code, data = selftest("--topo", "handover", "--test", "move")
    assert data["count"] == 20 and data["succeeded"] == 20, [m for m in data["moves"] if not m["ok"]]
    assert [m["to"] for m in data["moves"][:2]] == ["a2", "a1"]
    prefixes = {"a1": "2001:db8:a:1:", "a2": "2001:db8:a:2:"}
    assert all(m["address"].startswith(prefixes[m["to"]]) for m in data["moves"])
    assert all(0 <= m["ra_ms"] <= m["coa_ms"] for m in data["moves"])
    assert data["coa_ms"]["median"] < 150, data["coa_ms"]
    assert data["ok"] and code == 0


def test_move_goal_missed_exits_1():
    """AR2 sends no router advertisements at all: the move onto its segment is never detected
    (certainly, not by chance: with slow RA intervals an RA could still come in time)."""
    code, data = selftest("--topo", "handover", "--test", "move", "--moves", "1", "--param", "ra_silent=ar2")
    assert code == 1 and not data["ok"] and data["succeeded"] == 0
    assert "no usable address on 2001:db8:a:2::/64" in data["moves"][0]["error"]


def test_interactive_cli_runs_commands_in_nodes():
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "lab", "--topo", "handover"],
                          input="mn ping -6 -n -c 1 -w 5 2001:db8:e:1::2\nexit\n",
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "home address 2001:db8:1::100" in done.stdout
    assert "1 packets transmitted, 1 received" in done.stdout + done.stderr  # Mininet logs to stderr
