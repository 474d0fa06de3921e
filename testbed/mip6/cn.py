"""Correspondent node engine: return routability (RFC 6275) and precomputed Kbm (RFC 4449).

Sans-I/O: ``receive(packet, now)`` and ``handle_timer(now)`` return actions (``Send`` whole
IPv6 packets, ``Event`` log lines). Binding Updates are processed exactly in the order of
docs/protocol.md section 4:

1. parse (malformed, duplicate options, anything after BAD: silent drop);
2. H flag (home registration sent to a CN): Nonce Indices present: drop; binding: BA 139;
   else BA 131;
3. a peer with preconfigured data (keyed by home address) is checked with the precomputed
   Kbm, Nonce Indices ignored (R5, R6); other peers by return routability;
4. sequence number against the last accepted, modulo 2^16; for precomputed peers always,
   against the stored value (R4, R14), else BA 135 carrying the last accepted number;
   a precomputed key's total advance is bounded by 2^15 (R13): a BU that would carry it
   further ends the key's use (``rekey_required``, the BU dropped, every later one too);
5. the new number is made durable before anything is sent, then the binding changes (a
   store that cannot make it durable: the BU is dropped with a ``store_failed`` event);
6. a BA when A is set and always on rejection, with BAD (R7) except for statuses 136-138.

Before any of this, a packet with an unrecognised option that must not be skipped is
discarded (``testbed.mip6.icmp``). Binding Errors go only to unicast sources, carry the Home
Address option's address or the unspecified address, and are rate-limited like ICMPv6
errors (RFC 6275 9.3.3).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

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
from testbed.mip6.events import Action, Send, addr
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
from testbed.mip6.packet import Packet, build_packet, mh_checksum_ok, parse_packet
from testbed.mip6.sealing import bad_valid, option_layout_error, seal_bad
from testbed.mip6.ratelimit import TokenBucket
from testbed.mip6.seqno import KBM_MAX_ADVANCE, SEQ_MAX, seq_greater
from testbed.mip6.seqstore import MemorySequenceStore, SeqRecord, SequenceStore, SequenceStoreError
from testbed.mip6.weakening import check_names

RR_MAX_LIFETIME_UNITS = MAX_RR_BINDING_LIFETIME_S // LIFETIME_UNIT_S  # 105


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


class _PrecomputedPeer:
    """One MN configured with preconfigured data: its home token is fixed, Kbm cached per CoA."""

    __slots__ = ("data", "home", "home_token", "store_key", "_kbm", "_dereg_kbm")

    def __repr__(self) -> str:  # the tokens and keys it holds never show
        return f"<precomputed peer {self.data.home_address} key {self.data.key_id}>"

    def __init__(self, data: PreconfiguredData) -> None:
        self.data = data
        self.home = data.home_address.packed
        self.home_token = home_keygen_token(data.kcn, self.home, data.home_nonce)
        self.store_key = f"cn/{data.home_address.exploded.replace(':', '')}/{data.key_id}"
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
    def __init__(
        self,
        address: bytes,
        *,
        store: SequenceStore,
        peers: Iterable[PreconfiguredData] = (),
        node: str = "cn",
        rng: Callable[[int], bytes] = os.urandom,
        precomputed_max_lifetime_units: int = MAX_LIFETIME_UNITS,
        error_limit: TokenBucket | None = None,
        weaken: frozenset[str] = frozenset(),
    ) -> None:
        self.address = address
        # TEST ONLY (testbed/mip6/weakening.py): defences turned off to show the checks can fail.
        # Empty in every real configuration; the per-packet path tests one boolean.
        self._weaken = check_names("cn", weaken, "CorrespondentNode") if weaken else frozenset()
        self._weak = bool(self._weaken)
        if "persist" in self._weaken:
            store = MemorySequenceStore()
        self.node = node
        self.store = store
        self.bindings: dict[bytes, Binding] = {}
        self.precomputed_max_lifetime_units = precomputed_max_lifetime_units
        self._kcn = rng(KBM_LEN)  # this node's RR key, never leaves the engine
        self._nonces = NonceRing(rng)
        self._peers: dict[bytes, _PrecomputedPeer] = {}
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

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: int) -> list[Action]:
        try:
            packet = parse_packet(data)
        except CodecError as exc:
            return [self._drop(now, f"malformed packet: {exc}")]
        if packet.final_destination != self.address:
            return [self._drop(now, "not addressed to this node", dst=addr(packet.final_destination))]
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
            return [self._drop(now, f"malformed Mobility Header: {exc}", src=addr(packet.src))]
        if not mh_checksum_ok(packet) and not (self._weak and "checksum" in self._weaken):
            return [self._drop(now, "bad Mobility Header checksum", src=addr(packet.src))]
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
        return [self._drop(now, f"unexpected {kind.__name__} at a correspondent node", src=addr(packet.src))]

    # ------------------------------------------------------------------ return routability tests

    def _on_hoti(self, packet: Packet, msg: HomeTestInit, now: int) -> list[Action]:
        home = packet.src
        if packet.home_address is not None:
            return [self._drop(now, "HoTI with a Home Address option", src=addr(home))]
        if self._weak and "rr" in self._weaken:
            return [self._drop(now, "weakened: return routability not served", home=addr(home))]
        if home in self._peers and not (self._weak and "rr_for_precomputed" in self._weaken):  # R15
            return [self._drop(now, "HoTI from a peer configured for precomputed Kbm (R15)", home=addr(home))]
        index, nonce = self._nonces.current(now)
        token = home_keygen_token(self._kcn, home, nonce)
        mh = encode(HomeTest(index, msg.cookie, token))
        return [
            self._event(now, "hoti_received", home=addr(home)),
            Send(build_packet(self.address, home, IPPROTO_MH, mh), "HoT"),
            self._event(now, "hot_sent", home=addr(home), nonce_index=index),
        ]

    def _on_coti(self, packet: Packet, msg: CareofTestInit, now: int) -> list[Action]:
        careof = packet.src
        if packet.home_address is not None:
            return [self._drop(now, "CoTI with a Home Address option", src=addr(careof))]
        index, nonce = self._nonces.current(now)
        token = careof_keygen_token(self._kcn, careof, nonce)
        mh = encode(CareofTest(index, msg.cookie, token))
        return [
            self._event(now, "coti_received", careof=addr(careof)),
            Send(build_packet(self.address, careof, IPPROTO_MH, mh), "CoT"),
            self._event(now, "cot_sent", careof=addr(careof), nonce_index=index),
        ]

    # ------------------------------------------------------------------ binding updates

    def _on_bu(self, packet: Packet, bu: BindingUpdate, now: int) -> list[Action]:
        home = packet.mh_source
        careof = packet.src
        nonce_indices = None
        for opt in bu.options:
            kind = type(opt)
            if kind is AlternateCoA:
                careof = opt.address
            elif kind is NonceIndices:
                nonce_indices = opt
        deregistering = bu.lifetime == 0 or careof == home
        out: list[Action] = [
            self._event(
                now, "bu_received", home=addr(home), careof=addr(careof), seq=bu.seq,
                lifetime=bu.lifetime, ack=bu.ack, home_reg=bu.home,
            )
        ]
        # 1. layout rules
        problem = option_layout_error(bu)
        if problem is not None and self._weak:
            problem = self._weakened_layout(problem)
        if problem is not None:
            out.append(self._drop(now, f"BU dropped: {problem}", home=addr(home), seq=bu.seq))
            return out
        peer = self._peers.get(home)
        # 2. home registration sent to a correspondent node
        if bu.home and not (self._weak and "home_reg" in self._weaken):
            if nonce_indices is not None:
                out.append(self._drop(now, "BU with H flag and Nonce Indices", home=addr(home), seq=bu.seq))
                return out
            status = BAStatus.REGISTRATION_TYPE_CHANGE_DISALLOWED if home in self.bindings else BAStatus.HOME_REGISTRATION_NOT_SUPPORTED
            kbm = peer.kbm(careof, deregistering) if peer is not None else None
            out += self._ba(packet, home, careof, status, bu.seq, 0, kbm, now)
            return out
        # 3. authorisation
        if peer is not None:
            if not any(type(o) is BindingAuthData for o in bu.options) \
                    and not (self._weak and "bad_required" in self._weaken):
                out.append(self._drop(now, "BU from a precomputed peer without Binding Authorization Data (R5)", home=addr(home), seq=bu.seq))
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
                out.append(self._drop(now, "return-routability BU without Nonce Indices", home=addr(home), seq=bu.seq))
                return out
            if not any(type(o) is BindingAuthData for o in bu.options):
                out.append(self._drop(now, "BU without Binding Authorization Data", home=addr(home), seq=bu.seq))
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
                out += self._ba(packet, home, careof, status, bu.seq, 0, None, now)
                return out
            home_token = home_keygen_token(self._kcn, home, home_nonce)
            careof_token = None if deregistering else careof_keygen_token(self._kcn, careof, careof_nonce)
            kbm = binding_management_key(home_token, careof_token)
            mechanism = "rr"
        if not bad_valid(bu, kbm, careof, self.address) and not (self._weak and self._auth_weakened(bu, kbm, careof)):
            out.append(self._drop(now, f"BU authenticator mismatch ({mechanism})", home=addr(home), seq=bu.seq))
            return out
        # 4. sequence number
        binding = self.bindings.get(home)
        record = None
        if peer is not None:
            try:
                record = self.store.get(peer.store_key)
            except SequenceStoreError as exc:
                out.append(self._event(now, "store_failed", home=addr(home), seq=bu.seq, reason=str(exc)))
                out.append(self._drop(now, "BU dropped: its peer's sequence record cannot be read", home=addr(home), seq=bu.seq))
                return out
            if record is not None and record.advance >= KBM_MAX_ADVANCE and not (self._weak and "r13" in self._weaken):
                return out + self._key_used_up(home, peer, bu.seq, record.advance, now)
            last = record.last if record is not None else None
        else:
            last = binding.seq if binding is not None else None
        if last is not None and not (seq_greater(bu.seq, last) if not self._weak else self._seq_ok(bu.seq, last)):
            out.append(self._event(now, "bu_rejected", home=addr(home), seq=bu.seq, last_seq=last, reason="sequence number not greater (R4/R14)"))
            out += self._ba(packet, home, careof, BAStatus.SEQUENCE_OUT_OF_WINDOW, last, 0, kbm, now)
            return out
        # 5. persist, then change the binding
        if peer is not None:
            # R13: the first number accepted under a key counts one step, every later one its
            # distance from the last; a BU that would carry the total past 2^15 ends the key.
            if record is None:
                advance = 1
            else:
                step = (bu.seq - record.last) & SEQ_MAX  # seqno.seq_step, inline: the per-BU path
                if record.advance + step > KBM_MAX_ADVANCE and not (self._weak and "r13" in self._weaken):
                    return out + self._key_used_up(home, peer, bu.seq, record.advance, now, record=record, step=step)
                advance = record.advance + step
            try:
                self.store.put(peer.store_key, SeqRecord(bu.seq, advance))
            except SequenceStoreError as exc:
                out.append(self._event(now, "store_failed", home=addr(home), seq=bu.seq, reason=str(exc)))
                if not (self._weak and "store_ack" in self._weaken):
                    out.append(self._drop(now, "BU dropped: its sequence number could not be made durable (R4)", home=addr(home), seq=bu.seq))
                    return out
            if advance >= KBM_MAX_ADVANCE:
                out.append(self._event(now, "rekey_required", home=addr(home), key_id=peer.data.key_id, advance=advance,
                                       reason="this BU used the last of the key's sequence space (R13)"))
        if deregistering:
            granted = 0
            if binding is not None and not (self._weak and "dereg" in self._weaken):
                del self.bindings[home]
                out.append(self._event(now, "binding_deleted", home=addr(home), seq=bu.seq, mechanism=mechanism))
        else:
            cap = self.precomputed_max_lifetime_units if peer is not None else RR_MAX_LIFETIME_UNITS
            if self._weak:
                cap = self._weakened_cap(cap, peer is not None)
            granted = min(bu.lifetime, cap)
            expires = now + granted * LIFETIME_UNIT_S * SECOND_NS
            if binding is None:
                self.bindings[home] = Binding(home, careof, bu.seq, expires, mechanism, granted)
                self._expires_at(home, expires)
                out.append(self._event(now, "binding_created", home=addr(home), careof=addr(careof), seq=bu.seq, mechanism=mechanism, lifetime=granted))
            else:
                moved = binding.careof != careof
                binding.careof, binding.seq, binding.expires_ns = careof, bu.seq, expires
                self._expires_at(home, expires)
                binding.mechanism, binding.lifetime_units = mechanism, granted
                out.append(self._event(now, "binding_updated" if moved else "binding_refreshed", home=addr(home), careof=addr(careof), seq=bu.seq, mechanism=mechanism, lifetime=granted))
        # 6. acknowledge
        if bu.ack or (self._weak and "ack_optional" in self._weaken):
            out += self._ba(packet, home, careof, BAStatus.ACCEPTED, bu.seq, granted, kbm, now)
        return out

    # ------------------------------------------------------------------ test-only weakenings

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

    def _key_used_up(self, home: bytes, peer: _PrecomputedPeer, seq: int, advance: int, now: int, *,
                     record: SeqRecord | None = None, step: int = 0) -> list[Action]:
        """R13: the key may not move the sequence number further. The BU is dropped (no BA: the
        key is not used any more); a BU that would have crossed the bound marks the key used up
        in the store, so it stays so across restarts."""
        out: list[Action] = []
        if record is not None:
            try:
                self.store.put(peer.store_key, SeqRecord(record.last, KBM_MAX_ADVANCE))
            except SequenceStoreError as exc:
                out.append(self._event(now, "store_failed", home=addr(home), seq=seq, reason=str(exc)))
        out.append(self._event(now, "rekey_required", home=addr(home), key_id=peer.data.key_id, advance=advance,
                               step=step, reason="the key's sequence number advance would pass 2^15 (R13)"))
        out.append(self._drop(now, "Kbm sequence space used up (R13): a new Kcn is required", home=addr(home), seq=seq))
        return out

    def _ba(self, packet: Packet, home: bytes, careof: bytes, status: int, seq: int,
            lifetime: int, kbm: bytes | None, now: int) -> list[Action]:
        if self._weak:
            if status >= 128 and "ack_on_reject" in self._weaken and not packet_ack(packet):
                return [self._event(now, "ba_not_sent", status=int(status), reason="weakened: ack_on_reject")]
            if "ba_auth" in self._weaken:
                kbm = None
        msg = BindingAck(status, seq, lifetime)
        mh = seal_bad(msg, kbm, careof, self.address) if kbm is not None else encode(msg)
        return self._ba_actions(packet, home, careof, mh, status=status, seq=seq, authenticated=kbm is not None, now=now)

    # ------------------------------------------------------------------ Binding Errors

    def _binding_error(self, packet: Packet, status: int, now: int) -> list[Action]:
        """RFC 6275 9.3.3: to the packet's source only if it is unicast; the Home Address field
        from the Home Address option, else the unspecified address; rate-limited."""
        home = packet.home_address if packet.home_address is not None else bytes(16)
        fields = dict(status=int(status), home=addr(home), to=addr(packet.src))
        if not is_unicast(packet.src):
            return [self._event(now, "error_not_sent", what="BE", reason="source is not a unicast address", **fields)]
        if not self._be_limit.take(now):
            return [self._event(now, "error_not_sent", what="BE", reason="rate limit (RFC 6275 9.3.3)", **fields)]
        mh = encode(BindingError(status, home))
        return [
            Send(build_packet(self.address, packet.src, IPPROTO_MH, mh), "BE"),
            self._event(now, "be_sent", **fields),
        ]
