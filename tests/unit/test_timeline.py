"""Handover decomposition (testbed/experiments/timeline.py) on hand-made event logs and captures:
the points, the critical path's phases and the split of measured-minus-model."""

from __future__ import annotations

import dataclasses

import pytest

from testbed.agent.events import LOG_EVENTS
from testbed.diag.verify import MHRecord
from testbed.experiments.timeline import decompose, move_timeline
from testbed.lab.handover_check import CapturedMH
from testbed.mip6.events import Event

MS = 1_000_000
COA = "2001:db8:a:2:0:ff:fe00:100"
CN = "2001:db8:e:1::2"
HA = "2001:db8:1::1"
HOME = "2001:db8:1::100"


_FILL = {"str": "", "int": 0, "bool": False, "float": 0.0, "list": []}


def ev(node: str, t_ms: float, event: str, **fields) -> Event:
    """The typed event ``event`` (its class by log name), the fields a test does not care
    about filled with empty values."""
    cls = LOG_EVENTS[event]
    for f in dataclasses.fields(cls):
        if f.name not in ("t_ns", "node") and f.name not in fields and f.default is dataclasses.MISSING:
            fields[f.name] = _FILL[str(f.type).split(" ")[0]]
    return cls(int(t_ms * MS), node, **fields)


def sent(node: str, t_ms: float, what: str, trigger_ms: float) -> Event:
    return ev(node, t_ms, "packet_sent", what=what, trigger_t_ns=int(trigger_ms * MS))


def write(node: str, t_ms: float, ms: float) -> Event:
    return ev(node, t_ms, "durable_write", end_t_ns=int((t_ms + ms) * MS), key="k")


def precomputed_move(coa=100.0):
    """Move at 0, RA 40, CoA usable 100; home BU and CN BU written (0.5 ms each) and sent;
    the BU reaches the CN 8.1 ms after it left, the CN writes (0.4) and answers at +1.0, the BA
    comes back in 8.1 ms; probes 41..44 go to the old CoA and are lost."""
    mn = [ev("mn", 40, "ra_new_prefix", prefix="2001:db8:a:2::/64"),
          ev("mn", coa, "coa_usable", careof=COA),
          ev("mn", coa, "bu_sent", peer=HA, mechanism="home", seq=7, careof=COA),
          ev("mn", coa, "bu_sent", peer=CN, mechanism="precomputed", seq=9, careof=COA),
          write("mn", coa + 0.1, 0.5), write("mn", coa + 0.6, 0.5),
          sent("mn", coa + 1.2, "BU home", coa), sent("mn", coa + 1.3, "BU", coa),
          ev("mn", coa + 18.5, "ba_received", peer=CN, mechanism="precomputed", seq=9, status=0),
          ev("mn", coa + 18.5, "cn_registered", peer=CN, mechanism="precomputed", careof=COA, seq=9),
          ev("mn", coa + 48, "ba_received", peer=HA, mechanism="home", seq=7, status=0),
          ev("mn", 5, "probe_received", number=40, path="direct", to="2001:db8:a:1:0:ff:fe00:100"),
          ev("mn", coa + 26, "probe_received", number=45, path="direct", to=COA)]
    cn = [ev("cn", coa + 9.4, "bu_received", seq=9, careof=COA, home=HOME),
          write("cn", coa + 9.6, 0.4),
          sent("cn", coa + 10.4, "BA", coa + 9.4)]
    return {"mn": mn, "cn": cn, "ha": []}


def test_precomputed_points_phases_and_split():
    tl = move_timeline("precomputed", precomputed_move(), {}, t_move=0, careof=COA, cn=CN, ha=HA, until=10**12)
    assert tl.missing is None and tl.chain == "precomputed"
    p = {k: v / MS for k, v in tl.points.items() if v is not None}
    assert p == {"ra": 40, "coa": 100, "home_bu": 101.2, "home_ba": 148, "bu_sent": 101.3, "bu_at_cn": 109.4,
                 "ba_sent": 110.4, "ba": 118.5, "first_probe": 126}
    assert [(ph.name, ph.kind, round(ph.ms, 3)) for ph in tl.phases] == [
        ("MN: CoA usable->BU on the wire", "mn", 1.3), ("network: BU MN->CN", "net", 8.1),
        ("CN: BU->BA", "cn", 1.0), ("network: BA CN->MN", "net", 8.1)]
    assert tl.probes_lost == 4 and tl.probe_gap_ms == 121
    d = decompose(tl, "precomputed", 16.0, {"mn-cn": 0.15})
    assert d.measured_ms == pytest.approx(18.5)
    assert d.durable_writes_ms == pytest.approx(1.4)  # both MN writes and the CN's are on the path
    assert d.mn_processing_ms == pytest.approx(0.3) and d.cn_turnaround_ms == pytest.approx(0.6)
    assert d.delay_line_bias_ms == pytest.approx(0.15)
    # 18.5 - 16 = 2.5 = 0.3 + 0.6 + 1.4 + 0.15 + 0.05
    assert d.unexplained_ms == pytest.approx(0.05)
    assert decompose(tl, "precomputed", 16.0, {"mn-cn": None}).unexplained_ms is None


