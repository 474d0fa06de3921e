"""Issue 9 against a running correspondent-node agent: every defect reproduced from outside,
with real packets from another namespace (built here independently of the agent's engine
state), a real full filesystem, and a real kill between creating and completing a record."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import socket

import pytest
from agent_proc import AgentProc, exchange, wait_for
from netns_pair import netns_pair, sh
from wire import Wire, with_dest_option

from testbed.mip6.constants import IPPROTO_MH, IPPROTO_UDP, BAStatus
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.keys import generate
from testbed.storage.keyfiles import write_new
from testbed.mip6.messages import BindingError, BindingUpdate, UnknownMessage, decode, encode
from testbed.mip6.options import UnknownOption
from testbed.mip6.packet import build_packet, internet_checksum, mh_checksum
from testbed.mip6.sealing import seal_bad

pytestmark = pytest.mark.lab

HOME = "2001:db8:1::100"
CN = "2001:db8:3::1"
COA = "2001:db8:3::100"
COA2 = "2001:db8:3::200"


def A(text):
    return ipaddress.IPv6Address(text).packed


def kbm_for(data, coa=COA):
    ht = home_keygen_token(data.kcn, A(HOME), data.home_nonce)
    return binding_management_key(ht, careof_keygen_token(data.kcn, A(coa), data.careof_nonce))


def bu(data, seq, coa=COA, options=()):
    mh = seal_bad(BindingUpdate(seq, 100, ack=True, options=tuple(options)), kbm_for(data, coa), A(coa), A(CN))
    return build_packet(A(coa), A(CN), IPPROTO_MH, mh, home_address=A(HOME))


def statuses(packets):
    return [decode(p.payload).status for p in packets if p.next_header == IPPROTO_MH]


def store_file(state_dir, data) -> str:
    """Where the agent's store keeps this peer's record (FileSequenceStore's naming)."""
    key = f"cn/{ipaddress.IPv6Address(HOME).exploded.replace(':', '')}/{data.key_id}"
    return os.path.join(state_dir, "sequence", hashlib.sha256(key.encode()).hexdigest()[:32] + ".seq")


@pytest.fixture
def pair(tmp_path):
    with netns_pair([f"{COA}/64", f"{COA2}/64"], [f"{CN}/64"]) as (tag, mn_ns, cn_ns):
        data = write_new(tmp_path / "pair.yaml", generate(HOME, CN))
        yield tmp_path, mn_ns, cn_ns, data


def cn_agent(tmp_path, cn_ns):
    return AgentProc(cn_ns, tmp_path, "cn", {"role": "cn", "address": CN, "preconfigured": [str(tmp_path / "pair.yaml")]})


@pytest.fixture
def lab(pair):
    tmp_path, mn_ns, cn_ns, data = pair
    agent = cn_agent(tmp_path, cn_ns).start()
    try:
        yield agent, mn_ns, cn_ns, data
    finally:
        agent.stop(signal.SIGKILL)


# ---------------------------------------------------------------- R13: the replay hole


def test_replay_of_a_captured_bu_after_the_number_advanced_past_2_15_is_refused_R13(lab):
    """The issue's attack, as it was run: BU 1 accepted and captured; the MN's number moves
    past 2^15 in a few large steps; the captured BU is replayed. It was accepted, and the
    binding went back to the old care-of address. Now the step over the bound ends the key
    (rekey_required), and the replay changes nothing; after kill -9 and a restart too."""
    agent, mn_ns, cn_ns, data = lab
    captured = bu(data, 1, COA)
    assert statuses(exchange(mn_ns, captured)) == [BAStatus.ACCEPTED]
    for seq in (8001, 16001, 24001, 32001):
        assert statuses(exchange(mn_ns, bu(data, seq, COA2))) == [BAStatus.ACCEPTED]
    for seq in (40001, 48001):  # over the bound: no BA, the key is used up
        assert exchange(mn_ns, bu(data, seq, COA2), deadline=0.5) == []
    agent.wait_event("rekey_required", key_id=data.key_id)
    assert exchange(mn_ns, captured, deadline=0.5) == []
    assert agent.ctl("bindings")["bindings"][0]["careof"] == COA2
    assert agent.ctl("bindings")["bindings"][0]["seq"] == 32001
    # The bound is in the store: a restarted agent refuses even a step of one.
    agent.stop(signal.SIGKILL)
    agent.start()
    n = len(agent.events())
    assert exchange(mn_ns, bu(data, 32002, COA2), deadline=0.5) == []
    assert exchange(mn_ns, captured, deadline=0.5) == []
    agent.wait_event("rekey_required", since=n, key_id=data.key_id)


# ---------------------------------------------------------------- torn first write of a new peer's record


def test_first_record_write_on_a_full_disk_is_an_event_and_the_peer_binds_once_space_is_back(pair):
    """A small tmpfs as the agent's state directory, filled up: the new peer's first record
    cannot be written. The BU is dropped with a store_failed event (no BA: nothing durable,
    nothing acknowledged), the agent keeps serving, and once space is back the peer binds."""
    tmp_path, mn_ns, cn_ns, data = pair
    state = tmp_path / "cn-state"
    state.mkdir()
    sh("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", f"mip6test-{tmp_path.name}", str(state))
    agent = None
    try:
        agent = cn_agent(tmp_path, cn_ns).start()
        filler = state / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, bytes(4096))
        except OSError:
            pass  # ENOSPC: the filesystem is full
        finally:
            os.close(fd)
        for seq in (1, 2):
            assert exchange(mn_ns, bu(data, seq), deadline=0.5) == []
        failed = agent.wait_event("store_failed")
        assert "No space left on device" in failed["reason"]
        assert not [e for e in agent.events() if e["event"] == "internal_error"]
        assert agent.proc.poll() is None and agent.ctl("status")["ok"]
        assert os.listdir(state / "sequence") == []  # no torn record file left behind
        filler.unlink()
        assert statuses(exchange(mn_ns, bu(data, 3))) == [BAStatus.ACCEPTED]
        assert agent.ctl("bindings")["bindings"][0]["seq"] == 3
    finally:
        if agent is not None:
            agent.stop(signal.SIGKILL)
        sh("umount", str(state), check=False)


