"""Correspondent node engine: return routability (RFC 6275) and precomputed Kbm (RFC 4449).

Sans-I/O: ``receive(packet, now)`` and ``handle_timer(now)`` return actions (``Send`` whole
IPv6 packets, ``Persist`` sequence records, typed events). The last accepted number of each
precomputed peer is kept in memory, from the records the agent read at start-up
(``records``); the engine asks for it to be made durable with a ``Persist`` in front of the
BA (``persistence``: every number, or a reserve, ``testbed.mip6.persistence``). Binding
Updates are processed exactly in the order of docs/protocol.md section 4:

1. parse (malformed, duplicate options, anything after BAD: silent drop);
2. H flag (home registration sent to a CN): Nonce Indices present: drop; binding: BA 139;
   else BA 131;
3. a peer with preconfigured data (keyed by home address) is checked with the precomputed
   Kbm, Nonce Indices ignored (R5, R6); other peers by return routability;
4. sequence number against the last accepted, modulo 2^16; for precomputed peers always,
   against the stored value (R4, R14), else BA 135 carrying the last accepted number;
   a precomputed key's total advance is bounded by 2^15 (R13): a BU that would carry it
   further ends the key's use (``rekey_required``, the BU dropped, every later one too);
5. the new number is made durable before anything is sent (a ``Persist`` guarding the
   binding's change and the BA), then the binding changes (a store that cannot make it
   durable: ``persist_failed`` puts the binding and the number back, and the BU is dropped
   with a ``store_failed`` event);
6. a BA when A is set and always on rejection, with BAD (R7) except for statuses 136-138.

Before any of this, a packet with an unrecognised option that must not be skipped is
discarded (``testbed.mip6.icmp``). Binding Errors go only to unicast sources, carry the Home
Address option's address or the unspecified address, and are rate-limited like ICMPv6
errors (RFC 6275 9.3.3).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from testbed.mip6.actions import Action, Persist, Send
from testbed.mip6.bindingcache import BindingCache
from testbed.mip6.constants import (
    IPPROTO_MH,
    KBM_LEN,
    LIFETIME_UNIT_S,
    MAX_LIFETIME_UNITS,
    MAX_RR_BINDING_LIFETIME_S,
    SECOND_NS,
    BAStatus,
    BEStatus,
)
from testbed.mip6.crypto import (
    binding_authenticator,
    binding_management_key,
    careof_keygen_token,
    home_keygen_token,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.events import (
    BaNotSent,
    BaSent,
    BeSent,
    BindingCreated,
    BindingDeleted,
    BindingRefreshed,
    BindingUpdated,
    BuReceived,
    BuRejected,
    CotiReceived,
    CotSent,
    Drop,
    ErrorNotSent,
    HotiReceived,
    HotSent,
    RekeyRequired,
    StoreFailed,
    addr,
)
from testbed.mip6.icmp import UnrecognisedOptions, is_unicast
from testbed.mip6.keys import PreconfiguredData, index_peers
from testbed.mip6.messages import (
    BindingAck,
    BindingError,
    BindingUpdate,
    CareofTest,
    CareofTestInit,
    HomeTest,
    HomeTestInit,
    UnknownMessage,
    decode,
    encode,
)
from testbed.mip6.nonces import NonceRing
from testbed.mip6.options import AlternateCoA, BindingAuthData, NonceIndices
from testbed.mip6.packet import Packet, build_packet, mh_checksum, mh_checksum_ok, mh_packet, parse_packet
from testbed.mip6.persistence import (
    STRICT,
    Persistence,
    RecordUnreadable,
    SeqRecord,
    SeqState,
    advance_to,
    check_key,
    state_from,
)
from testbed.mip6.ratelimit import TokenBucket
from testbed.mip6.sealing import bad_matches, option_layout_error, seal_ba
from testbed.mip6.seqno import KBM_MAX_ADVANCE, SEQ_HALF, SEQ_MAX, seq_greater
from testbed.mip6.weakening import check_names

RR_MAX_LIFETIME_UNITS = MAX_RR_BINDING_LIFETIME_S // LIFETIME_UNIT_S  # 105
_ACCEPTED = int(BAStatus.ACCEPTED)  # a plain int on the per-BU path (an IntEnum look-up costs)
_new = object.__new__


def packet_ack(packet: Packet) -> bool:
    """The A flag of the BU in ``packet`` (test-only weakening ``ack_on_reject``)."""
    return len(packet.payload) > 8 and bool(packet.payload[8] & 0x80)


@dataclass(slots=True)
class Binding:
    home: bytes
    careof: bytes
    seq: int
    expires_ns: int
    mechanism: str  # "precomputed" or "rr"
    lifetime_units: int


def record_key(data: PreconfiguredData) -> str:
    """The key of a precomputed peer's sequence record: its home address and key id."""
    return check_key(f"cn/{data.home_address.exploded.replace(':', '')}/{data.key_id}")


