"""The correspondent node's per-BU cost for a precomputed peer (RFC 4449).

Measured: parse the IPv6 packet and Mobility Header, check the option layout, verify the
authenticator (Kbm cached per care-of address), compare the sequence number, update the
binding, build the authenticated BA. The durable store write is measured on its own.
Goal (issue 2): at most 40 us per BU on our machines, store write excluded.
"""

from __future__ import annotations

import ipaddress
import secrets

from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.constants import IPPROTO_MH, BAStatus
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.events import Send
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.messages import BindingUpdate, decode
from testbed.mip6.packet import build_packet, parse_packet
from testbed.mip6.sealing import seal_bad
from testbed.mip6.seqstore import MemorySequenceStore, SeqRecord, SqliteSequenceStore

HOME = ipaddress.IPv6Address("2001:db8:1::100")
COA = ipaddress.IPv6Address("2001:db8:11::100").packed
CN = ipaddress.IPv6Address("2001:db8:3::1").packed


def _setup():
    data = PreconfiguredData(HOME, ipaddress.IPv6Address(CN), secrets.token_bytes(20), secrets.token_bytes(8), secrets.token_bytes(8))
    store = MemorySequenceStore()
    cn = CorrespondentNode(CN, store=store, peers=[data])
    kbm = binding_management_key(
        home_keygen_token(data.kcn, HOME.packed, data.home_nonce),
        careof_keygen_token(data.kcn, COA, data.careof_nonce),
    )
    bu = build_packet(COA, CN, IPPROTO_MH, seal_bad(BindingUpdate(1, 105, ack=True), kbm, COA, CN), home_address=HOME.packed)
    return cn, store, cn._peers[HOME.packed].store_key, bu


def test_cn_precomputed_bu_to_ba(benchmark):
    cn, store, key, bu = _setup()

    def reset():
        store.put(key, SeqRecord(0, 0))
        return (bu, 0), {}

    out = benchmark.pedantic(cn.receive, setup=reset, rounds=3000, iterations=1, warmup_rounds=100)
    (ba,) = [decode(parse_packet(a.packet).payload) for a in out if type(a) is Send]
    assert ba.status == BAStatus.ACCEPTED and ba.seq == 1


def test_sequence_store_durable_put(benchmark, tmp_path):
    store = SqliteSequenceStore(tmp_path / "seq.sqlite")
    counter = iter(range(1, 10**6))
    benchmark.pedantic(lambda: store.put("cn/bench/key", SeqRecord(next(counter) & 0xFFFF, 1)), rounds=200, iterations=1)
    assert store.get("cn/bench/key") is not None
    store.close()
