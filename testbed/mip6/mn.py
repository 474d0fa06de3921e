"""Mobile node engine: home registration, then route optimisation with each correspondent.

Sans-I/O: the agent tells the engine about a new usable care-of address (``move``), hands
it received packets (``receive``) and timer expiries (``handle_timer``); the engine returns
actions (``Send``, ``Persist``, typed events). Its own sequence numbers are kept in memory,
from the records the agent read at start-up (``records``); each BU's number is made durable
by a ``Persist`` in front of it (``persistence``: every number, or a reserve: after a
restart the MN goes on after the mark, so it never sends a number twice).

On a move the MN registers with its home agent (RFC 4285 authentication) and, per
correspondent in its Binding Update List:
- a peer with preconfigured data (RFC 4449): a BU authenticated with the precomputed Kbm at
  once, no HoTI/CoTI, no Nonce Indices; never another mechanism, whatever a BA status or
  Binding Error says (R15);
- any other peer: return routability. CoTI goes direct at once; HoTI is reverse-tunnelled
  through the home agent once the home registration carries the new CoA, unless a home
  keygen token younger than MAX_TOKEN_LIFETIME is at hand (``reuse_home_token=False``: never
  at a move). The BU follows both tokens.
Unacknowledged BUs (and HoTI/CoTI) are retransmitted after 1 s, doubling to 32 s (the first
home registration, while the home agent holds no binding for us, after
InitialBindackTimeoutFirstReg, 1.5 s), each BU with a new sequence number that is made
durable before it is sent (a store that fails: ``persist_failed`` puts the entry back, and the
BU goes a second later). A binding is refreshed before it runs out: once
REFRESH_AT_FRACTION of the lifetime the BA granted has passed, the MN sends a new BU (a new
return routability round for an RR peer, reusing a home token that is still valid).

Rate limit (RFC 6275 11.8): at most MAX_UPDATE_RATE BUs, HoTIs or CoTIs (each type on its
own) to one node within any second. A message over the limit is deferred, not lost: when
the limit allows, the engine sends what the state then calls for (a BU for the care-of
address of that moment), so a burst of moves or Binding Refresh Requests costs at most
three messages a second per peer and type.

R13: the total advance of a precomputed key's sequence number, resynchronisations after BA
135 included, is kept durably beside the number; a step that would carry it past 2^15 ends
the key's use (state ``rekey``, a ``rekey_required`` event, nothing more sent with it). A
BA 135 moves the number only forward: one carrying a number behind ours is stale or replayed
and ignored.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields

from testbed.errors import ConfigError
from testbed.mip6.actions import Action, Persist, Send
from testbed.mip6.constants import (
    INITIAL_BINDACK_TIMEOUT_FIRST_REG_NS,
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
    MHType,
)
from testbed.mip6.crypto import (
    binding_management_key,
    careof_keygen_token,
    home_keygen_token,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.events import (
    BaReceived,
    BeIgnored,
    BeReceived,
    BindingRefresh,
    BindingRefused,
    BrrReceived,
    BuSent,
    CnRegistered,
    CoaUsable,
    CotiSent,
    CotReceived,
    Drop,
    HomeRegistered,
    HotiSent,
    HotReceived,
    RekeyRequired,
    Retransmit,
    SendDeferred,
    StoreFailed,
    addr,
)
from testbed.mip6.icmp import UnrecognisedOptions
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
    seal_home_bu,
    seal_mn_ha,
    seal_precomputed_bu,
)
from testbed.mip6.ratelimit import TokenBucket, UpdateRateLimit
from testbed.mip6.persistence import (
    STRICT,
    Persistence,
    RecordUnreadable,
    SeqRecord,
    SeqState,
    advance_to,
    check_key,
)
from testbed.mip6.seqno import SEQ_HALF, KBM_MAX_ADVANCE, kbm_exhausted, kbm_step_allowed, seq_next, seq_step
from testbed.mip6.weakening import check_names

INITIAL_TIMEOUT_NS = INITIAL_BINDACK_TIMEOUT_S * SECOND_NS
MAX_TIMEOUT_NS = MAX_BINDACK_TIMEOUT_S * SECOND_NS
TOKEN_LIFETIME_NS = MAX_TOKEN_LIFETIME_S * SECOND_NS


@dataclass(slots=True)
class _Retransmit:
    at: int = 0
    timeout: int = INITIAL_TIMEOUT_NS

    def arm(self, now: int, initial: int = INITIAL_TIMEOUT_NS) -> None:
        self.timeout = initial
        self.at = now + self.timeout

    def backoff(self, now: int) -> None:
        self.timeout = min(self.timeout * 2, MAX_TIMEOUT_NS)
        self.at = now + self.timeout


@dataclass(slots=True)
class BulEntry:
    """One Binding Update List entry (the home agent or a correspondent). Its ``repr`` shows
    no key material (keys, tokens, cookies)."""

    peer: bytes
    mechanism: str  # "home", "precomputed" or "rr"
    store_key: str
    seq: int = 0  # last sequence number used
    advance: int = 0  # R13: total advance of the sequence number under this key
    mark: int | None = None  # the number the durable record holds (None: no record yet)
    state: str = "idle"  # idle | rr | bu_sent | bound | failed | rekey | unsupported
    careof: bytes | None = None  # CoA being registered / registered
    bound_careof: bytes | None = None
    bu_retx: _Retransmit | None = None
    sent_kbm: bytes | None = field(default=None, repr=False)  # Kbm of the outstanding BU
    lifetime: int = 0  # granted, units of 4 s
    refresh_at: int = 0  # when a bound entry sends a new BU to keep its binding (0: never)
    deferred: dict = field(default_factory=dict)  # MH type -> when the rate limit lets it go (ns)
    resync_after: int | None = None  # a BA 135's number: the next BU goes on after it
    # return routability
    hoti_cookie: bytes | None = field(default=None, repr=False)
    coti_cookie: bytes | None = field(default=None, repr=False)
    coti_careof: bytes | None = None
    hoti_retx: _Retransmit | None = None
    coti_retx: _Retransmit | None = None
    home_token: tuple[bytes, int, int] | None = field(default=None, repr=False)  # token, nonce index, received at
    careof_token: tuple[bytes, int, bytes] | None = field(default=None, repr=False)  # token, nonce index, for CoA
    # precomputed
    data: PreconfiguredData | None = field(default=None, repr=False)
    fixed_home_token: bytes | None = field(default=None, repr=False)
    # home registration
    timestamp: int = 0
    registered_until: int = 0  # while the home agent holds a binding for us (ns; 0: none)


_ENTRY_FIELDS = tuple(f.name for f in dataclass_fields(BulEntry))


def snapshot(e: BulEntry) -> tuple:
    """Every field of ``e`` (``persist_failed`` puts them back)."""
    return tuple(getattr(e, name) for name in _ENTRY_FIELDS)


class MobileNode(UnrecognisedOptions):
    def __init__(
        self,
        home_address: bytes,
        home_agent: bytes,
        *,
        mn_ha: MnHaSecurityAssociation,
        records: Mapping[str, SeqRecord | RecordUnreadable] | None = None,
        persistence: Persistence = STRICT,
        correspondents: Iterable[bytes] = (),
        peers: Iterable[PreconfiguredData] = (),
        node: str = "mn",
        rng: Callable[[int], bytes] = secrets.token_bytes,
        home_lifetime_units: int = 105,
        cn_lifetime_units: int = 105,
        reuse_home_token: bool = True,
        weaken: frozenset[str] = frozenset(),
    ) -> None:
        self.home_address = home_address
        # TEST ONLY (testbed/mip6/weakening.py): defences turned off to show the checks can fail.
        # Empty in every real configuration; the per-packet path tests one boolean.
        self._weaken = check_names("mn", weaken, "MobileNode") if weaken else frozenset()
        self._weak = bool(self._weaken)
        self.home_agent = home_agent
        self.node = node
        self.persistence = persistence
        self._records = records if records is not None else {}
        self._kept: dict[str, SeqState] = {}  # the state of entries replaced by set_peers, by key
        self.careof: bytes | None = None
        self._mn_ha = mn_ha
        self._rng = rng
        self.home_lifetime_units = home_lifetime_units
        self.cn_lifetime_units = cn_lifetime_units
        # False: every move starts return routability from scratch (HoTI through the home
        # agent as well as CoTI), as if the home keygen token had expired (measurements).
        self.reuse_home_token = reuse_home_token
        self._last_timestamp = 0
        self._rate = UpdateRateLimit()
        self._icmp_limit = TokenBucket()
        self.home = self._entry(home_agent, "home", f"mn/ha/{home_agent.hex()}")
        self.bul: dict[bytes, BulEntry] = {}
        precomputed = self._index(peers)
        for cn in list(correspondents) + [c for c in precomputed if c not in correspondents]:
            data = precomputed.get(cn)
            self.bul[cn] = self._rr_entry(cn) if data is None else self._precomputed_entry(cn, data)

    def __repr__(self) -> str:
        return f"<MobileNode home {addr(self.home_address)} care-of {addr(self.careof)} {len(self.bul)} correspondents>"

    @property
    def address(self) -> bytes:
        """The address this node answers from (its care-of address away from home)."""
        return self.careof if self.careof is not None else self.home_address

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
                self._keep(e)
                self.bul[cn] = self._precomputed_entry(cn, data)
        for cn, e in list(self.bul.items()):
            if e.mechanism == "precomputed" and cn not in precomputed:
                self._keep(e)
                self.bul[cn] = self._rr_entry(cn)

    def _keep(self, e: BulEntry | None) -> None:
        """Remember the numbers of an entry being replaced: should its key come back, it
        goes on from them, not from the records read at start-up."""
        if e is not None and e.mark is not None:
            self._kept[e.store_key] = SeqState(e.seq, e.advance, e.mark)

    def _rr_entry(self, cn: bytes) -> BulEntry:
        return self._entry(cn, "rr", f"mn/cn/{cn.hex()}/rr")

    def _precomputed_entry(self, cn: bytes, data: PreconfiguredData) -> BulEntry:
        e = self._entry(cn, "precomputed", f"mn/cn/{cn.hex()}/{data.key_id}")
        e.data = data
        e.fixed_home_token = home_keygen_token(data.kcn, self.home_address, data.home_nonce)
        return e

    def _entry(self, peer: bytes, mechanism: str, store_key: str) -> BulEntry:
        e = BulEntry(peer, mechanism, check_key(store_key))
        kept = self._kept.pop(store_key, None)
        if kept is not None:
            e.seq, e.advance, e.mark = kept
            return e
        record = self._records.get(store_key)
        if type(record) is RecordUnreadable:  # its last number is unknown: never guess it
            raise ConfigError(f"the mobile node's sequence record {store_key} cannot be read: {record.reason}")
        if record is not None:
            e.seq, e.advance, e.mark = record.last, record.advance, record.last
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
        out: list[Action] = [CoaUsable(now, self.node, careof=addr(careof), at_home=self.at_home)]
        out += self._send_home_bu(now)
        for e in self.bul.values():
            if e.state in ("failed", "rekey", "unsupported"):
                continue
            if e.mechanism == "precomputed":
                out += self._send_cn_bu(e, now)
            else:
                if not self.reuse_home_token:
                    e.home_token = None
                out += self._start_rr(e, now)
        return out

    # ------------------------------------------------------------------ rate limit (RFC 6275 11.8)

    def _over_rate(self, e: BulEntry, kind: int, now: int) -> list[Action] | None:
        """None when a message of ``kind`` may go to ``e.peer`` now (and it is counted); else
        the send is deferred to when the limit allows it, and the (possibly empty) events."""
        if self._weak and "mn_rate_limit" in self._weaken:
            return None
        wait = self._rate.wait_ns(e.peer, kind, now)
        if not wait:
            self._rate.record(e.peer, kind, now)
            return None
        if kind in e.deferred:
            return []
        e.deferred[kind] = now + wait
        return [SendDeferred(now, self.node, peer=addr(e.peer), what=MHType(kind).name, until_t_ns=now + wait,
                            reason="MAX_UPDATE_RATE messages of this type to this node within a second (RFC 6275 11.8)")]

    def _send_deferred(self, e: BulEntry, kind: int, now: int) -> list[Action]:
        """What the state calls for now, in place of a message the rate limit held back."""
        if self.careof is None or e.state in ("failed", "rekey", "unsupported"):
            return []
        retransmission = e.state == "bu_sent" and e.bu_retx is not None
        if kind == MHType.BU:
            if e is self.home:
                return self._send_home_bu(now, retransmission)
            if e.mechanism == "precomputed":
                return self._send_cn_bu(e, now, retransmission)
            return self._maybe_rr_bu(e, now)
        if kind == MHType.HOTI and e.state == "rr" and e.home_token is None:
            return self._send_hoti(e, now)
        if kind == MHType.COTI and e.state == "rr" and not self.at_home and (
            e.careof_token is None or e.careof_token[2] != self.careof
        ):
            return self._send_coti(e, now)
        return []

    # ------------------------------------------------------------------ home registration

    def _send_home_bu(self, now: int, retransmission: bool = False) -> list[Action]:
        e = self.home
        held = self._over_rate(e, MHType.BU, now)
        if held is not None:
            return held
        before, last_timestamp = snapshot(e), self._last_timestamp
        problem, record = self._next_seq(e, now)
        if problem is not None:
            return problem
        careof = self.careof
        e.careof = careof
        self._last_timestamp = max(self._last_timestamp + 1, now)
        e.timestamp = self._last_timestamp
        lifetime = 0 if self.at_home else self.home_lifetime_units
        if self._weak and "mn_home_replay" in self._weaken:
            mh = seal_mn_ha(BindingUpdate(e.seq, lifetime, ack=True, home=True), self._mn_ha.spi, self._mn_ha.key,
                            careof, self.home_address)
        else:
            mh = seal_home_bu(e.seq, lifetime, e.timestamp, self._mn_ha.spi, self._mn_ha.key, careof, self.home_address)
        if self.at_home:
            pkt = build_packet(self.home_address, self.home_agent, IPPROTO_MH, mh)
        else:
            pkt = build_packet(careof, self.home_agent, IPPROTO_MH, mh, home_address=self.home_address)
        e.state = "bu_sent"
        if not retransmission:
            e.bu_retx = _Retransmit()
            # RFC 6275 11.8: InitialBindackTimeoutFirstReg while the home agent holds no binding for us
            first = e.registered_until <= now and not (self._weak and "mn_first_reg_timeout" in self._weaken)
            e.bu_retx.arm(now, INITIAL_BINDACK_TIMEOUT_FIRST_REG_NS if first else INITIAL_TIMEOUT_NS)
        return self._guarded(e, record, before, last_timestamp, [
            Send(pkt, "BU home"),
            BuSent(now, self.node, peer=addr(e.peer), mechanism="home", seq=e.seq, careof=addr(careof), lifetime=lifetime),
        ])

    def _on_home_ba(self, packet: Packet, ba: BindingAck, now: int) -> list[Action]:
        e = self.home
        if e.state != "bu_sent" or e.careof is None:
            return [Drop(now, self.node, reason="BA from home agent with no BU outstanding", seq=ba.seq)]
        if not mn_ha_valid(ba, self._mn_ha.key, e.careof, self.home_address) \
                and not (self._weak and "mn_home_ba_auth" in self._weaken):
            return [Drop(now, self.node, reason="home agent BA failed MN-HA authentication", seq=ba.seq, status=ba.status)]
        replay = next((o for o in ba.options if type(o) is ReplayProtection), None)
        out: list[Action] = [BaReceived(now, self.node, peer=addr(e.peer), mechanism="home", status=ba.status, seq=ba.seq)]
        if ba.status == BAStatus.MIPV6_ID_MISMATCH and replay is not None:
            self._last_timestamp = max(self._last_timestamp, replay.timestamp)
            return out + self._send_home_bu(now)
        if replay is None or replay.timestamp != e.timestamp:
            out.append(Drop(now, self.node, reason="home agent BA does not echo our timestamp", seq=ba.seq))
            return out
        if ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW:
            return out + self._resynchronise(e, ba.seq, now, self._send_home_bu)
        if ba.seq != e.seq:
            out.append(Drop(now, self.node, reason="home agent BA for another sequence number", seq=ba.seq, expected=e.seq))
            return out
        if ba.status >= 128:
            e.state = "failed"
            e.bu_retx = None
            out.append(BindingRefused(now, self.node, peer=addr(e.peer), mechanism="home", status=ba.status))
            return out
        e.state = "bound"
        e.bu_retx = None
        e.bound_careof = e.careof
        e.registered_until = now + ba.lifetime * LIFETIME_UNIT_S * SECOND_NS if ba.lifetime else 0
        self._schedule_refresh(e, ba.lifetime, now)
        out.append(HomeRegistered(now, self.node, careof=addr(e.careof), lifetime=ba.lifetime, at_home=self.at_home))
        # reverse-tunnelled HoTIs were waiting for the home registration
        for c in self.bul.values():
            if c.mechanism == "rr" and c.state == "rr" and c.hoti_cookie is None and c.home_token is None:
                out += self._send_hoti(c, now)
        return out

    def _resynchronise(self, e: BulEntry, last: int, now: int, send) -> list[Action]:
        """An authenticated BA 135: go on after ``last``, the peer's last accepted number, but
        only forward: a number behind ours comes from a stale or replayed BA."""
        if seq_step(last, e.seq) > SEQ_HALF:
            return [Drop(now, self.node, reason="BA 135 carries a number behind ours: stale or replayed", peer=addr(e.peer),
                               seq=last, ours=e.seq)]
        e.resync_after = last
        return send(now) if e is self.home else send(e, now)

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
        held = self._over_rate(e, MHType.HOTI, now)
        if held is not None:
            return held
        if e.hoti_cookie is None:
            e.hoti_cookie = self._rng(8)
            e.hoti_retx = _Retransmit()
            e.hoti_retx.arm(now)
        inner = build_packet(self.home_address, e.peer, IPPROTO_MH, encode(HomeTestInit(e.hoti_cookie)))
        if self.at_home or (self._weak and "mn_hoti_direct" in self._weaken):
            pkt, what = inner, "HoTI"
        else:
            pkt, what = build_packet(self.careof, self.home_agent, IPPROTO_IPV6, inner), "HoTI tunnelled"
        return [Send(pkt, what), HotiSent(now, self.node, peer=addr(e.peer), tunnelled=what != "HoTI")]

    def _send_coti(self, e: BulEntry, now: int) -> list[Action]:
        held = self._over_rate(e, MHType.COTI, now)
        if held is not None:
            return held
        if e.coti_cookie is None or e.coti_careof != self.careof:
            e.coti_cookie = self._rng(8)
            e.coti_careof = self.careof
            e.coti_retx = _Retransmit()
            e.coti_retx.arm(now)
        pkt = build_packet(self.careof, e.peer, IPPROTO_MH, encode(CareofTestInit(e.coti_cookie)))
        return [Send(pkt, "CoTI"), CotiSent(now, self.node, peer=addr(e.peer), careof=addr(self.careof))]

    def _on_hot(self, packet: Packet, msg: HomeTest, now: int) -> list[Action]:
        e = self.bul.get(packet.src)
        if e is None or e.mechanism != "rr" or e.hoti_cookie is None or msg.cookie != e.hoti_cookie:
            return [Drop(now, self.node, reason="HoT that matches no HoTI", src=addr(packet.src))]
        e.home_token = (msg.token, msg.nonce_index, now)
        e.hoti_cookie = None
        e.hoti_retx = None
        return [HotReceived(now, self.node, peer=addr(e.peer), nonce_index=msg.nonce_index)] + self._maybe_rr_bu(e, now)

    def _on_cot(self, packet: Packet, msg: CareofTest, now: int) -> list[Action]:
        e = self.bul.get(packet.src)
        if e is None or e.mechanism != "rr" or e.coti_cookie is None or msg.cookie != e.coti_cookie:
            return [Drop(now, self.node, reason="CoT that matches no CoTI", src=addr(packet.src))]
        e.careof_token = (msg.token, msg.nonce_index, e.coti_careof)
        e.coti_cookie = None
        e.coti_retx = None
        return [CotReceived(now, self.node, peer=addr(e.peer), nonce_index=msg.nonce_index)] + self._maybe_rr_bu(e, now)

    def _maybe_rr_bu(self, e: BulEntry, now: int) -> list[Action]:
        if e.state != "rr" or not self._home_token_valid(e, now):
            return []
        if not self.at_home and (e.careof_token is None or e.careof_token[2] != self.careof):
            return []
        return self._send_cn_bu(e, now)

    # ------------------------------------------------------------------ correspondent registration

    def _next_seq(self, e: BulEntry, now: int) -> tuple[list[Action] | None, SeqRecord | None]:
        """Take the next sequence number (after a BA 135's number when resynchronising).
        Returns (None, the record to make durable before the BU goes, or None when a reserve
        covers it); or, when no BU may go, the events that say why: the R13 bound reached
        (state ``rekey``, the key marked used up durably)."""
        base = e.seq if e.resync_after is None else e.resync_after
        new = seq_next(base)
        step = seq_step(new, e.seq)
        precomputed = e.mechanism == "precomputed"
        if precomputed and not kbm_step_allowed(e.advance, step) and not (self._weak and "mn_r13" in self._weaken):
            e.state = "rekey"
            e.bu_retx = None
            e.deferred.clear()
            out: list[Action] = []
            if not kbm_exhausted(e.advance):  # a jump would cross the bound: the key is used up, durably
                mark = e.seq if e.mark is None else e.mark
                out.append(Persist(e.store_key, SeqRecord(mark, KBM_MAX_ADVANCE), undo=("rekey", e)))
                e.advance = KBM_MAX_ADVANCE
            out.append(RekeyRequired(now, self.node, peer=addr(e.peer), key_id=e.data.key_id, advance=e.advance,
                                     step=step, reason="the key's sequence number advance would pass 2^15 (R13)"))
            return out, None
        state = None if e.mark is None else SeqState(e.seq, e.advance, e.mark)
        advance = e.advance + step
        state, record = advance_to(state, new, advance, self.persistence, KBM_MAX_ADVANCE if precomputed else None)
        e.seq, e.advance, e.mark, e.resync_after = new, advance, state.mark, None
        return None, record

    def _guarded(self, e: BulEntry, record: SeqRecord | None, snapshot: tuple, last_timestamp: int,
                 out: list[Action]) -> list[Action]:
        """``out`` (a BU and its event), behind a Persist of ``record`` when there is one."""
        if record is None:
            return out
        return [Persist(e.store_key, record, len(out), undo=("bu", e, snapshot, last_timestamp)), *out]

    def persist_failed(self, persist: Persist, reason: str, now: int) -> list[Action]:
        """The agent could not make ``persist`` durable: the BU it guarded was not sent. The
        entry goes back to what it was before that BU, and the BU is tried again a second
        later (a key marked used up stays used up in memory)."""
        undo = persist.undo
        if undo[0] == "rekey":
            return [StoreFailed(now, self.node, peer=addr(undo[1].peer), reason=reason)]
        _, e, snapshot, last_timestamp = undo
        for name, value in zip(_ENTRY_FIELDS, snapshot):
            setattr(e, name, value)
        self._last_timestamp = last_timestamp
        e.deferred[MHType.BU] = now + SECOND_NS
        return [StoreFailed(now, self.node, peer=addr(e.peer), reason=reason, retry_t_ns=now + SECOND_NS)]

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
            if self._weak and "mn_nonce_indices" in self._weaken:
                options = (NonceIndices(0, 0),)
        else:
            home_token, home_index, _ = e.home_token
            if deregistering:
                kbm = binding_management_key(home_token, None)
                careof_index = 0
            else:
                careof_token, careof_index, _ = e.careof_token
                kbm = binding_management_key(home_token, careof_token)
            options = (NonceIndices(home_index, careof_index),)
        held = self._over_rate(e, MHType.BU, now)
        if held is not None:
            return held
        before = snapshot(e)
        problem, record = self._next_seq(e, now)
        if problem is not None:
            return problem
        lifetime = 0 if deregistering else self.cn_lifetime_units
        if options:
            mh = seal_bad(BindingUpdate(e.seq, lifetime, ack=True, options=options), kbm, careof, e.peer)
        else:  # a precomputed peer's BU, from a template
            mh = seal_precomputed_bu(e.seq, lifetime, kbm, careof, e.peer)
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
        return self._guarded(e, record, before, self._last_timestamp, [
            Send(pkt, "BU"),
            BuSent(now, self.node, peer=addr(e.peer), mechanism=e.mechanism, seq=e.seq, careof=addr(careof), lifetime=lifetime),
        ])

    def _on_cn_ba(self, e: BulEntry, ba: BindingAck, now: int) -> list[Action]:
        authenticated = e.sent_kbm is not None and bad_valid(ba, e.sent_kbm, e.careof, e.peer)
        fields = dict(peer=addr(e.peer), mechanism=e.mechanism, status=ba.status, seq=ba.seq, authenticated=authenticated)
        if e.state != "bu_sent":
            return [Drop(now, self.node, reason="BA with no BU outstanding", **fields)]
        if e.mechanism == "precomputed" and not authenticated:
            if self._weak and "mn_bidding_down" in self._weaken and ba.status in (
                BAStatus.EXPIRED_HOME_NONCE_INDEX, BAStatus.EXPIRED_CAREOF_NONCE_INDEX, BAStatus.EXPIRED_NONCES,
            ):
                return [BaReceived(now, self.node, **fields)] + self._weakened_fall_back(e, now)
            if not (self._weak and "mn_cn_ba_auth" in self._weaken):  # weakened: taken as if authenticated
                return [Drop(now, self.node, reason="unauthenticated BA from a precomputed peer ignored (R7, R15)",
                             **fields)]
        if e.mechanism == "rr" and not authenticated and ba.status not in (
            BAStatus.EXPIRED_HOME_NONCE_INDEX, BAStatus.EXPIRED_CAREOF_NONCE_INDEX, BAStatus.EXPIRED_NONCES,
        ):
            return [Drop(now, self.node, reason="unauthenticated BA", **fields)]
        out: list[Action] = [BaReceived(now, self.node, **fields)]
        if ba.status == BAStatus.SEQUENCE_OUT_OF_WINDOW:  # continue after the number the CN last accepted
            if self._weak and "mn_resync" in self._weaken:
                return out
            return out + self._resynchronise(e, ba.seq, now, self._send_cn_bu)
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
            out.append(Drop(now, self.node, reason="BA for another sequence number", expected=e.seq, **fields))
            return out
        if self._weak and ba.status == BAStatus.ACCEPTED and "mn_retransmit" in self._weaken:
            return out  # still "bu_sent", the retransmission timer armed
        e.bu_retx = None
        if ba.status >= 128:
            e.state = "failed"
            out.append(BindingRefused(now, self.node, **fields))
            return out
        e.state = "bound"
        e.bound_careof = e.careof
        self._schedule_refresh(e, ba.lifetime, now)
        out.append(CnRegistered(now, self.node, peer=addr(e.peer), mechanism=e.mechanism, careof=addr(e.careof), seq=ba.seq, lifetime=ba.lifetime))
        return out

    def _on_be(self, packet: Packet, be: BindingError, now: int) -> list[Action]:
        e = self.bul.get(packet.src)
        fields = dict(peer=addr(packet.src), status=be.status)
        if e is None:
            return [Drop(now, self.node, reason="Binding Error from a node not in the Binding Update List", **fields)]
        if e.mechanism == "precomputed":
            if self._weak and "mn_bidding_down" in self._weaken:
                return [BeReceived(now, self.node, **fields)] + self._weakened_fall_back(e, now)
            return [BeIgnored(now, self.node, reason="precomputed peer: no other mechanism (R15)", **fields)]
        out: list[Action] = [BeReceived(now, self.node, **fields)]
        if be.status == BEStatus.UNRECOGNIZED_MH_TYPE:
            e.state = "unsupported"
            e.bu_retx = e.hoti_retx = e.coti_retx = None
        return out

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: int) -> list[Action]:
        try:
            packet = parse_packet(data)
        except CodecError as exc:
            return [Drop(now, self.node, reason=f"malformed packet: {exc}")]
        if packet.unknown_option is not None:
            return self._unrecognised_option(packet, data, now)
        if packet.next_header == IPPROTO_IPV6:
            if packet.src != self.home_agent:
                return [Drop(now, self.node, reason="tunnelled packet not from the home agent", src=addr(packet.src))]
            try:
                inner = parse_packet(packet.payload)
            except CodecError as exc:
                return [Drop(now, self.node, reason=f"malformed tunnelled packet: {exc}")]
            if inner.dst != self.home_address:
                return [Drop(now, self.node, reason="tunnelled packet not for the home address", dst=addr(inner.dst))]
            if inner.unknown_option is not None:  # RFC 8200 4.2; no ICMPv6 error from inside the tunnel
                return [Drop(now, self.node, reason="unrecognised option in an extension header of a tunnelled packet: discarded",
                                   src=addr(inner.src), option=packet.payload[inner.unknown_option[0]])]
            if inner.next_header != IPPROTO_MH:
                return []
            packet = inner
        elif packet.next_header != IPPROTO_MH:
            return []
        try:
            msg = decode(packet.payload)
        except CodecError as exc:
            return [Drop(now, self.node, reason=f"malformed Mobility Header: {exc}", src=addr(packet.src))]
        if not mh_checksum_ok(packet):  # over the Mobility Header that Header Len delimits
            return [Drop(now, self.node, reason="bad Mobility Header checksum", src=addr(packet.src))]
        problem = option_layout_error(msg)
        if problem is not None:
            return [Drop(now, self.node, reason=f"{type(msg).__name__} dropped: {problem}", src=addr(packet.src))]
        kind = type(msg)
        if kind is BindingAck:
            if packet.src == self.home_agent:
                return self._on_home_ba(packet, msg, now)
            e = self.bul.get(packet.src)
            if e is None:
                return [Drop(now, self.node, reason="BA from a node not in the Binding Update List", src=addr(packet.src))]
            return self._on_cn_ba(e, msg, now)
        if kind is HomeTest:
            return self._on_hot(packet, msg, now)
        if kind is CareofTest:
            return self._on_cot(packet, msg, now)
        if kind is BindingError:
            return self._on_be(packet, msg, now)
        if kind is BindingRefreshRequest:
            if self._weak and "mn_brr" in self._weaken:
                return [Drop(now, self.node, reason="weakened: Binding Refresh Request ignored", src=addr(packet.src))]
            e = self.bul.get(packet.src)
            if e is None or e.state != "bound" or self.careof is None:
                return [Drop(now, self.node, reason="Binding Refresh Request with no binding", src=addr(packet.src))]
            out: list[Action] = [BrrReceived(now, self.node, peer=addr(e.peer))]
            if e.mechanism == "precomputed":
                return out + self._send_cn_bu(e, now)
            return out + self._start_rr(e, now)
        return [Drop(now, self.node, reason=f"unexpected {kind.__name__} at a mobile node", src=addr(packet.src))]

    # ------------------------------------------------------------------ timers

    @staticmethod
    def _schedule_refresh(e: BulEntry, lifetime_units: int, now: int) -> None:
        e.lifetime = lifetime_units
        e.refresh_at = now + int(lifetime_units * LIFETIME_UNIT_S * SECOND_NS * REFRESH_AT_FRACTION) if lifetime_units else 0

    def _refresh(self, e: BulEntry, now: int) -> list[Action]:
        e.refresh_at = 0
        out: list[Action] = [BindingRefresh(now, self.node, peer=addr(e.peer), mechanism=e.mechanism,
                                         careof=addr(e.bound_careof), lifetime=e.lifetime)]
        if e is self.home:
            return out + self._send_home_bu(now)
        if e.mechanism == "precomputed":
            return out + self._send_cn_bu(e, now)
        return out + self._start_rr(e, now)

    @staticmethod
    def _armed(e: BulEntry) -> list[_Retransmit]:
        """The retransmission timers ``handle_timer`` would act on: one whose message is no
        longer outstanding (a HoTI whose cookie a move dropped, say) is not a timer; counting
        it would wake the agent at once, again and again."""
        out = []
        if e.bu_retx is not None and e.state == "bu_sent":
            out.append(e.bu_retx)
        if e.state == "rr":
            if e.hoti_retx is not None and e.hoti_cookie is not None:
                out.append(e.hoti_retx)
            if e.coti_retx is not None and e.coti_cookie is not None:
                out.append(e.coti_retx)
        return out

    def next_timer(self) -> int | None:
        times = [r.at for e in self.entries() for r in self._armed(e) if r.at]
        times += [e.refresh_at for e in self.entries() if e.state == "bound" and e.refresh_at]
        times += [at for e in self.entries() for at in e.deferred.values()]
        return min(times, default=None)

    def handle_timer(self, now: int) -> list[Action]:
        out: list[Action] = []
        h = self.home
        for e in self.entries():
            for kind in [k for k, at in e.deferred.items() if at <= now]:
                del e.deferred[kind]
                out += self._send_deferred(e, kind, now)
        for e in self.entries():
            if e.state == "bound" and e.refresh_at and e.refresh_at <= now:
                if self.at_home:  # nothing to keep: bindings are deleted at home
                    e.refresh_at = 0
                    continue
                out += self._refresh(e, now)
        if h.bu_retx is not None and h.bu_retx.at and h.bu_retx.at <= now and h.state == "bu_sent":
            h.bu_retx.backoff(now)
            out.append(Retransmit(now, self.node, peer=addr(h.peer), what="BU", timeout_ms=h.bu_retx.timeout // 1_000_000))
            out += self._send_home_bu(now, retransmission=True)
        for e in self.bul.values():
            r = e.bu_retx
            if r is not None and r.at <= now and e.state == "bu_sent":
                r.backoff(now)
                out.append(Retransmit(now, self.node, peer=addr(e.peer), what="BU", timeout_ms=r.timeout // 1_000_000))
                out += self._send_cn_bu(e, now, retransmission=True)
            r = e.hoti_retx
            if r is not None and r.at <= now and e.state == "rr" and e.hoti_cookie is not None:
                r.backoff(now)
                out.append(Retransmit(now, self.node, peer=addr(e.peer), what="HoTI", timeout_ms=r.timeout // 1_000_000))
                out += self._send_hoti(e, now)
            r = e.coti_retx
            if r is not None and r.at <= now and e.state == "rr" and e.coti_cookie is not None:
                r.backoff(now)
                out.append(Retransmit(now, self.node, peer=addr(e.peer), what="CoTI", timeout_ms=r.timeout // 1_000_000))
                out += self._send_coti(e, now)
        return out

    # ------------------------------------------------------------------ test-only weakenings

    def _weakened_fall_back(self, e: BulEntry, now: int) -> list[Action]:
        """Bidding down (R15 broken): the precomputed peer's entry becomes a return-routability one."""
        rr = self.bul[e.peer] = self._rr_entry(e.peer)
        return self._start_rr(rr, now)