class _PrecomputedPeer:
    """One MN configured with preconfigured data: its home token is fixed, Kbm cached per CoA."""

    __slots__ = ("data", "home", "home_token", "store_key", "_kbm", "_dereg_kbm")

    def __repr__(self) -> str:  # the tokens and keys it holds never show
        return f"<precomputed peer {self.data.home_address} key {self.data.key_id}>"

    def __init__(self, data: PreconfiguredData) -> None:
        self.data = data
        self.home = data.home_address.packed
        self.home_token = home_keygen_token(data.kcn, self.home, data.home_nonce)
        self.store_key = record_key(data)
        self._kbm: dict[bytes, bytes] = {}
        self._dereg_kbm = binding_management_key(self.home_token, None)

    def kbm(self, careof: bytes, deregistering: bool) -> bytes:
        if deregistering:
            return self._dereg_kbm
        kbm = self._kbm.get(careof)
        if kbm is None:
            if len(self._kbm) > 64:
                self._kbm.clear()
            token = careof_keygen_token(self.data.kcn, careof, self.data.careof_nonce)
            kbm = self._kbm[careof] = binding_management_key(self.home_token, token)
        return kbm


class CorrespondentNode(BindingCache, UnrecognisedOptions):
    """``records``: the sequence records the agent read from its store (key -> ``SeqRecord``
    or ``RecordUnreadable``; ``record_key`` names a peer's), consulted for a peer the first
    time the engine meets it. ``persistence``: strict, or a reserve (docs/protocol.md R4)."""

    def __init__(
        self,
        address: bytes,
        *,
        peers: Iterable[PreconfiguredData] = (),
        records: Mapping[str, SeqRecord | RecordUnreadable] | None = None,
        persistence: Persistence = STRICT,
        node: str = "cn",
        rng: Callable[[int], bytes] = secrets.token_bytes,
        precomputed_max_lifetime_units: int = MAX_LIFETIME_UNITS,
        error_limit: TokenBucket | None = None,
        weaken: frozenset[str] = frozenset(),
    ) -> None:
        self.address = address
        # TEST ONLY (testbed/mip6/weakening.py): defences turned off to show the checks can fail.
        # Empty in every real configuration; the per-packet path tests one boolean.
        self._weaken = check_names("cn", weaken, "CorrespondentNode") if weaken else frozenset()
        self._weak = bool(self._weaken)
        if "persist" in self._weaken:  # numbers in memory only: what is stored is not read, nothing written
            records = None
        self.node = node
        self.persistence = persistence
        self.bindings: dict[bytes, Binding] = {}
        self.precomputed_max_lifetime_units = precomputed_max_lifetime_units
        self._kcn = rng(KBM_LEN)  # this node's RR key, never leaves the engine
        self._nonces = NonceRing(rng)
        self._peers: dict[bytes, _PrecomputedPeer] = {}
        self._records = records if records is not None else {}
        # key -> the state of every record this engine has used, kept when a peer goes (a
        # rekey, a removed file) so that it comes back with its last number, not the start-up one
        self._seq: dict[str, SeqState | RecordUnreadable] = {}
        self._be_limit = error_limit or TokenBucket()
        self._icmp_limit = TokenBucket(self._be_limit.rate_per_s, self._be_limit.burst)
        self.set_peers(peers)

    def __repr__(self) -> str:
        return f"<CorrespondentNode {addr(self.address)} {len(self._peers)} precomputed peers, {len(self.bindings)} bindings>"

    # ------------------------------------------------------------------ configuration

    def set_peers(self, peers: Iterable[PreconfiguredData]) -> None:
        """(Re)load the precomputed peers (R10 checked: distinct Kcn and pairs)."""
        indexed = index_peers(list(peers), "cn")
        self._peers = {home.packed: _PrecomputedPeer(data) for home, data in indexed.items()}
        for peer in self._peers.values():
            key = peer.store_key
            if key not in self._seq:
                found = self._records.get(key)
                if found is not None:
                    self._seq[key] = found if type(found) is RecordUnreadable else state_from(found)

    def sequence_state(self, data: PreconfiguredData) -> SeqState | RecordUnreadable | None:
        """What the engine holds for a precomputed peer's sequence number (None: nothing yet)."""
        return self._seq.get(record_key(data))

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: int) -> list[Action]:
        try:
            packet = parse_packet(data)
        except CodecError as exc:
            return [Drop(now, self.node, reason=f"malformed packet: {exc}")]
        if packet.final_destination != self.address:
            return [Drop(now, self.node, reason="not addressed to this node", dst=addr(packet.final_destination))]
        if packet.unknown_option is not None and not (self._weak and "unknown_options" in self._weaken):
            return self._unrecognised_option(packet, data, now)
        if packet.next_header != IPPROTO_MH:
            if packet.home_address is not None and not (self._weak and "binding_errors" in self._weaken):
                binding = self.bindings.get(packet.home_address)
                # RFC 6275 9.3.1: a corresponding entry has this home address AND the packet's
                # source as its registered care-of address
                if binding is None or (binding.careof != packet.src
                                       and not (self._weak and "be_careof" in self._weaken)):
                    return self._binding_error(packet, BEStatus.UNKNOWN_BINDING_FOR_HOME_ADDRESS, now)
            return []
        try:
            msg = decode(packet.payload)
        except CodecError as exc:
            if self._weak and "hdrlen" in self._weaken:
                return self._weakened_header_len(packet, exc, now)
            return [Drop(now, self.node, reason=f"malformed Mobility Header: {exc}", src=addr(packet.src))]
        # over the Mobility Header that Header Len delimits
        if not mh_checksum_ok(packet) and not (self._weak and "checksum" in self._weaken):
            return [Drop(now, self.node, reason="bad Mobility Header checksum", src=addr(packet.src))]
        kind = type(msg)
        if kind is BindingUpdate:
            return self._on_bu(packet, msg, now)
        if kind is HomeTestInit:
            return self._on_hoti(packet, msg, now)
        if kind is CareofTestInit:
            return self._on_coti(packet, msg, now)
        if kind is UnknownMessage:
            if self._weak and "binding_errors" in self._weaken:
                return []
            return self._binding_error(packet, BEStatus.UNRECOGNIZED_MH_TYPE, now)
        return [Drop(now, self.node, reason=f"unexpected {kind.__name__} at a correspondent node", src=addr(packet.src))]

    def persist_failed(self, persist: Persist, reason: str, now: int) -> list[Action]:
        """The agent could not make ``persist`` durable (and sent nothing it guarded): the
        binding and the number go back to what they were before the BU, which is dropped."""
        undo = persist.undo
        if self._weak and "store_ack" in self._weaken:  # TEST ONLY: acknowledged anyway, kept
            return [StoreFailed(now, self.node, home=addr(undo[3]), seq=undo[-1], reason=reason)]
        if undo[0] == "used up":  # not marked used up: the next BU is judged afresh
            _, key, old_state, home, seq = undo
            self._seq[key] = old_state
            return [StoreFailed(now, self.node, home=addr(home), seq=seq, reason=reason)]
        _, key, old_state, home, old_binding, seq = undo
        self._undo_registration(key, old_state, home, old_binding)
        return [
            StoreFailed(now, self.node, home=addr(home), seq=seq, reason=reason),
            Drop(now, self.node, reason="BU dropped: its sequence number could not be made durable (R4)",
                 home=addr(home), seq=seq),
        ]

    # ------------------------------------------------------------------ return routability tests

    def _on_hoti(self, packet: Packet, msg: HomeTestInit, now: int) -> list[Action]:
        home = packet.src
        if packet.home_address is not None:
            return [Drop(now, self.node, reason="HoTI with a Home Address option", src=addr(home))]
        if self._weak and "rr" in self._weaken:
            return [Drop(now, self.node, reason="weakened: return routability not served", home=addr(home))]
        # R15: never run return routability with a precomputed peer
        if home in self._peers and not (self._weak and "rr_for_precomputed" in self._weaken):
            return [Drop(now, self.node, reason="HoTI from a peer configured for precomputed Kbm (R15)", home=addr(home))]
        index, nonce = self._nonces.current(now)
        token = home_keygen_token(self._kcn, home, nonce)
        mh = encode(HomeTest(index, msg.cookie, token))
        return [
            HotiReceived(now, self.node, home=addr(home)),
            Send(build_packet(self.address, home, IPPROTO_MH, mh), "HoT"),
            HotSent(now, self.node, home=addr(home), nonce_index=index),
        ]

    def _on_coti(self, packet: Packet, msg: CareofTestInit, now: int) -> list[Action]:
        careof = packet.src
        if packet.home_address is not None:
            return [Drop(now, self.node, reason="CoTI with a Home Address option", src=addr(careof))]
        index, nonce = self._nonces.current(now)
        token = careof_keygen_token(self._kcn, careof, nonce)
        mh = encode(CareofTest(index, msg.cookie, token))
        return [
            CotiReceived(now, self.node, careof=addr(careof)),
            Send(build_packet(self.address, careof, IPPROTO_MH, mh), "CoT"),
            CotSent(now, self.node, careof=addr(careof), nonce_index=index),
        ]

    # ------------------------------------------------------------------ binding updates

    def _on_bu(self, packet: Packet, bu: BindingUpdate, now: int) -> list[Action]:
        node = self.node
        home = packet.mh_source
        careof = packet.src
        nonce_indices = None
        has_bad = False
        for opt in bu.options:
            kind = type(opt)
            if kind is BindingAuthData:
                has_bad = True
            elif kind is AlternateCoA:
                careof = opt.address
            elif kind is NonceIndices:
                nonce_indices = opt
        deregistering = bu.lifetime == 0 or careof == home
        home_text = addr(home)
        careof_text = addr(careof)
        seq = bu.seq
        # The per-BU events are made as _new(cls) then __init__(...): calling a class with
        # keywords makes CPython build a dict of them first, twice as slow (1.3 us an event).
        received = _new(BuReceived)
        received.__init__(now, node, home=home_text, careof=careof_text, seq=seq, lifetime=bu.lifetime,
                          ack=bu.ack, home_reg=bu.home)
        out: list[Action] = [received]
        # 1. layout rules
        problem = option_layout_error(bu)
        if problem is not None and self._weak:
            problem = self._weakened_layout(problem)
        if problem is not None:
            out.append(Drop(now, node, reason=f"BU dropped: {problem}", home=home_text, seq=seq))
            return out
        peer = self._peers.get(home)
        # 2. home registration sent to a correspondent node
        if bu.home and not (self._weak and "home_reg" in self._weaken):
            if nonce_indices is not None:
                out.append(Drop(now, node, reason="BU with H flag and Nonce Indices", home=home_text, seq=seq))
                return out
            status = BAStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED if home in self.bindings else BAStatus.HOME_REGISTRATION_NOT_SUPPORTED
            kbm = peer.kbm(careof, deregistering) if peer is not None else None
            out += self._ba(packet, home, careof, status, seq, 0, kbm, now)
            return out
        # 3. authorisation
        if peer is not None:
            if not has_bad and not (self._weak and "bad_required" in self._weaken):
                out.append(Drop(now, node, reason="BU from a precomputed peer without Binding Authorization Data (R5)",
                                home=home_text, seq=seq))
                return out
            kbm = peer.kbm(careof, deregistering)
            mechanism = "precomputed"
            if self._weak and nonce_indices is not None and "nonce_indices_strict" in self._weaken:
                out.append(self._drop(now, "weakened: precomputed BU with Nonce Indices dropped", home=addr(home), seq=bu.seq))
                return out
        else:
            if nonce_indices is None and self._weak and "rr_indices" in self._weaken:
                index = self._nonces.current(now)[0]
                nonce_indices = NonceIndices(index, index)
            if nonce_indices is None:
                out.append(Drop(now, node, reason="return-routability BU without Nonce Indices", home=home_text, seq=seq))
                return out
            if not has_bad:
                out.append(Drop(now, node, reason="BU without Binding Authorization Data", home=home_text, seq=seq))
                return out
            home_nonce = self._nonces.lookup(nonce_indices.home_nonce_index, now)
            careof_nonce = None if deregistering else self._nonces.lookup(nonce_indices.careof_nonce_index, now)
            if self._weak and "nonce_expiry" in self._weaken:
                current = self._nonces.current(now)[1]
                home_nonce, careof_nonce = home_nonce or current, careof_nonce or (None if deregistering else current)
            if home_nonce is None or (careof_nonce is None and not deregistering):
                if home_nonce is None and careof_nonce is None and not deregistering:
                    status = BAStatus.EXPIRED_NONCES
                elif home_nonce is None:
                    status = BAStatus.EXPIRED_HOME_NONCE_INDEX
                else:
                    status = BAStatus.EXPIRED_CAREOF_NONCE_INDEX
                out += self._ba(packet, home, careof, status, seq, 0, None, now)
                return out
            home_token = home_keygen_token(self._kcn, home, home_nonce)
            careof_token = None if deregistering else careof_keygen_token(self._kcn, careof, careof_nonce)
            kbm = binding_management_key(home_token, careof_token)
            mechanism = "rr"
        # layout checked, a BAD present: it is last (a weakened engine may have let either pass)
        if not (has_bad and bad_matches(bu.raw, kbm, careof, self.address)) \
                and not (self._weak and self._auth_weakened(bu, kbm, careof)):
            out.append(Drop(now, node, reason=f"BU authenticator mismatch ({mechanism})", home=home_text, seq=seq))
            return out
        # 4. sequence number
        binding = self.bindings.get(home)
        state = None
        if peer is not None:
            state = self._seq.get(peer.store_key)
            if state is not None:
                if type(state) is RecordUnreadable:
                    out.append(StoreFailed(now, node, home=home_text, seq=seq, reason=state.reason))
                    out.append(Drop(now, node, reason="BU dropped: its peer's sequence record cannot be read",
                                    home=home_text, seq=seq))
                    return out
                if state.advance >= KBM_MAX_ADVANCE and not (self._weak and "r13" in self._weaken):
                    return out + self._key_used_up(home, peer, seq, state, now)
            last = state.last if state is not None else None
        else:
            last = binding.seq if binding is not None else None
        # seq_greater, inline (both 16-bit)
        if last is not None and not (0 < ((seq - last) & SEQ_MAX) < SEQ_HALF if not self._weak
                                     else self._seq_ok(seq, last)):
            out.append(BuRejected(now, node, home=home_text, seq=seq, last_seq=last,
                                  reason="sequence number not greater (R4/R14)"))
            out += self._ba(packet, home, careof, BAStatus.SEQUENCE_OUT_OF_WINDOW, last, 0, kbm, now)
            return out
        # 5. persist, then change the binding
        guarded = len(out)  # where a Persist goes: everything after it waits for the write
        persist = None
        if peer is not None:
            # R13: the first number accepted under a key counts one step, every later one its
            # distance from the last; a BU that would carry the total past 2^15 ends the key.
            if state is None:
                advance = 1
            else:
                step = (seq - state.last) & SEQ_MAX  # seqno.seq_step, inline: the per-BU path
                if state.advance + step > KBM_MAX_ADVANCE and not (self._weak and "r13" in self._weaken):
                    return out + self._key_used_up(home, peer, seq, state, now, step=step, crossing=True)
                advance = state.advance + step
            key = peer.store_key
            new_state, record = advance_to(state, seq, advance, self.persistence, KBM_MAX_ADVANCE)
            self._seq[key] = new_state
            if record is not None and not (self._weak and "persist" in self._weaken):
                # positional (a call with keywords costs twice as much); guards set below
                persist = Persist(key, record, 0, ("bu", key, state, home, binding, seq))
            if advance >= KBM_MAX_ADVANCE:
                out.append(RekeyRequired(now, node, home=home_text, key_id=peer.data.key_id, advance=advance,
                                         reason="this BU used the last of the key's sequence space (R13)"))
        if deregistering:
            granted = 0
            if binding is not None and not (self._weak and "dereg" in self._weaken):
                del self.bindings[home]
                out.append(BindingDeleted(now, node, home=home_text, seq=seq, mechanism=mechanism))
        else:
            cap = self.precomputed_max_lifetime_units if peer is not None else RR_MAX_LIFETIME_UNITS
            if self._weak:
                cap = self._weakened_cap(cap, peer is not None)
            granted = min(bu.lifetime, cap)
            expires = now + granted * LIFETIME_UNIT_S * SECOND_NS
            self.bindings[home] = Binding(home, careof, seq, expires, mechanism, granted)
            self._expires_at(home, expires)
            if binding is None:
                kind = BindingCreated
            else:
                kind = BindingUpdated if binding.careof != careof else BindingRefreshed
            changed = _new(kind)
            changed.__init__(now, node, home=home_text, careof=careof_text, seq=seq, mechanism=mechanism,
                             lifetime=granted)
            out.append(changed)
        # 6. acknowledge (``_ba``, inline: the per-BU path)
        if bu.ack or (self._weak and "ack_optional" in self._weaken):
            if self._weak and "ba_auth" in self._weaken:
                mh = encode(BindingAck(_ACCEPTED, seq, granted))
            else:
                mh = seal_ba(_ACCEPTED, seq, granted, kbm, careof, self.address)
            src = packet.src
            out.append(Send(mh_packet(self.address, home, mh) if src == home else mh_packet(self.address, src, mh, home),
                            "BA"))
            sent = _new(BaSent)
            sent.__init__(now, node, home=home_text, careof=careof_text, status=_ACCEPTED, seq=seq,
                          authenticated=not (self._weak and "ba_auth" in self._weaken))
            out.append(sent)
        if persist is not None:
            # TEST ONLY: with store_ack weakened a failed write stops nothing
            persist.guards = 0 if self._weak and "store_ack" in self._weaken else len(out) - guarded
            out.insert(guarded, persist)
        return out

    # ------------------------------------------------------------------ test-only weakenings

    def _weakened_header_len(self, packet: Packet, error: CodecError, now: int) -> list[Action]:
        """``hdrlen``: a Mobility Header the codec refused, read again with its length taken
        from the IPv6 payload instead of its Header Len field. Its checksum and authenticator
        are then checked over the octets as received, as a receiver that ignores Header Len
        would check them; only a BU goes on (to ``_on_bu``)."""
        data = bytearray(packet.payload)
        if len(data) < 8 or len(data) % 8:
            return [Drop(now, self.node, reason=f"malformed Mobility Header: {error}", src=addr(packet.src))]
        data[1] = len(data) // 8 - 1
        try:
            msg = decode(bytes(data))
        except CodecError as exc:
            return [Drop(now, self.node, reason=f"malformed Mobility Header: {exc}", src=addr(packet.src))]
        if type(msg) is not BindingUpdate:
            return [Drop(now, self.node, reason=f"malformed Mobility Header: {error}", src=addr(packet.src))]
        if mh_checksum(packet.mh_source, packet.final_destination, packet.payload) != 0:
            return [Drop(now, self.node, reason="bad Mobility Header checksum", src=addr(packet.src))]
        return self._on_bu(packet, replace(msg, raw=bytes(packet.payload)), now)

    def _weakened_layout(self, problem: str) -> str | None:
        if problem.startswith("duplicate") and "duplicates" in self._weaken:
            return None
        if ("is not the last option" in problem or "padding follows" in problem) and "bad_last" in self._weaken:
            return None
        return problem

    def _auth_weakened(self, bu: BindingUpdate, kbm: bytes, careof: bytes) -> bool:
        if "auth" in self._weaken:
            return True
        if "bad_last" in self._weaken:  # a BAD anywhere, over the octets before its authenticator
            raw = bytearray(bu.raw)
            raw[4:6] = b"\0\0"
            pos = 12
            while pos + 1 < len(raw):
                if raw[pos] == 0:
                    pos += 1
                    continue
                if raw[pos] == 5 and raw[pos + 1] == 12:
                    at = pos + 2
                    got = bytes(raw[at:at + 12])
                    return binding_authenticator(kbm, careof, self.address, bytes(raw[:at])) == got
                pos += 2 + raw[pos + 1]
        return "bad_required" in self._weaken and not any(type(o) is BindingAuthData for o in bu.options)

    def _seq_ok(self, new: int, last: int) -> bool:
        if "sequence" in self._weaken:
            return True
        if "wrap" in self._weaken:
            return new > last
        return seq_greater(new, last)

    def _weakened_cap(self, cap: int, precomputed: bool) -> int:
        if precomputed and "precomputed_lifetime" in self._weaken:
            return min(cap, RR_MAX_LIFETIME_UNITS)
        if not precomputed and "rr_lifetime" in self._weaken:
            return MAX_LIFETIME_UNITS
        return cap

    def _key_used_up(self, home: bytes, peer: _PrecomputedPeer, seq: int, state: SeqState, now: int, *,
                     step: int = 0, crossing: bool = False) -> list[Action]:
        """R13: the key may not move the sequence number further. The BU is dropped (no BA: the
        key is not used any more); a BU that would have crossed the bound (``crossing``) marks
        the key used up in the store, so it stays so across restarts."""
        out: list[Action] = []
        if crossing:
            self._seq[peer.store_key] = SeqState(state.last, KBM_MAX_ADVANCE, state.mark)
            out.append(Persist(peer.store_key, SeqRecord(state.mark, KBM_MAX_ADVANCE), undo=("used up", peer.store_key, state, home, seq)))
        out.append(RekeyRequired(now, self.node, home=addr(home), key_id=peer.data.key_id, advance=state.advance,
                                 step=step, reason="the key's sequence number advance would pass 2^15 (R13)"))
        out.append(Drop(now, self.node, reason="Kbm sequence space used up (R13): a new Kcn is required",
                        home=addr(home), seq=seq))
        return out

    def _ba(self, packet: Packet, home: bytes, careof: bytes, status: int, seq: int,
            lifetime: int, kbm: bytes | None, now: int) -> list[Action]:
        if self._weak:
            if status >= 128 and "ack_on_reject" in self._weaken and not packet_ack(packet):
                return [BaNotSent(now, self.node, status=int(status), reason="weakened: ack_on_reject")]
            if "ba_auth" in self._weaken:
                kbm = None
        if kbm is not None:
            mh = seal_ba(status, seq, lifetime, kbm, careof, self.address)
        else:
            mh = encode(BindingAck(status, seq, lifetime))
        return self._ba_actions(packet, home, careof, mh, status=status, seq=seq, authenticated=kbm is not None, now=now)

    # ------------------------------------------------------------------ Binding Errors

    def _binding_error(self, packet: Packet, status: int, now: int) -> list[Action]:
        """RFC 6275 9.3.3: to the packet's source only if it is unicast; the Home Address field
        from the Home Address option, else the unspecified address; rate-limited."""
        home = packet.home_address if packet.home_address is not None else bytes(16)
        status, home_text, to = int(status), addr(home), addr(packet.src)
        if not is_unicast(packet.src):
            return [ErrorNotSent(now, self.node, what="BE", reason="source is not a unicast address",
                                 status=status, home=home_text, to=to)]
        if not self._be_limit.take(now):
            return [ErrorNotSent(now, self.node, what="BE", reason="rate limit (RFC 6275 9.3.3)",
                                 status=status, home=home_text, to=to)]
        mh = encode(BindingError(status, home))
        return [
            Send(build_packet(self.address, packet.src, IPPROTO_MH, mh), "BE"),
            BeSent(now, self.node, status=status, home=home_text, to=to),
        ]