def test_kill_between_creating_and_completing_a_new_peers_record_then_the_peer_binds(pair):
    """strace kills the agent (SIGKILL) when it renames the new record into place: the record
    was created and written, not completed. A restarted agent binds the peer. And the 0-byte
    record file an older store left after such a kill does not lock the peer out either."""
    tmp_path, mn_ns, cn_ns, data = pair
    agent = cn_agent(tmp_path, cn_ns)
    strace = ("strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2",
              "-e", "inject=rename,renameat,renameat2:signal=KILL")
    agent.start(wrapper=strace, env={"PYTHONDONTWRITEBYTECODE": "1"})
    try:
        assert exchange(mn_ns, bu(data, 1), deadline=1.0) == []
        wait_for(lambda: agent.proc.poll() is not None, 10, "the agent killed at the rename")
        assert agent.proc.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)  # strace passes the tracee's fate on
        seqdir = tmp_path / "cn-state" / "sequence"
        left = os.listdir(seqdir)
        assert len(left) == 1 and left[0].endswith(".seq-new")  # created and written, never completed
        agent.start()
        assert os.listdir(seqdir) == []
        assert statuses(exchange(mn_ns, bu(data, 2))) == [BAStatus.ACCEPTED]
        agent.stop(signal.SIGKILL)
        # What the store of before this issue left after the same kill: an empty record file.
        path = store_file(tmp_path / "cn-state", data)
        os.unlink(path)
        open(path, "wb").close()
        agent.start()
        assert statuses(exchange(mn_ns, bu(data, 3))) == [BAStatus.ACCEPTED]
        assert not [e for e in agent.events() if e["event"] == "internal_error"]
    finally:
        agent.stop(signal.SIGKILL)


# ---------------------------------------------------------------- options the agent does not know


def test_authentic_bu_with_an_unrecognised_destination_option_is_discarded_with_parameter_problem(lab):
    """RFC 8200 4.2: action bits 01 discard; 10 and 11 discard and answer ICMPv6 Parameter
    Problem code 2 pointing at the option. The agent's own ICMPv6 filter drops the kernel's
    Parameter Problems (its Home Address option ones), never the agent's: exactly one comes."""
    agent, mn_ns, cn_ns, data = lab
    for seq, option_type in ((1, 0x7E), (2, 0xBE), (3, 0xFE)):
        pkt = with_dest_option(bu(data, seq), option_type)
        got = exchange(mn_ns, pkt, deadline=1.0, want=2, errors=True)
        assert not [p for p in got if p.next_header == IPPROTO_MH], option_type  # no BA
        icmp = [p for p in got if p.next_header == 58]
        if option_type >> 6 == 1:
            assert icmp == []
        else:
            (p,) = icmp
            assert (p.payload[0], p.payload[1], p.src, p.dst) == (4, 2, A(CN), A(COA))
            pointer = int.from_bytes(p.payload[4:8], "big")
            assert pkt[pointer] == option_type and p.payload[8:] == pkt
            pseudo = p.src + p.dst + len(p.payload).to_bytes(4, "big") + bytes((0, 0, 0, 58))
            assert internet_checksum(pseudo + p.payload) == 0
    assert agent.ctl("bindings")["bindings"] == []
    drops = [e["reason"] for e in agent.events() if e["event"] == "drop"]
    assert sum("unrecognised option" in r for r in drops) == 3
    assert statuses(exchange(mn_ns, bu(data, 4))) == [BAStatus.ACCEPTED]  # and it keeps serving


def test_parameter_problems_are_rate_limited(lab):
    agent, mn_ns, cn_ns, data = lab
    wire = Wire(mn_ns)
    try:
        wire.drain()
        pkt = with_dest_option(bu(data, 1), 0xBE)
        for _ in range(60):
            wire.send(pkt)
        got = wire.collect(1.5, lambda p: p.next_header == 58 and p.payload[0] == 4)
    finally:
        wire.close()
    assert 10 <= len(got) <= 10 + 2 + 10 * 1.5  # a burst of 10, then 10 a second
    agent.wait_event("error_not_sent", what="Parameter Problem")