def test_capture_times_come_first_and_a_missing_point_is_named():
    events = precomputed_move()
    bu = MHRecord(1, "BU", COA, CN, seq=9)
    ba = MHRecord(2, "BA", CN, COA, seq=9)
    other = MHRecord(3, "BU", COA, CN, seq=8)  # an older BU: not this one
    captured = {"mn": [CapturedMH(int(100.9 * MS), other), CapturedMH(int(101.0 * MS), bu)],
                "cn": [CapturedMH(int(110.2 * MS), ba)]}
    tl = move_timeline("precomputed", events, captured, t_move=0, careof=COA, cn=CN, ha=HA, until=10**12)
    assert tl.points["bu_sent"] == 101 * MS and tl.points["ba_sent"] == int(110.2 * MS)
    events["cn"] = []  # the CN never logged it
    tl = move_timeline("precomputed", events, {}, t_move=0, careof=COA, cn=CN, ha=HA, until=10**12)
    assert tl.phases == [] and tl.missing == "BU at the CN"
    assert decompose(tl, "precomputed", 16.0, {"mn-cn": 0.1}) is None
    # events of the next move are not this move's
    tl = move_timeline("precomputed", precomputed_move(), {}, t_move=0, careof=COA, cn=CN, ha=HA, until=110 * MS)
    assert tl.missing == "cn_registered"


def scratch_move():
    """rr-scratch: home BU/BA (HA writes 0.5), HoTI through the HA, HoT back; CoT came early."""
    c = 100.0
    mn = [ev("mn", c, "coa_usable", careof=COA),
          ev("mn", c, "bu_sent", peer=HA, mechanism="home", seq=3, careof=COA),
          ev("mn", c, "coti_sent", peer=CN, careof=COA),
          write("mn", c + 0.1, 0.5), sent("mn", c + 0.8, "BU home", c), sent("mn", c + 0.9, "CoTI", c),
          ev("mn", c + 17.5, "cot_received", peer=CN, nonce_index=1),
          ev("mn", c + 48.0, "ba_received", peer=HA, mechanism="home", seq=3, status=0),
          ev("mn", c + 48.0, "hoti_sent", peer=CN, tunnelled=True),
          sent("mn", c + 48.3, "HoTI tunnelled", c + 48.0),
          ev("mn", c + 145.0, "hot_received", peer=CN, nonce_index=2),
          ev("mn", c + 145.0, "bu_sent", peer=CN, mechanism="rr", seq=5, careof=COA),
          write("mn", c + 145.1, 0.5), sent("mn", c + 145.8, "BU", c + 145.0),
          ev("mn", c + 162.3, "cn_registered", peer=CN, mechanism="rr", careof=COA, seq=5)]
    ha = [ev("ha", c + 23.9, "bu_received", seq=3, careof=COA), write("ha", c + 24.0, 0.5),
          sent("ha", c + 24.7, "BA home", c + 23.9),
          ev("ha", c + 71.4, "hoti_forwarded", careof=COA, home=HOME),
          sent("ha", c + 71.6, "hoti_forwarded", c + 71.4),
          ev("ha", c + 121.8, "hot_tunnelled", careof=COA, home=HOME),
          sent("ha", c + 122.0, "hot_tunnelled", c + 121.8)]
    cn = [ev("cn", c + 9.0, "coti_received", careof=COA), sent("cn", c + 9.3, "CoT", c + 9.0),
          ev("cn", c + 96.6, "hoti_received", home=HOME), sent("cn", c + 96.8, "HoT", c + 96.6),
          ev("cn", c + 153.9, "bu_received", seq=5, careof=COA), sent("cn", c + 154.2, "BA", c + 153.9)]
    return {"mn": mn, "cn": cn, "ha": ha}


