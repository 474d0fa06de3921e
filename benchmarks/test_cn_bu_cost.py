"""The correspondent node's per-BU cost for a precomputed peer (RFC 4449), with pytest-benchmark.

Two figures in one group, on the same BUs: the engine (parse, layout, checksum, authenticator
with Kbm cached, sequence number, binding, the sealed BA; its Persist action returned, not
carried out) and the plain-Python floor of benchmarks/cn_engine_ratio.py (the two HMACs and
two checksums any implementation must do). ``python benchmarks/cn_engine_ratio.py`` prints
both medians and their ratio from one interleaved run (goal, issue 12: at most 3x). The
durable write is benchmarked on its own (tests/unit/test_seqstore.py).
"""

from __future__ import annotations

import itertools

import pytest
from cn_engine_ratio import ba_template, floor, setup

from testbed.mip6.actions import Persist, Send
from testbed.mip6.constants import BAStatus
from testbed.mip6.messages import decode
from testbed.mip6.packet import parse_packet

BUS = 20000


@pytest.mark.benchmark(group="cn-bu-precomputed")
def test_cn_precomputed_bu_to_ba_engine(benchmark):
    engine, _, packets = setup(BUS)
    feed = itertools.count()

    def one():
        i = next(feed)
        return engine.receive(packets[i], 1_000_000 + i)

    out = benchmark.pedantic(one, rounds=min(3000, BUS - 200), iterations=1, warmup_rounds=100)
    (ba,) = [decode(parse_packet(a.packet).payload) for a in out if type(a) is Send]
    assert ba.status == BAStatus.ACCEPTED and ba.seq == next(feed)  # the BU just fed, accepted
    assert [type(a) for a in out].index(Persist) < [type(a) for a in out].index(Send)


@pytest.mark.benchmark(group="cn-bu-precomputed")
def test_cn_precomputed_bu_to_ba_plain_python_floor(benchmark):
    engine, kbm, packets = setup(BUS)
    template = ba_template(kbm)
    feed = itertools.cycle(packets[:3000])
    mh = benchmark.pedantic(lambda: floor(next(feed), kbm, template), rounds=3000, iterations=1, warmup_rounds=100)
    # the floor builds the very BA the engine sends for the same BU
    expected = [parse_packet(a.packet).payload for a in engine.receive(packets[0], 1) if type(a) is Send]
    assert floor(packets[0], kbm, template) == expected[0] and decode(mh).status == BAStatus.ACCEPTED
