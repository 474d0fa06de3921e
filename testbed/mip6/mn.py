"""Mobile node engine: home registration, then route optimisation with each correspondent.

Sans-I/O: the agent tells the engine about a new usable care-of address (``move``), hands
it received packets (``receive``) and timer expiries (``handle_timer``); the engine returns
``Send``/``Event`` actions.

On a move the MN registers with its home agent (RFC 4285 authentication) and, per
correspondent in its Binding Update List:
- a peer with preconfigured data (RFC 4449): a BU authenticated with the precomputed Kbm at
  once, no HoTI/CoTI, no Nonce Indices; never another mechanism, whatever a BA status or
  Binding Error says (R15);
- any other peer: return routability. CoTI goes direct at once; HoTI is reverse-tunnelled
  through the home agent once the home registration carries the new CoA, unless a home
  keygen token younger than MAX_TOKEN_LIFETIME is at hand. The BU follows both tokens.
Unacknowledged BUs (and HoTI/CoTI) are retransmitted after 1 s, doubling to 32 s, each BU
with a new sequence number that is made durable before it is sent. A binding is refreshed
before it runs out: once REFRESH_AT_FRACTION of the lifetime the BA granted has passed, the
MN sends a new BU (a new return routability round for an RR peer, reusing a home token that
is still valid). At the R13 limit the engine stops using the key and emits ``rekey_required``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Iterable

from testbed.errors import ConfigError
from testbed.mip6.constants import (
    INITIAL_BINDACK_TIMEOUT_S,
    IPPROTO_IPV6,
    IPPROTO_MH,
    MAX_BINDACK_TIMEOUT_S,
    LIFETIME_UNIT_S,
    MAX_TOKEN_LIFETIME_S,
    REFRESH_AT_FRACTION,
    SECOND_NS,
    BAStatus,
    BEStatus,
)
from testbed.mip6.crypto import (
    binding_management_key,
    careof_keygen_token,
    home_keygen_token,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.events import Action, EventSource, Send, addr
from testbed.mip6.keys import PreconfiguredData, index_peers
from testbed.mip6.messages import (
    BindingAck,
    BindingError,
    BindingRefreshRequest,
    BindingUpdate,
    CareofTest,
    CareofTestInit,
    HomeTest,
    HomeTestInit,
    decode,
    encode,
)
from testbed.mip6.mnha import MnHaSecurityAssociation
from testbed.mip6.options import NonceIndices, ReplayProtection
from testbed.mip6.packet import Packet, build_packet, mh_checksum_ok, parse_packet
from testbed.mip6.sealing import (
    bad_valid,
    mn_ha_valid,
    option_layout_error,
    seal_bad,
    seal_mn_ha,
)
from testbed.mip6.seqno import kbm_exhausted, seq_next
from testbed.mip6.seqstore import SeqRecord, SequenceStore

INITIAL_TIMEOUT_NS = INITIAL_BINDACK_TIMEOUT_S * SECOND_NS
MAX_TIMEOUT_NS = MAX_BINDACK_TIMEOUT_S * SECOND_NS
TOKEN_LIFETIME_NS = MAX_TOKEN_LIFETIME_S * SECOND_NS


@dataclass(slots=True)
class _Retransmit:
    at: int = 0
    timeout: int = INITIAL_TIMEOUT_NS

    def arm(self, now: int) -> None:
        self.timeout = INITIAL_TIMEOUT_NS
        self.at = now + self.timeout

    def backoff(self, now: int) -> None:
        self.timeout = min(self.timeout * 2, MAX_TIMEOUT_NS)
        self.at = now + self.timeout


@dataclass(slots=True)
class BulEntry:
    """One Binding Update List entry (the home agent or a correspondent)."""

    peer: bytes
    mechanism: str  # "home", "precomputed" or "rr"
    store_key: str
    seq: int = 0  # last sequence number used
    uses: int = 0
    state: str = "idle"  # idle | rr | bu_sent | bound | failed | rekey | unsupported
    careof: bytes | None = None  # CoA being registered / registered
    bound_careof: bytes | None = None
    bu_retx: _Retransmit | None = None
    sent_kbm: bytes | None = None  # Kbm of the outstanding BU
    lifetime: int = 0  # granted, units of 4 s
    refresh_at: int = 0  # when a bound entry sends a new BU to keep its binding (0: never)
    # return routability
    hoti_cookie: bytes | None = None
    coti_cookie: bytes | None = None
    coti_careof: bytes | None = None
    hoti_retx: _Retransmit | None = None
    coti_retx: _Retransmit | None = None
    home_token: tuple[bytes, int, int] | None = None  # token, nonce index, received at
    careof_token: tuple[bytes, int, bytes] | None = None  # token, nonce index, for CoA
    # precomputed
    data: PreconfiguredData | None = field(default=None, repr=False)
    fixed_home_token: bytes | None = field(default=None, repr=False)
    # home registration
    timestamp: int = 0


class MobileNode(EventSource):
    def __init__(
        self,
        home_address: bytes,
        home_agent: bytes,
        *,
        mn_ha: MnHaSecurityAssociation,
        store: SequenceStore,
        correspondents: Iterable[bytes] = (),
        peers: Iterable[PreconfiguredData] = (),
        node: str = "mn",
        rng: Callable[[int], bytes] = os.urandom,
        home_lifetime_units: int = 105,
        cn_lifetime_units: int = 105,
    ) -> None:
        self.home_address = home_address
        self.home_agent = home_agent
        self.node = node
        self.store = store
        self.careof: bytes | None = None
        self._mn_ha = mn_ha
        self._rng = rng
        self.home_lifetime_units = home_lifetime_units
        self.cn_lifetime_units = cn_lifetime_units
        self._last_timestamp = 0
        self.home = self._entry(home_agent, "home", f"mn/ha/{home_agent.hex()}")
        self.bul: dict[bytes, BulEntry] = {}
        precomputed = self._index(peers)
        for cn in list(correspondents) + [c for c in precomputed if c not in correspondents]:
            data = precomputed.get(cn)
            self.bul[cn] = self._rr_entry(cn) if data is None else self._precomputed_entry(cn, data)

    def _index(self, peers: Iterable[PreconfiguredData]) -> dict[bytes, PreconfiguredData]:
        indexed = index_peers(list(peers), "mn")
        for data in indexed.values():
            if data.home_address.packed != self.home_address:
                raise ConfigError(f"{data.source}: home address {data.home_address} is not this MN's")
        return {cn.packed: data for cn, data in indexed.items()}

    def set_peers(self, peers: Iterable[PreconfiguredData]) -> None:
        """Install new preconfigured data (a rekey, R8/R13): a peer whose key changed starts
        afresh under the new key; a peer whose file was removed goes back to RR (R12)."""
        precomputed = self._index(peers)
        for cn, data in precomputed.items():
            e = self.bul.get(cn)
            if e is None or e.mechanism != "precomputed" or e.data.key_id != data.key_id:
                self.bul[cn] = self._precomputed_entry(cn, data)
        for cn, e in list(self.bul.items()):
            if e.mechanism == "precomputed" and cn not in precomputed:
                self.bul[cn] = self._rr_entry(cn)

    def _rr_entry(self, cn: bytes) -> BulEntry:
        return self._entry(cn, "rr", f"mn/cn/{cn.hex()}/rr")

    def _precomputed_entry(self, cn: bytes, data: PreconfiguredData) -> BulEntry:
        e = self._entry(cn, "precomputed", f"mn/cn/{cn.hex()}/{data.key_id}")
        e.data = data
        e.fixed_home_token = home_keygen_token(data.kcn, self.home_address, data.home_nonce)
        return e

    def _entry(self, peer: bytes, mechanism: str, store_key: str) -> BulEntry:
        record = self.store.get(store_key)
        e = BulEntry(peer, mechanism, store_key)
        if record is not None:
            e.seq, e.uses = record.last, record.uses
        return e

    # ------------------------------------------------------------------ queries

    @property
    def at_home(self) -> bool:
        return self.careof is None or self.careof == self.home_address

    def entries(self) -> list[BulEntry]:
        return [self.home, *self.bul.values()]

    # ------------------------------------------------------------------ movement

    def move(self, careof: bytes, now: int) -> list[Action]:
        """A new care-of address is usable (the home address: back at home)."""
        if careof == self.careof:
            return []
        self.careof = careof
        out: list[Action] = [self._event(now, "coa_usable", careof=addr(careof), at_home=self.at_home)]
        out += self._send_home_bu(now)
        for e in self.bul.values():
            if e.state in ("failed", "rekey", "unsupported"):
                continue
            e.careof = careof
            if e.mechanism == "precomputed":
                out += self._send_cn_bu(e, now)
            else:
                out += self._start_rr(e, now)
        return out

    # ------------------------------------------------------------------ home registration

    def _send_home_bu(self, now: int, retransmission: bool = False) -> list[Action]:
        e = self.home
        careof = self.careof
        e.careof = careof
        if not self._next_seq(e):
            return [self._event(now, "rekey_required", peer=addr(e.peer), mechanism="home")]
        self._last_timestamp = max(self._last_timestamp + 1, now)
        e.timestamp = self._last_timestamp
        lifetime = 0 if self.at_home else self.home_lifetime_units
        bu = BindingUpdate(e.seq, lifetime, ack=True, home=True, options=(ReplayProtection(e.timestamp),))
        mh = seal_mn_ha(bu, self._mn_ha.spi, self._mn_ha.key, careof, self.home_address)
        if self.at_home:
            pkt = build_packet(self.home_address, self.home_agent, IPPROTO_MH, mh)
        else:
            pkt = build_packet(careof, self.home_agent, IPPROTO_MH, mh, home_address=self.home_address)
        e.state = "bu_sent"
        if not retransmission:
            e.bu_retx = _Retransmit()
            e.bu_retx.arm(now)
        return [
            Send(pkt, "BU home"),
            self._event(now, "bu_sent", peer=addr(e.peer), mechanism="home", seq=e.seq, careof=addr(careof), lifetime=lifetime),
        ]

    def _on_home_ba(self, packet: Packet, ba: BindingAck, now: int) -> list[Action]:
        e = self.home
        if e.state != "bu_sent" or e.careof is None:
            return [self._drop(now, "BA from home agent with no BU outstanding", seq=ba.seq)]
        if not mn_ha_valid(ba, self._mn_ha.key, e.careof, self.home_address):
            return [self._drop(now, "home agent BA failed MN-HA authentication", seq=ba.seq, status=ba.status)]
        replay = next((o for o in ba.options if type(o) is ReplayProtection), None)
        out: list[Action] = [self._event(now, "ba_received", peer=addr(e.peer), mechanism="home", status=ba.status, seq=ba.seq)]
        if ba.status == BAStatus.MIPV6_ID_MISMATCH and replay is not None:
            self._last_timestamp = max(self._last_timestamp, replay.timestamp)
            return out + self._send_home_bu(now)
        if replay is None or replay.timestamp != e.timestamp:
            out.append(self._drop(now, "home agent BA does not echo our timestamp", seq=ba.seq))
            return out
        if ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW:
            e.seq = ba.seq
            return out + self._send_home_bu(now)
        if ba.seq != e.seq:
            out.append(self._drop(now, "home agent BA for another sequence number", seq=ba.seq, expected=e.seq))
            return out
        if ba.status >= 128:
            e.state = "failed"
            e.bu_retx = None
            out.append(self._event(now, "binding_refused", peer=addr(e.peer), mechanism="home", status=ba.status))
            return out
        e.state = "bound"
        e.bu_retx = None
        e.bound_careof = e.careof
        self._schedule_refresh(e, ba.lifetime, now)
        out.append(self._event(now, "home_registered", careof=addr(e.careof), lifetime=ba.lifetime, at_home=self.at_home))
        # reverse-tunnelled HoTIs were waiting for the home registration
        for c in self.bul.values():
            if c.mechanism == "rr" and c.state == "rr" and c.hoti_cookie is None and c.home_token is None:
                out += self._send_hoti(c, now)
        return out

    # ------------------------------------------------------------------ return routability

    def _home_token_valid(self, e: BulEntry, now: int) -> bool:
        return e.home_token is not None and now - e.home_token[2] < TOKEN_LIFETIME_NS

    def _start_rr(self, e: BulEntry, now: int) -> list[Action]:
        e.state = "rr"
        e.bu_retx = None
        e.careof_token = None
        out: list[Action] = []
        if not self._home_token_valid(e, now):
            e.home_token = None
            e.hoti_cookie = None
            # From home, HoTI goes direct; away, it waits for the home registration.
            if self.at_home or self.home.state == "bound" and self.home.bound_careof == self.careof:
                out += self._send_hoti(e, now)
        if not self.at_home:
            out += self._send_coti(e, now)
        else:
            e.coti_retx = None
            out += self._maybe_rr_bu(e, now)
        return out

    def _send_hoti(self, e: BulEntry, now: int) -> list[Action]:
        if e.hoti_cookie is None:
            e.hoti_cookie = self._rng(8)
            e.hoti_retx = _Retransmit()
            e.hoti_retx.arm(now)
        inner = build_packet(self.home_address, e.peer, IPPROTO_MH, encode(HomeTestInit(e.hoti_cookie)))
        if self.at_home:
            pkt, what = inner, "HoTI"
        else:
            pkt, what = build_packet(self.careof, self.home_agent, IPPROTO_IPV6, inner), "HoTI tunnelled"
        return [Send(pkt, what), self._event(now, "hoti_sent", peer=addr(e.peer), tunnelled=not self.at_home)]

    def _send_coti(self, e: BulEntry, now: int) -> list[Action]:
        if e.coti_cookie is None or e.coti_careof != self.careof:
            e.coti_cookie = self._rng(8)
            e.coti_careof = self.careof
            e.coti_retx = _Retransmit()
            e.coti_retx.arm(now)
        pkt = build_packet(self.careof, e.peer, IPPROTO_MH, encode(CareofTestInit(e.coti_cookie)))
        return [Send(pkt, "CoTI"), self._event(now, "coti_sent", peer=addr(e.peer), careof=addr(self.careof))]

    def _on_hot(self, packet: Packet, msg: HomeTest, now: int) -> list[Action]:
        e = self.bul.get(packet.src)
        if e is None or e.mechanism != "rr" or e.hoti_cookie is None or msg.cookie != e.hoti_cookie:
            return [self._drop(now, "HoT that matches no HoTI", src=addr(packet.src))]
        e.home_token = (msg.token, msg.nonce_index, now)
        e.hoti_cookie = None
        e.hoti_retx = None
        return [self._event(now, "hot_received", peer=addr(e.peer), nonce_index=msg.nonce_index)] + self._maybe_rr_bu(e, now)

    def _on_cot(self, packet: Packet, msg: CareofTest, now: int) -> list[Action]:
        e = self.bul.get(packet.src)
        if e is None or e.mechanism != "rr" or e.coti_cookie is None or msg.cookie != e.coti_cookie:
            return [self._drop(now, "CoT that matches no CoTI", src=addr(packet.src))]
        e.careof_token = (msg.token, msg.nonce_index, e.coti_careof)
        e.coti_cookie = None
        e.coti_retx = None
        return [self._event(now, "cot_received", peer=addr(e.peer), nonce_index=msg.nonce_index)] + self._maybe_rr_bu(e, now)

    def _maybe_rr_bu(self, e: BulEntry, now: int) -> list[Action]:
        if e.state != "rr" or not self._home_token_valid(e, now):
            return []
        if not self.at_home and (e.careof_token is None or e.careof_token[2] != self.careof):
            return []
        return self._send_cn_bu(e, now)

    # ------------------------------------------------------------------ correspondent registration

    def _next_seq(self, e: BulEntry) -> bool:
        """Take the next sequence number and make it durable; False at the R13 limit."""
        if e.mechanism == "precomputed" and kbm_exhausted(e.uses):
            e.state = "rekey"
            e.bu_retx = None
            return False
        e.seq = seq_next(e.seq)
        e.uses += 1
        self.store.put(e.store_key, SeqRecord(e.seq, e.uses))
        return True

    def _send_cn_bu(self, e: BulEntry, now: int, retransmission: bool = False) -> list[Action]:
        careof = self.careof
        deregistering = self.at_home
        if e.mechanism == "precomputed":
            if deregistering:
                kbm = binding_management_key(e.fixed_home_token, None)
            else:
                token = careof_keygen_token(e.data.kcn, careof, e.data.careof_nonce)
                kbm = binding_management_key(e.fixed_home_token, token)
            options: tuple = ()
        else:
            home_token, home_index, _ = e.home_token
            if deregistering:
                kbm = binding_management_key(home_token, None)
                careof_index = 0
            else:
                careof_token, careof_index, _ = e.careof_token
                kbm = binding_management_key(home_token, careof_token)
            options = (NonceIndices(home_index, careof_index),)
        if not self._next_seq(e):
            return [self._event(now, "rekey_required", peer=addr(e.peer), key_id=e.data.key_id, uses=e.uses)]
        lifetime = 0 if deregistering else self.cn_lifetime_units
        bu = BindingUpdate(e.seq, lifetime, ack=True, options=options)
        mh = seal_bad(bu, kbm, careof, e.peer)
        if deregistering:
            pkt = build_packet(self.home_address, e.peer, IPPROTO_MH, mh)
        else:
            pkt = build_packet(careof, e.peer, IPPROTO_MH, mh, home_address=self.home_address)
        e.state = "bu_sent"
        e.careof = careof
        e.sent_kbm = kbm
        if not retransmission:
            e.bu_retx = _Retransmit()
            e.bu_retx.arm(now)
        return [
            Send(pkt, "BU"),
            self._event(now, "bu_sent", peer=addr(e.peer), mechanism=e.mechanism, seq=e.seq, careof=addr(careof), lifetime=lifetime),
        ]

    def _on_cn_ba(self, e: BulEntry, ba: BindingAck, now: int) -> list[Action]:
        authenticated = e.sent_kbm is not None and bad_valid(ba, e.sent_kbm, e.careof, e.peer)
        fields = dict(peer=addr(e.peer), mechanism=e.mechanism, status=ba.status, seq=ba.seq, authenticated=authenticated)
        if e.state != "bu_sent":
            return [self._drop(now, "BA with no BU outstanding", **fields)]
        if e.mechanism == "precomputed" and not authenticated:
            return [self._drop(now, "unauthenticated BA from a precomputed peer ignored (R7, R15)", **fields)]
        if e.mechanism == "rr" and not authenticated and ba.status not in (
            BAStatus.EXPIRED_HOME_NONCE_INDEX, BAStatus.EXPIRED_CAREOF_NONCE_INDEX, BAStatus.EXPIRED_NONCES,
        ):
            return [self._drop(now, "unauthenticated BA", **fields)]
        out: list[Action] = [self._event(now, "ba_received", **fields)]
        if ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW:
            e.seq = ba.seq  # continue after the number the CN last accepted
            return out + self._send_cn_bu(e, now)
        if e.mechanism == "rr" and ba.status in (
            BAStatus.EXPIRED_HOME_NONCE_INDEX, BAStatus.EXPIRED_CAREOF_NONCE_INDEX, BAStatus.EXPIRED_NONCES,
        ):
            if ba.status != BAStatus.EXPIRED_CAREOF_NONCE_INDEX:
                e.home_token = None
            e.state = "rr"
            e.bu_retx = None
            e.careof_token = None if ba.status != BAStatus.EXPIRED_HOME_NONCE_INDEX else e.careof_token
            if e.home_token is None:
                e.hoti_cookie = None
                out += self._send_hoti(e, now)
            if e.careof_token is None and not self.at_home:
                e.coti_cookie = None
                out += self._send_coti(e, now)
            return out + self._maybe_rr_bu(e, now)
        if ba.seq != e.seq:
            out.append(self._drop(now, "BA for another sequence number", expected=e.seq, **fields))
            return out
        e.bu_retx = None
        if ba.status >= 128:
            e.state = "failed"
            out.append(self._event(now, "binding_refused", **fields))
            return out
        e.state = "bound"
        e.bound_careof = e.careof
        self._schedule_refresh(e, ba.lifetime, now)
        out.append(self._event(now, "cn_registered", peer=addr(e.peer), mechanism=e.mechanism, careof=addr(e.careof), seq=ba.seq, lifetime=ba.lifetime))
        return out

    def _on_be(self, packet: Packet, be: BindingError, now: int) -> list[Action]:
        e = self.bul.get(packet.src)
        fields = dict(peer=addr(packet.src), status=be.status)
        if e is None:
            return [self._drop(now, "Binding Error from a node not in the Binding Update List", **fields)]
        if e.mechanism == "precomputed":
            return [self._event(now, "be_ignored", reason="precomputed peer: no other mechanism (R15)", **fields)]
        out: list[Action] = [self._event(now, "be_received", **fields)]
        if be.status == BEStatus.UNRECOGNIZED_MH_TYPE:
            e.state = "unsupported"
            e.bu_retx = e.hoti_retx = e.coti_retx = None
        return out

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: int) -> list[Action]:
        try:
            packet = parse_packet(data)
        except CodecError as exc:
            return [self._drop(now, f"malformed packet: {exc}")]
        if packet.next_header == IPPROTO_IPV6:
            if packet.src != self.home_agent:
                return [self._drop(now, "tunnelled packet not from the home agent", src=addr(packet.src))]
            try:
                inner = parse_packet(packet.payload)
            except CodecError as exc:
                return [self._drop(now, f"malformed tunnelled packet: {exc}")]
            if inner.dst != self.home_address:
                return [self._drop(now, "tunnelled packet not for the home address", dst=addr(inner.dst))]
            if inner.next_header != IPPROTO_MH:
                return []
            packet = inner
        elif packet.next_header != IPPROTO_MH:
            return []
        if not mh_checksum_ok(packet):
            return [self._drop(now, "bad Mobility Header checksum", src=addr(packet.src))]
        try:
            msg = decode(packet.payload)
        except CodecError as exc:
            return [self._drop(now, f"malformed Mobility Header: {exc}", src=addr(packet.src))]
        problem = option_layout_error(msg)
        if problem is not None:
            return [self._drop(now, f"{type(msg).__name__} dropped: {problem}", src=addr(packet.src))]
        kind = type(msg)
        if kind is BindingAck:
            if packet.src == self.home_agent:
                return self._on_home_ba(packet, msg, now)
            e = self.bul.get(packet.src)
            if e is None:
                return [self._drop(now, "BA from a node not in the Binding Update List", src=addr(packet.src))]
            return self._on_cn_ba(e, msg, now)
        if kind is HomeTest:
            return self._on_hot(packet, msg, now)
        if kind is CareofTest:
            return self._on_cot(packet, msg, now)
        if kind is BindingError:
            return self._on_be(packet, msg, now)
        if kind is BindingRefreshRequest:
            e = self.bul.get(packet.src)
            if e is None or e.state != "bound" or self.careof is None:
                return [self._drop(now, "Binding Refresh Request with no binding", src=addr(packet.src))]
            out: list[Action] = [self._event(now, "brr_received", peer=addr(e.peer))]
            if e.mechanism == "precomputed":
                return out + self._send_cn_bu(e, now)
            return out + self._start_rr(e, now)
        return [self._drop(now, f"unexpected {kind.__name__} at a mobile node", src=addr(packet.src))]

    # ------------------------------------------------------------------ timers

    @staticmethod
    def _schedule_refresh(e: BulEntry, lifetime_units: int, now: int) -> None:
        e.lifetime = lifetime_units
        e.refresh_at = now + int(lifetime_units * LIFETIME_UNIT_S * SECOND_NS * REFRESH_AT_FRACTION) if lifetime_units else 0

    def _refresh(self, e: BulEntry, now: int) -> list[Action]:
        e.refresh_at = 0
        out: list[Action] = [self._event(now, "binding_refresh", peer=addr(e.peer), mechanism=e.mechanism,
                                         careof=addr(e.bound_careof), lifetime=e.lifetime)]
        if e is self.home:
            return out + self._send_home_bu(now)
        if e.mechanism == "precomputed":
            return out + self._send_cn_bu(e, now)
        return out + self._start_rr(e, now)

    def next_timer(self) -> int | None:
        times = [
            r.at
            for e in self.entries()
            for r in (e.bu_retx, e.hoti_retx, e.coti_retx)
            if r is not None and r.at
        ]
        times += [e.refresh_at for e in self.entries() if e.state == "bound" and e.refresh_at]
        return min(times, default=None)

    def handle_timer(self, now: int) -> list[Action]:
        out: list[Action] = []
        h = self.home
        for e in self.entries():
            if e.state == "bound" and e.refresh_at and e.refresh_at <= now:
                if self.at_home:  # nothing to keep: bindings are deleted at home
                    e.refresh_at = 0
                    continue
                out += self._refresh(e, now)
        if h.bu_retx is not None and h.bu_retx.at and h.bu_retx.at <= now and h.state == "bu_sent":
            h.bu_retx.backoff(now)
            out.append(self._event(now, "retransmit", peer=addr(h.peer), what="BU", timeout_ms=h.bu_retx.timeout // 1_000_000))
            out += self._send_home_bu(now, retransmission=True)
        for e in self.bul.values():
            r = e.bu_retx
            if r is not None and r.at <= now and e.state == "bu_sent":
                r.backoff(now)
                out.append(self._event(now, "retransmit", peer=addr(e.peer), what="BU", timeout_ms=r.timeout // 1_000_000))
                out += self._send_cn_bu(e, now, retransmission=True)
            r = e.hoti_retx
            if r is not None and r.at <= now and e.state == "rr" and e.hoti_cookie is not None:
                r.backoff(now)
                out.append(self._event(now, "retransmit", peer=addr(e.peer), what="HoTI", timeout_ms=r.timeout // 1_000_000))
                out += self._send_hoti(e, now)
            r = e.coti_retx
            if r is not None and r.at <= now and e.state == "rr" and e.coti_cookie is not None:
                r.backoff(now)
                out.append(self._event(now, "retransmit", peer=addr(e.peer), what="CoTI", timeout_ms=r.timeout // 1_000_000))
                out += self._send_coti(e, now)
        return out