def test_two_different_unknown_mobility_options_are_skipped(lab):
    agent, mn_ns, cn_ns, data = lab
    opts = (UnknownOption(0x20, b"ab"), UnknownOption(0x21, b"cd"))
    assert statuses(exchange(mn_ns, bu(data, 1, options=opts))) == [BAStatus.ACCEPTED]


def test_mh_checksum_covers_the_mobility_header_not_what_follows_it(lab):
    agent, mn_ns, cn_ns, data = lab
    pkt = bytearray(bu(data, 1) + b"trailing")  # 8 octets after the MH (Payload Proto 59)
    pkt[4:6] = (int.from_bytes(pkt[4:6], "big") + 8).to_bytes(2, "big")
    assert statuses(exchange(mn_ns, bytes(pkt))) == [BAStatus.ACCEPTED]
    # A checksum over the whole IPv6 payload (the old reading) is a bad checksum.
    mh = seal_bad(BindingUpdate(2, 100, ack=True), kbm_for(data), A(COA), A(CN))
    tail = mh + b"trailing"
    wrong = bytearray(bytes(pkt[: len(pkt) - len(tail)]) + mh + b"trailing")
    off = len(wrong) - len(tail)
    wrong[off + 4 : off + 6] = mh_checksum(A(HOME), A(CN), mh[:4] + b"\0\0" + mh[6:] + b"trailing").to_bytes(2, "big")
    assert exchange(mn_ns, bytes(wrong), deadline=0.5) == []
    assert any("checksum" in e.get("reason", "") for e in agent.events() if e["event"] == "drop")


# ---------------------------------------------------------------- Binding Errors


def test_binding_errors_follow_rfc_6275_9_3_3(lab):
    """Never to a multicast source; the Home Address field is the unspecified address when
    the packet had no Home Address option; at most a burst of 10, then 10 a second."""
    agent, mn_ns, cn_ns, data = lab
    unknown_type = encode(UnknownMessage(42, b"\0\0"))
    (p,) = exchange(mn_ns, build_packet(A(COA), A(CN), IPPROTO_MH, unknown_type))
    be = decode(p.payload)
    assert type(be) is BindingError and be.status == 2 and be.home_address == bytes(16)
    wire = Wire(mn_ns)
    try:
        wire.drain()
        for src in ("ff02::1", "ff05::1"):
            wire.send(build_packet(A(src), A(CN), IPPROTO_MH, unknown_type))
            wire.send(build_packet(A(src), A(CN), IPPROTO_UDP, bytes(16), home_address=A(HOME)))
        assert wire.collect(0.5, lambda p: p.next_header == IPPROTO_MH, multicast=True) == []
        not_sent = [e for e in agent.events() if e["event"] == "error_not_sent" and e["what"] == "BE"]
        wait_for(lambda: len([e for e in agent.events() if e["event"] == "error_not_sent"]) >= 4, 5, "4 refusals")
        not_sent = [e for e in agent.events() if e["event"] == "error_not_sent"]
        assert {e["to"] for e in not_sent} == {"ff02::1", "ff05::1"}
        assert all("not a unicast" in e["reason"] for e in not_sent)
        wire.drain()
        for _ in range(200):  # the fuzzer's 1.6-2.2 thousand a second
            wire.send(build_packet(A(COA), A(CN), IPPROTO_MH, unknown_type))
        got = wire.collect(1.5, lambda p: p.next_header == IPPROTO_MH)
    finally:
        wire.close()
    assert 10 <= len(got) <= 10 + 2 + 10 * 1.5
    assert all(decode(p.payload).home_address == bytes(16) for _, p in got)


# ---------------------------------------------------------------- control socket


def _raw_request(sock_path, line: bytes) -> list[dict]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(sock_path))
        s.sendall(line + b"\n" + b'{"cmd": "status"}\n')
        buf = b""
        while buf.count(b"\n") < 2:
            chunk = s.recv(65536)
            assert chunk, f"the agent closed the connection after {buf!r}"
            buf += chunk
    return [json.loads(x) for x in buf.splitlines()]


def test_control_socket_answers_bad_requests_with_a_clean_error(lab):
    agent, mn_ns, cn_ns, data = lab
    deep = b'{"cmd": "status", "x": ' + b"[" * 30000 + b"]" * 30000 + b"}"
    assert len(deep) < 64 * 1024
    first, second = _raw_request(agent.sock, deep)
    assert first == {"ok": False, "error": "request nested too deeply: expected a flat JSON object"}
    assert second["ok"] and second["role"] == "cn"  # the same connection goes on
    for args, word in (({"rate": 1e-320}, "rate"), ({"count": -1}, "count"), ({"count": "many"}, "count")):
        answer = agent.ctl("probe_start", home=HOME, **args)
        assert answer["ok"] is False and answer["error"].startswith(f"{word}: "), answer
    assert agent.ctl("probe_stop") == {"ok": True, "sent": 0}
    assert not [e for e in agent.events() if e["event"] == "internal_error"]
    assert agent.proc.poll() is None
