"""Typed events (issue 12 item 1): one class per event, matched on types; the JSON lines on
disk as before (``t_ns``, ``node``, ``event``, then the fields; optional ones left out)."""

from __future__ import annotations

import json

import pytest
from engine_fixtures import COA1, COA2, HOME, MS, make_world

from testbed.agent.eventlog import EventLog, generic_line, json_line, read_events, read_typed_events
from testbed.agent.events import LOG_EVENTS, PacketSent, decode_event
from testbed.mip6.events import ENGINE_EVENTS, BuReceived, Drop, Event, UnknownEvent, event_class


@pytest.fixture(scope="module")
def run_events() -> list[Event]:
    w = make_world()
    for coa in (COA1, COA2, HOME):
        w.move(coa)
        w.net.run_for(3000 * MS)
    return list(w.net.events)


def test_every_event_of_a_run_survives_the_log_as_the_same_object(run_events, tmp_path):
    assert len({type(e) for e in run_events}) >= 15  # the run covers many kinds
    log = EventLog(tmp_path / "e.jsonl", "x")
    for e in run_events:
        log.write(e)
    log.close()
    assert read_typed_events(tmp_path / "e.jsonl") == run_events
    for line, e in zip((tmp_path / "e.jsonl").read_text().splitlines(), run_events):
        obj = json.loads(line)
        assert list(obj)[:3] == ["t_ns", "node", "event"] and obj["event"] == e.NAME
        assert all(v is not None for v in obj.values())  # optional fields left out, never null


def test_optional_fields_are_left_out_and_the_line_is_as_before():
    e = BuReceived(5, "ha", home="2001:db8:1::100", careof="2001:db8:11::100", seq=3, lifetime=105, home_reg=True)
    assert json.dumps(e.as_dict(), separators=(",", ":")) == (
        '{"t_ns":5,"node":"ha","event":"bu_received","home":"2001:db8:1::100","careof":"2001:db8:11::100",'
        '"seq":3,"lifetime":105,"home_reg":true}')
    assert Drop(1, "cn", reason="r").as_dict() == {"t_ns": 1, "node": "cn", "event": "drop", "reason": "r"}


def test_misspellings_fail_loudly(tmp_path):
    with pytest.raises(TypeError):
        BuReceived(1, "cn", home="h", careof="c", seq=1, lifetim=5, home_reg=False)  # the typo is the test
    with pytest.raises(UnknownEvent, match="unknown event 'bu_recieved'"):
        decode_event({"t_ns": 1, "node": "cn", "event": "bu_recieved"})
    with pytest.raises(UnknownEvent, match="does not fit"):
        decode_event({"t_ns": 1, "node": "cn", "event": "drop", "reason": "r", "reasn": "x"})
    with pytest.raises(UnknownEvent):
        decode_event(["not", "an", "object"])
    (tmp_path / "bad.jsonl").write_text('{"t_ns":1,"node":"n","event":"nonsense"}\n{"t_ns": 2, "torn')
    assert len(read_events(tmp_path / "bad.jsonl")) == 1  # the torn last line is skipped
    with pytest.raises(UnknownEvent):
        read_typed_events(tmp_path / "bad.jsonl")


def test_one_name_one_class():
    assert set(ENGINE_EVENTS) <= set(LOG_EVENTS) and LOG_EVENTS["packet_sent"] is PacketSent
    assert len({cls.NAME for cls in LOG_EVENTS.values()}) == len(LOG_EVENTS)
    with pytest.raises(ValueError, match="defined twice"):
        @event_class("drop")
        class Again(Event):
            reason: str


from dataclasses import fields as _fields  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_ALL_EVENTS = sorted({**ENGINE_EVENTS, **LOG_EVENTS}.values(), key=lambda c: c.NAME)


_LINE_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(), st.floats(allow_nan=False),
                         st.lists(st.integers(), max_size=3), st.sampled_from([BuReceived.NAME]))


@settings(max_examples=300, deadline=None)
@given(cls=st.sampled_from(_ALL_EVENTS), data=st.data())
def test_each_class_writes_its_line_as_the_generic_encoder_does(cls, data):
    """``json_line``, laid out per class, is the generic encoder's text, whatever the values
    (None in an optional field left out, in another written null; floats, lists, non-ASCII)."""
    own = [f for f in _fields(cls) if f.name not in ("t_ns", "node")]
    e = cls(data.draw(st.integers(0, 2**63)), data.draw(st.text(max_size=8)),
                 **{f.name: data.draw(_LINE_VALUES) for f in own})
    line = json_line(e)
    assert line == generic_line(e)
    assert json.loads(line) == json.loads(json.dumps(e.as_dict(), default=str))


def test_addr_writes_every_address_as_ipaddress_does():
    """``addr`` lays the text out itself (quicker): the same as str(IPv6Address) for every
    pattern of zero hextets, IPv4-mapped and random addresses."""
    import ipaddress
    import os
    import random

    from testbed.mip6.events import addr

    text = addr.__wrapped__  # not the cache
    rnd = random.Random(7)
    cases = [b"".join((0 if mask >> i & 1 else rnd.choice([1, 0xABC, 0xFFFF])).to_bytes(2, "big") for i in range(8))
             for mask in range(256)]
    cases += [b"".join(rnd.choice([0, 0, 1, 0xFFFF, rnd.randrange(65536)]).to_bytes(2, "big") for _ in range(8))
              for _ in range(20000)]
    cases += [bytes(10) + b"\xff\xff" + os.urandom(4), os.urandom(16), bytes(16)]
    assert [c for c in cases if text(c) != str(ipaddress.IPv6Address(c))] == []
    assert addr(None) is None
