"""R13 in the engines: a precomputed key's life is the total advance of its sequence number
since it was installed, at most 2^15, counted durably by the CN and by the MN (every jump
included) and surviving restarts (docs/protocol.md section 1, "Interpretations")."""

from __future__ import annotations

import pytest
from engine_fixtures import CN_PC, COA1, COA2, HOME, Disk, durable, make_world, preconfigured

from testbed.mip6.actions import Send
from testbed.mip6.cn import CorrespondentNode, record_key
from testbed.mip6.constants import IPPROTO_MH, SECOND_NS, BAStatus
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.events import Drop, RekeyRequired
from testbed.mip6.messages import BindingAck, BindingUpdate, decode
from testbed.mip6.packet import build_packet, parse_packet
from testbed.mip6.persistence import SeqRecord
from testbed.mip6.sealing import seal_bad
from testbed.mip6.seqno import KBM_MAX_ADVANCE
from testbed.storage.sequences import FileSequenceStore

CN = CN_PC


def kbm(data, coa=COA1):
    ht = home_keygen_token(data.kcn, HOME, data.home_nonce)
    return binding_management_key(ht, careof_keygen_token(data.kcn, coa, data.careof_nonce))


def bu(data, seq, coa=COA1):
    mh = seal_bad(BindingUpdate(seq, 100, ack=True), kbm(data, coa), coa, CN)
    return build_packet(coa, CN, IPPROTO_MH, mh, home_address=HOME)


def rekey(actions):
    return [a for a in actions if type(a) is RekeyRequired]


def ba_status(actions):
    got = [decode(parse_packet(a.packet).payload) for a in actions if type(a) is Send]
    return [m.status for m in got if type(m) is BindingAck]


@pytest.fixture
def data():
    return preconfigured()


def test_cn_refuses_the_replay_of_a_bu_captured_before_the_number_advanced_past_2_15(data):
    """The issue's attack: BU 1 accepted and captured; the MN's number then moves past 2^15 in
    a few large steps; the captured BU is replayed. Without the bound it compared as newer
    than the current number and took the binding back to the old care-of address."""
    store = Disk()
    cn = CorrespondentNode(CN, peers=[data])
    captured = bu(data, 1, COA1)
    assert ba_status(durable(cn, cn.receive(captured, 0), store)) == [BAStatus.ACCEPTED]
    seq = 1
    for _ in range(4):  # 8001, 16001, 24001, 32001: an advance of 32001, within the bound
        seq += 8000
        assert ba_status(durable(cn, cn.receive(bu(data, seq, COA2), 0), store)) == [BAStatus.ACCEPTED]
    out = durable(cn, cn.receive(bu(data, seq + 8000, COA2), 0), store)  # 40001 would take the advance past 2^15
    assert ba_status(out) == [] and rekey(out)
    assert store.get(record_key(data)) == SeqRecord(32001, KBM_MAX_ADVANCE)  # the key is used up
    out = durable(cn, cn.receive(bu(data, seq + 16000, COA2), 0), store)  # 48001: with a modulo-2^16 window alone, accepted
    assert ba_status(out) == [] and rekey(out)
    out = durable(cn, cn.receive(captured, 0), store)
    assert ba_status(out) == [] and rekey(out)
    assert cn.binding_for(HOME).careof == COA2 and cn.binding_for(HOME).seq == 32001


def test_cn_counts_every_step_not_every_use(data):
    store = Disk()
    cn = CorrespondentNode(CN, peers=[data])
    key = record_key(data)
    durable(cn, cn.receive(bu(data, 100), 0), store)
    assert store.get(key) == SeqRecord(100, 1)  # the first number accepted counts one step
    durable(cn, cn.receive(bu(data, 5100), 0), store)
    assert store.get(key) == SeqRecord(5100, 5001)
    durable(cn, cn.receive(bu(data, 5101), 0), store)
    assert store.get(key) == SeqRecord(5101, 5002)
    assert ba_status(durable(cn, cn.receive(bu(data, 5000), 0), store)) == [BAStatus.SEQUENCE_OUT_OF_WINDOW]
    assert store.get(key) == SeqRecord(5101, 5002)  # a refused number moves nothing


