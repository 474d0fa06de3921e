"""A real correspondent-node agent in its own network namespace, driven by real packets from
another namespace: binding, replay after kill -9, malformed input, clean stop."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess

import pytest
from agent_proc import PYTHON, AgentProc, exchange
from netns_pair import netns_pair, sh

from testbed.agent.eventlog import read_events
from testbed.mip6.constants import IPPROTO_MH, BAStatus
from testbed.mip6.crypto import (
    binding_management_key,
    careof_keygen_token,
    home_keygen_token,
)
from testbed.mip6.keys import generate
from testbed.storage.keyfiles import write_new
from testbed.mip6.messages import BindingUpdate, decode
from testbed.mip6.packet import build_packet
from testbed.mip6.sealing import bad_valid, seal_bad

pytestmark = pytest.mark.lab

HOME = "2001:db8:1::100"
CN = "2001:db8:3::1"
COA = "2001:db8:3::100"


def A(text):
    return ipaddress.IPv6Address(text).packed


@pytest.fixture
def lab(tmp_path):
    with netns_pair([f"{COA}/64"], [f"{CN}/64"]) as (tag, mn_ns, cn_ns):
        data = write_new(tmp_path / "pair.yaml", generate(HOME, CN))
        agent = AgentProc(cn_ns, tmp_path, "cn", {"role": "cn", "address": CN, "preconfigured": [str(tmp_path / "pair.yaml")]})
        agent.start()
        try:
            yield agent, mn_ns, cn_ns, data
        finally:
            agent.stop(signal.SIGKILL)


def kbm_for(data):
    ht = home_keygen_token(data.kcn, A(HOME), data.home_nonce)
    return binding_management_key(ht, careof_keygen_token(data.kcn, A(COA), data.careof_nonce))


def bu(data, seq):
    mh = seal_bad(BindingUpdate(seq, 100, ack=True), kbm_for(data), A(COA), A(CN))
    return build_packet(A(COA), A(CN), IPPROTO_MH, mh, home_address=A(HOME))


def test_precomputed_bu_is_accepted_by_the_agent_and_logged(lab):
    agent, mn_ns, cn_ns, data = lab
    (p,) = exchange(mn_ns, bu(data, 1))
    ba = decode(p.payload)
    assert ba.status == BAStatus.ACCEPTED and ba.seq == 1
    assert p.rh2_address == A(HOME) and bad_valid(ba, kbm_for(data), A(COA), A(CN))
    bindings = agent.ctl("bindings")["bindings"]
    assert bindings == [{"home": HOME, "careof": COA, "seq": 1, "lifetime": 100, "mechanism": "precomputed"}]
    names = [e["event"] for e in agent.events()]
    for name in ("agent_started", "bu_received", "binding_created", "ba_sent", "packet_sent"):
        assert name in names
    # Secrets never reach the log.
    text = agent.log.read_text()
    for secret in (data.kcn, data.home_nonce, data.careof_nonce):
        assert secret.hex() not in text


def test_replayed_bu_after_kill_9_and_restart_is_refused_R4(lab):
    agent, mn_ns, cn_ns, data = lab
    old = bu(data, 1)
    assert decode(exchange(mn_ns, old)[0].payload).status == BAStatus.ACCEPTED
    assert decode(exchange(mn_ns, bu(data, 2))[0].payload).status == BAStatus.ACCEPTED
    agent.stop(signal.SIGKILL)
    agent.start()
    (p,) = exchange(mn_ns, old)
    ba = decode(p.payload)
    assert ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW and ba.seq == 2
    assert agent.ctl("bindings")["bindings"] == []


def test_malformed_packets_are_dropped_with_a_reason_and_the_agent_keeps_serving(lab):
    agent, mn_ns, cn_ns, data = lab
    good = bu(data, 1)
    bad = bytearray(good)
    bad[-30] ^= 0xFF  # checksum now wrong
    assert exchange(mn_ns, bytes(bad), deadline=0.5) == []
    truncated = build_packet(A(COA), A(CN), IPPROTO_MH, b"\x3b\x05\x05\x00\x00\x00\x00\x01")  # Header Len overruns
    assert exchange(mn_ns, truncated, deadline=0.5) == []
    assert decode(exchange(mn_ns, good)[0].payload).status == BAStatus.ACCEPTED
    reasons = [e["reason"] for e in agent.events() if e["event"] == "drop"]
    assert any("checksum" in r for r in reasons) and any("Header Len" in r for r in reasons)


def test_an_agent_weakened_with_keeps_serving_exits_70_after_a_malformed_packet(tmp_path):
    """TEST ONLY (testbed/mip6/weakening.py): what the conformance suite's "keeps serving"
    checks must catch. A bad checksum is not malformed: the agent serves on; a Header Len
    running past the packet is, and the agent exits with status 70, its log flushed."""
    with netns_pair([f"{COA}/64"], [f"{CN}/64"]) as (tag, mn_ns, cn_ns):
        data = write_new(tmp_path / "pair.yaml", generate(HOME, CN))
        agent = AgentProc(cn_ns, tmp_path, "cn", {"role": "cn", "address": CN, "test_weaken": ["keeps_serving"],
                                                  "preconfigured": [str(tmp_path / "pair.yaml")]})
        agent.start(env={"MIP6_TESTBED_ALLOW_WEAKENING": "1"})
        try:
            bad = bytearray(bu(data, 1))
            bad[-30] ^= 0xFF
            assert exchange(mn_ns, bytes(bad), deadline=0.5) == []
            assert decode(exchange(mn_ns, bu(data, 2))[0].payload).status == BAStatus.ACCEPTED
            truncated = build_packet(A(COA), A(CN), IPPROTO_MH, b"\x3b\x05\x05\x00\x00\x00\x00\x01")
            assert exchange(mn_ns, truncated, deadline=0.5) == []
            assert agent.proc.wait(timeout=10) == 70
        finally:
            agent.stop(signal.SIGKILL)
    events = read_events(agent.log)
    assert any(e["event"] == "drop" and "Header Len" in e["reason"] for e in events)
    assert events[-1]["event"] == "agent_stopped"


def test_sigterm_removes_the_rules_and_flushes_the_log(lab):
    agent, mn_ns, cn_ns, data = lab
    rules = sh("ip", "netns", "exec", cn_ns, "ip6tables-legacy", "-S", "OUTPUT").stdout
    assert rules.count("mip6-testbed:cn-") == 3
    assert agent.stop(signal.SIGTERM) == 0
    rules = sh("ip", "netns", "exec", cn_ns, "ip6tables-legacy", "-S", "OUTPUT").stdout
    assert "mip6-testbed" not in rules
    assert read_events(agent.log)[-1]["event"] == "agent_stopped"
    assert not agent.sock.exists()


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("role: cn\naddress: not-an-address\nstate_dir: s\nevent_log: e\ncontrol_socket: c\n")
    done = subprocess.run([PYTHON, "-m", "testbed.cli", "agent", "--config", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "address" in done.stderr and str(cfg) in done.stderr
    keyfile = tmp_path / "loose.yaml"
    write_new(keyfile, generate(HOME, CN))
    os.chmod(keyfile, 0o644)
    cfg.write_text(f"role: cn\naddress: {CN}\npreconfigured: [{keyfile}]\nstate_dir: s\nevent_log: e\ncontrol_socket: c\n")
    done = subprocess.run([PYTHON, "-m", "testbed.cli", "agent", "--config", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 2 and "0644" in done.stderr and done.stderr.count("\n") == 1
    assert not (tmp_path / "s").exists()  # nothing created before the configuration was checked