def test_rr_scratch_follows_the_home_chain_when_the_hot_comes_last():
    tl = move_timeline("rr-scratch", scratch_move(), {}, t_move=0, careof=COA, cn=CN, ha=HA, until=10**12)
    assert tl.missing is None and tl.chain == "home"
    assert [ph.kind for ph in tl.phases] == ["mn", "net", "ha", "net", "mn", "net", "ha", "net", "cn", "net", "ha",
                                             "net", "mn", "net", "cn", "net"]
    assert sum(ph.ms for ph in tl.phases) == pytest.approx(162.3)
    model = 158.0
    d = decompose(tl, "rr-scratch", model, {"mn-cn": 0.1, "mn-ha": 0.2, "ha-cn": 0.3})
    assert d.delay_line_bias_ms == pytest.approx(2 * 0.2 + 0.3 + 0.1)  # 2 RTT(MN,HA) + RTT(HA,CN) + RTT(MN,CN)
    assert d.durable_writes_ms == pytest.approx(1.5)
    assert d.ha_processing_ms == pytest.approx(0.3 + 0.2 + 0.2)
    assert d.cn_turnaround_ms == pytest.approx(0.2 + 0.3)
    assert d.mn_processing_ms == pytest.approx(0.3 + 0.3 + 0.3)
    total = (d.mn_processing_ms + d.cn_turnaround_ms + d.ha_processing_ms + d.durable_writes_ms
             + d.delay_line_bias_ms + d.unexplained_ms)
    assert total == pytest.approx(162.3 - model)


def test_rr_with_a_valid_home_token_follows_the_care_of_chain():
    events = scratch_move()
    c = 100.0
    # the home token was valid: the BU follows the CoT at once
    events["mn"] = [e for e in events["mn"] if e.NAME not in ("hot_received", "bu_sent", "packet_sent",
                                                                    "cn_registered", "hoti_sent")
                    or getattr(e, "mechanism", None) == "home" or getattr(e, "what", None) in ("BU home", "CoTI")]
    events["mn"] += [ev("mn", c + 17.5, "bu_sent", peer=CN, mechanism="rr", seq=5, careof=COA),
                     sent("mn", c + 18.1, "BU", c + 17.5),
                     ev("mn", c + 35.0, "cn_registered", peer=CN, mechanism="rr", careof=COA, seq=5)]
    events["cn"] = events["cn"][:2] + [ev("cn", c + 26.2, "bu_received", seq=5, careof=COA),
                                       sent("cn", c + 26.6, "BA", c + 26.2)]
    tl = move_timeline("rr", events, {}, t_move=0, careof=COA, cn=CN, ha=HA, until=10**12)
    assert tl.missing is None and tl.chain == "care-of"
    assert [ph.name for ph in tl.phases][:5] == ["MN: CoA usable->CoTI on the wire", "network: CoTI MN->CN",
                                                 "CN: CoTI->CoT", "network: CoT CN->MN", "MN: CoT->BU on the wire"]
    d = decompose(tl, "rr", 32.0, {"mn-cn": 0.1})
    assert d.measured_ms == pytest.approx(35.0) and d.delay_line_bias_ms == pytest.approx(0.2)
    assert d.durable_writes_ms == pytest.approx(0.5)  # the home BU's write, before the CoTI left


@pytest.mark.parametrize("paused, credited", [(0.0, 0.0), (0.4, 0.4), (2.0, 0.9)])
def test_host_pauses_in_the_window_explain_the_remainder_up_to_their_length(paused, credited):
    tl = move_timeline("rr-scratch", scratch_move(), {}, t_move=0, careof=COA, cn=CN, ha=HA, until=10**12)
    bias = {"mn-cn": 0.1, "mn-ha": 0.2, "ha-cn": 0.3}
    d = decompose(tl, "rr-scratch", 157.0, bias, paused)  # 0.9 ms left before the pauses
    assert d.host_pauses_ms == pytest.approx(credited)
    assert d.unexplained_ms == pytest.approx(0.9 - credited)
    total = (d.mn_processing_ms + d.cn_turnaround_ms + d.ha_processing_ms + d.durable_writes_ms
             + d.delay_line_bias_ms + d.host_pauses_ms + d.unexplained_ms)
    assert total == pytest.approx(162.3 - 157.0)
    # a remainder already below zero is not made lower by a pause
    assert decompose(tl, "rr-scratch", 159.0, bias, 3.0).host_pauses_ms == 0.0