def test_cn_bound_survives_a_restart_with_the_agents_store(data, tmp_path):
    with FileSequenceStore(tmp_path / "st") as store:
        cn = CorrespondentNode(CN, peers=[data], records=store.load())
        durable(cn, cn.receive(bu(data, 1), 0), store)
        assert ba_status(durable(cn, cn.receive(bu(data, 30001), 0), store)) == [BAStatus.ACCEPTED]
    with FileSequenceStore(tmp_path / "st") as store:  # a new process: only the disk remembers
        cn = CorrespondentNode(CN, peers=[data], records=store.load())
        assert ba_status(durable(cn, cn.receive(bu(data, 32768), 0), store)) == [BAStatus.ACCEPTED]  # advance 32768: the last
        out = durable(cn, cn.receive(bu(data, 32769), 0), store)
        assert ba_status(out) == [] and rekey(out)
    with FileSequenceStore(tmp_path / "st") as store:
        cn = CorrespondentNode(CN, peers=[data], records=store.load())
        out = durable(cn, cn.receive(bu(data, 32770), 0), store)
        assert ba_status(out) == [] and rekey(out)


def _cn_bus(w, since=0):
    return [decode(parse_packet(p).payload) for (t, s, d, p) in w.net.wire if s == "mn" and d == "cn_pc" and t >= since]


def _answer_135(w, last):
    """Make the CN say its last accepted number is ``last``: it restarts with that record (as
    if it had been used elsewhere)."""
    w.restart("cn_pc", {record_key(w.cn_pc._peers[HOME].data): SeqRecord(last, 1)})


def test_mn_ba_135_far_ahead_never_takes_it_past_the_bound(data):
    """The issue's MN attack: answered with BA 135 carrying numbers far ahead, the MN jumped
    past a 2^15 advance, then past 2^16, and kept binding with the same key."""
    w = make_world(data=data)
    _answer_135(w, 20000)
    w.move(COA1)
    assert w.net.run_until(lambda: w.mn.bul[CN_PC].state == "bound", 10 * SECOND_NS)
    e = w.mn.bul[CN_PC]
    assert e.seq == 20001 and e.advance == 20001  # 1, then the jump to 20001: every number counted
    assert w.mn_store.get(e.store_key) == SeqRecord(20001, 20001)
    _answer_135(w, 40000)  # a further jump of 20000 would take the advance to 40000
    w.move(COA2)
    assert w.net.run_until(lambda: e.state == "rekey", 10 * SECOND_NS)
    assert w.net.events_of(RekeyRequired, "mn")
    assert w.mn_store.get(e.store_key) == SeqRecord(20002, KBM_MAX_ADVANCE)
    sent = [m.seq for m in _cn_bus(w)]
    assert max(sent) == 20002 and 40001 not in sent
    before = len(_cn_bus(w))
    w.move(COA1)
    w.net.run_for(5 * SECOND_NS)
    assert len(_cn_bus(w)) == before  # nothing more with this key


def test_mn_bound_survives_a_restart(data):
    w = make_world(data=data)
    _answer_135(w, 32000)
    w.move(COA1)
    assert w.net.run_until(lambda: w.mn.bul[CN_PC].state == "bound", 10 * SECOND_NS)
    assert w.mn.bul[CN_PC].advance == 32001
    w2 = make_world(data=data, disks=w.disks())  # every node restarted from its disk
    assert w2.mn.bul[CN_PC].advance == 32001
    _answer_135(w2, 33000)  # 999 further: over the bound
    w2.move(COA2)
    assert w2.net.run_until(lambda: w2.mn.bul[CN_PC].state == "rekey", 10 * SECOND_NS)
    w3 = make_world(data=data, disks=w2.disks())
    w3.move(COA1)
    w3.net.run_for(3 * SECOND_NS)
    assert w3.mn.bul[CN_PC].state == "rekey" and w3.net.events_of(RekeyRequired, "mn")
    assert not [m for m in _cn_bus(w3)]


def test_mn_ignores_a_ba_135_behind_its_number(data):
    """A stale or replayed BA 135 (authentic: Kbm never changes for a CoA) carries a number
    behind ours; taking it would move the number backwards or spend the key's advance."""
    w = make_world(data=data)
    w.net.filters.append(lambda src, dst, pkt: dst != "cn_pc")  # keep the BU outstanding
    w.move(COA1)
    w.net.run_for(10 * 1_000_000)
    e = w.mn.bul[CN_PC]
    seq, advance = e.seq, e.advance
    old = seal_bad(BindingAck(BAStatus.SEQUENCE_OUT_OF_WINDOW, (seq - 5) & 0xFFFF, 0), kbm(data, COA1), COA1, CN)
    out = w.mn.receive(build_packet(CN, COA1, IPPROTO_MH, old, rh2_address=HOME), w.net.now)
    assert "behind ours" in [a.reason for a in out if type(a) is Drop][-1]
    assert (e.seq, e.advance) == (seq, advance) and not [a for a in out if type(a) is Send]
