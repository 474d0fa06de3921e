"""Home agent engine: home registration (RFC 6275 10.3) authenticated per RFC 4285, and the
forwarding decisions of the home agent's user-space data plane.

Home registration BUs carry the RFC 4285 Mobility Message Replay Protection option and end
with the MN-HA Mobility Message Authentication option. The home agent checks, in order:
the option layout, the MN-HA authenticator (BA 146, unauthenticated, when it fails or no key
is configured for the home address), the replay-protection timestamp (BA 145 without it, BA
144 with our last accepted timestamp when it is not newer), the home address against the
home prefix (BA 132), the sequence number (BA 135), then registers and answers with an
authenticated BA echoing the timestamp. Every rejection leaves a ``bu_rejected`` event; every
BA after the authenticator check (132, 135, 144, 145, 0) is itself authenticated, and all but
145 echo a timestamp, so an RFC 4285 mobile node can believe them. A packet with an
unrecognised option that must not be skipped is discarded first (``testbed.mip6.icmp``).

Data plane decisions (``receive`` of any packet the home agent sees):
- a packet for a registered home address is tunnelled (IPv6-in-IPv6) to the care-of address
  (HoT messages included);
- a reverse-tunnelled packet (outer destination = the home agent) is forwarded only when its
  outer source is the care-of address registered for its inner source (HoTI included).

The last accepted sequence number of each home address is kept in memory, from the records
the agent read at start-up (``records``), and made durable with a ``Persist`` in front of
the BA that accepts it (``persistence``: every number, or a reserve, as at the CN; after a
restart under a reserve the HA refuses numbers up to the mark with an authenticated BA 135).

Timestamps are compared as strictly increasing 64-bit values per mobile node (the MN uses
monotonic nanoseconds, never going back); a time window against the HA's clock (RFC 4285's
other option) would need a wall clock, which a sans-I/O engine does not read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from testbed.mip6.actions import Action, Persist, Send
from testbed.mip6.bindingcache import BindingCache
from testbed.mip6.constants import (
    IPPROTO_IPV6,
    IPPROTO_MH,
    LIFETIME_UNIT_S,
    MN_HA_AUTH_SUBTYPE,
    SECOND_NS,
    BAStatus,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.events import (
    BuReceived,
    BuRejected,
    Drop,
    HomeBindingCreated,
    HomeBindingDeleted,
    HomeBindingExpired,
    HomeBindingRefreshed,
    HomeBindingUpdated,
    HotiForwarded,
    HotTunnelled,
    ReverseTunnelled,
    StoreFailed,
    TunnelledToCareof,
    addr,
)
from testbed.mip6.icmp import UnrecognisedOptions
from testbed.mip6.messages import (
    BindingAck,
    BindingUpdate,
    HomeTestInit,
    decode,
    encode,
)
from testbed.mip6.mnha import MnHaSecurityAssociation
from testbed.mip6.options import AlternateCoA, MobilityMessageAuth, ReplayProtection
from testbed.mip6.packet import Packet, build_packet, mh_checksum_ok, parse_packet
from testbed.mip6.sealing import (
    last_option,
    mn_ha_valid,
    option_layout_error,
    seal_home_ba,
    seal_mn_ha,
)
from testbed.mip6.ratelimit import TokenBucket
from testbed.mip6.persistence import (
    STRICT,
    Persistence,
    RecordUnreadable,
    SeqRecord,
    SeqState,
    advance_to,
    state_from,
)
from testbed.mip6.seqno import seq_greater, seq_step
from testbed.mip6.weakening import check_names


@dataclass(slots=True)
class HomeBinding:
    home: bytes
    careof: bytes
    seq: int
    expires_ns: int
    lifetime_units: int


def record_key(home: bytes) -> str:
    """The key of a home address's sequence record at the home agent (32 hex digits: never
    mistaken for key material by ``check_key``)."""
    return f"ha/{home.hex()}"


class HomeAgent(BindingCache, UnrecognisedOptions):
    """``records``: the sequence records the agent read from its store (key -> ``SeqRecord``
    or ``RecordUnreadable``; ``record_key`` names a home address's). ``persistence``: strict,
    or a reserve."""

    EXPIRED_EVENT = HomeBindingExpired

    def __init__(
        self,
        address: bytes,
        home_prefix: ipaddress.IPv6Network,
        *,
        keys: Mapping[bytes, MnHaSecurityAssociation],
        records: Mapping[str, SeqRecord | RecordUnreadable] | None = None,
        persistence: Persistence = STRICT,
        node: str = "ha",
        max_lifetime_units: int = 0xFFFF,
        weaken: frozenset[str] = frozenset(),
    ) -> None:
        self.address = address
        # TEST ONLY (testbed/mip6/weakening.py): defences turned off to show the checks can fail.
        # Empty in every real configuration; the per-packet path tests one boolean.
        self._weaken = check_names("ha", weaken, "HomeAgent") if weaken else frozenset()
        self._weak = bool(self._weaken)
        self.home_prefix = home_prefix
        self.node = node
        self.persistence = persistence
        self.max_lifetime_units = max_lifetime_units
        self.bindings: dict[bytes, HomeBinding] = {}
        self._keys = dict(keys)
        self._records = records if records is not None else {}
        self._seq: dict[str, SeqState | RecordUnreadable] = {}
        self._timestamps: dict[bytes, int] = {}
        self._icmp_limit = TokenBucket()

    def __repr__(self) -> str:
        return f"<HomeAgent {addr(self.address)} {self.home_prefix} {len(self._keys)} MN-HA keys, {len(self.bindings)} bindings>"

    def set_keys(self, keys: Mapping[bytes, MnHaSecurityAssociation]) -> None:
        self._keys = dict(keys)

    def sequence_state(self, home: bytes) -> SeqState | RecordUnreadable | None:
        """What the engine holds for a home address's sequence number (None: nothing yet)."""
        key = record_key(home)
        state = self._seq.get(key)
        if state is None:
            found = self._records.get(key)
            if found is not None:
                state = found if type(found) is RecordUnreadable else state_from(found)
        return state

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: int) -> list[Action]:
        try:
            packet = parse_packet(data)
        except CodecError as exc:
            return [Drop(now, self.node, reason=f"malformed packet: {exc}")]
        if packet.dst == self.address:
            if packet.unknown_option is not None:
                return self._unrecognised_option(packet, data, now)
            if packet.next_header == IPPROTO_MH:
                return self._on_mh(packet, now)
            if packet.next_header == IPPROTO_IPV6:
                return self._on_reverse_tunnel(packet, now)
            return []
        binding = self.bindings.get(packet.dst)
        if binding is not None:
            if self._weak and "ha_tunnel" in self._weaken:
                return [Drop(now, self.node, reason="weakened: not tunnelled", dst=addr(packet.dst))]
            return self._tunnel_to_careof(data, packet, binding, now)
        if ipaddress.IPv6Address(packet.dst) in self.home_prefix:
            return [Drop(now, self.node, reason="no binding for home address", dst=addr(packet.dst))]
        return [Drop(now, self.node, reason="not for the home agent", dst=addr(packet.dst))]

    def persist_failed(self, persist: Persist, reason: str, now: int) -> list[Action]:
        """The agent could not make ``persist`` durable (and sent nothing it guarded): the
        binding and the number go back to what they were, and the registration is dropped."""
        key, old_state, home, old_binding, seq = persist.undo
        self._undo_registration(key, old_state, home, old_binding)
        return [
            StoreFailed(now, self.node, home=addr(home), seq=seq, reason=reason),
            Drop(now, self.node, reason="home registration dropped: its sequence number could not be made durable",
                 home=addr(home), seq=seq),
        ]

    # ------------------------------------------------------------------ data plane

    def _tunnel_to_careof(self, data: bytes, packet: Packet, binding: HomeBinding, now: int) -> list[Action]:
        kind, what = TunnelledToCareof, "tunnelled_to_careof"
        if packet.next_header == IPPROTO_MH and len(packet.payload) > 2 and packet.payload[2] == 3:
            kind, what = HotTunnelled, "hot_tunnelled"
        return [
            Send(build_packet(self.address, binding.careof, IPPROTO_IPV6, bytes(data)), what),
            kind(now, self.node, home=addr(packet.dst), careof=addr(binding.careof), src=addr(packet.src)),
        ]

    def _on_reverse_tunnel(self, outer: Packet, now: int) -> list[Action]:
        try:
            inner = parse_packet(outer.payload)
        except CodecError as exc:
            return [Drop(now, self.node, reason=f"malformed reverse-tunnelled packet: {exc}", src=addr(outer.src))]
        binding = self.bindings.get(inner.src)
        if binding is None:
            return [Drop(now, self.node, reason="reverse-tunnelled packet from an unregistered home address",
                         home=addr(inner.src), outer_src=addr(outer.src))]
        if binding.careof != outer.src and not (self._weak and "ha_reverse_tunnel" in self._weaken):
            return [Drop(now, self.node, reason="reverse-tunnelled packet whose outer source is not the registered "
                         "care-of address", home=addr(inner.src), outer_src=addr(outer.src), careof=addr(binding.careof))]
        kind, what = ReverseTunnelled, "reverse_tunnelled"
        if inner.next_header == IPPROTO_MH:
            try:
                if type(decode(inner.payload)) is HomeTestInit:
                    kind, what = HotiForwarded, "hoti_forwarded"
            except CodecError as exc:
                return [Drop(now, self.node, reason=f"malformed reverse-tunnelled Mobility Header: {exc}",
                             home=addr(inner.src))]
        return [
            Send(outer.payload, what),
            kind(now, self.node, home=addr(inner.src), dst=addr(inner.dst), careof=addr(outer.src)),
        ]

    # ------------------------------------------------------------------ home registration

    def _on_mh(self, packet: Packet, now: int) -> list[Action]:
        try:
            msg = decode(packet.payload)
        except CodecError as exc:
            return [Drop(now, self.node, reason=f"malformed Mobility Header: {exc}", src=addr(packet.src))]
        if not mh_checksum_ok(packet):  # over the Mobility Header that Header Len delimits
            return [Drop(now, self.node, reason="bad Mobility Header checksum", src=addr(packet.src))]
        if type(msg) is not BindingUpdate:
            return [Drop(now, self.node, reason=f"unexpected {type(msg).__name__} at the home agent", src=addr(packet.src))]
        return self._on_bu(packet, msg, now)

    def _on_bu(self, packet: Packet, bu: BindingUpdate, now: int) -> list[Action]:
        node = self.node
        home = packet.mh_source
        careof = packet.src
        for opt in bu.options:
            if type(opt) is AlternateCoA:
                careof = opt.address
        home_text, seq = addr(home), bu.seq
        out: list[Action] = [BuReceived(now, node, home=home_text, careof=addr(careof), seq=seq, lifetime=bu.lifetime,
                                        home_reg=bu.home)]
        problem = option_layout_error(bu)
        if problem is not None:
            out.append(Drop(now, node, reason=f"BU dropped: {problem}", home=home_text, seq=seq))
            return out
        if not bu.home:
            out.append(Drop(now, node, reason="BU without H flag: this home agent is not a correspondent", home=home_text))
            return out
        key = self._keys.get(home)
        auth = last_option(bu, MobilityMessageAuth)
        if (
            key is None or auth is None or auth.subtype != MN_HA_AUTH_SUBTYPE or auth.spi != key.spi
            or not mn_ha_valid(bu, key.key, careof, home)
        ) and not (self._weak and key is not None and "ha_auth" in self._weaken):
            reason = "no MN-HA key for this home address" if key is None else "MN-HA authentication failed"
            out.append(BuRejected(now, node, home=home_text, seq=seq, reason=reason, status=int(BAStatus.MIPV6_AUTH_FAIL)))
            return out + self._ba(packet, home, careof, BAStatus.MIPV6_AUTH_FAIL, seq, 0, None, None, now)
        replay = next((o for o in bu.options if type(o) is ReplayProtection), None)
        if replay is None and self._weak and "ha_replay_option" in self._weaken:
            # processed as if it carried a fresh timestamp (one after the last accepted)
            replay = ReplayProtection(self._timestamps.get(home, 0) + 1)
        if replay is None:
            out.append(BuRejected(now, node, home=home_text, seq=seq, reason="no replay protection option",
                                  status=int(BAStatus.MIPV6_MESG_ID_REQD)))
            return out + self._ba(packet, home, careof, BAStatus.MIPV6_MESG_ID_REQD, seq, 0, key, None, now)
        last_ts = self._timestamps.get(home)
        if last_ts is not None and replay.timestamp <= last_ts \
                and not (self._weak and "ha_timestamp" in self._weaken):
            out.append(BuRejected(now, node, home=home_text, seq=seq, reason="replayed timestamp",
                                  status=int(BAStatus.MIPV6_ID_MISMATCH)))
            return out + self._ba(packet, home, careof, BAStatus.MIPV6_ID_MISMATCH, seq, 0, key, last_ts, now)
        self._timestamps[home] = replay.timestamp  # authentic and fresh: a replay of it is refused, whatever follows
        if ipaddress.IPv6Address(home) not in self.home_prefix \
                and not (self._weak and "ha_home_prefix" in self._weaken):
            out.append(BuRejected(now, node, home=home_text, seq=seq, status=int(BAStatus.NOT_HOME_SUBNET),
                                  reason=f"home address outside the home prefix {self.home_prefix}"))
            return out + self._ba(packet, home, careof, BAStatus.NOT_HOME_SUBNET, seq, 0, key, replay.timestamp, now)
        store_key = record_key(home)
        state = self.sequence_state(home)
        if type(state) is RecordUnreadable:
            out.append(StoreFailed(now, node, home=home_text, seq=seq, reason=state.reason))
            out.append(Drop(now, node, reason="home registration dropped: its sequence record cannot be read",
                            home=home_text, seq=seq))
            return out
        if state is not None and not seq_greater(seq, state.last) \
                and not (self._weak and "ha_sequence" in self._weaken):
            out.append(BuRejected(now, node, home=home_text, seq=seq, last_seq=state.last,
                                  reason="sequence number not greater", status=int(BAStatus.SEQUENCE_OUT_OF_WINDOW)))
            return out + self._ba(packet, home, careof, BAStatus.SEQUENCE_OUT_OF_WINDOW, state.last, 0, key,
                                  replay.timestamp, now)
        advance = 1 if state is None else state.advance + seq_step(seq, state.last)
        new_state, record = advance_to(state, seq, advance, self.persistence)
        self._seq[store_key] = new_state
        guarded = len(out)
        old = self.bindings.get(home)
        if bu.lifetime == 0 or careof == home:
            granted = 0
            if self._weak and "ha_dereg" in self._weaken:
                pass  # the binding stays
            elif self.bindings.pop(home, None) is not None:
                out.append(HomeBindingDeleted(now, node, home=home_text, seq=seq))
        else:
            granted = min(bu.lifetime, self.max_lifetime_units)
            expires = now + granted * LIFETIME_UNIT_S * SECOND_NS
            self.bindings[home] = HomeBinding(home, careof, seq, expires, granted)
            self._expires_at(home, expires)
            kind = HomeBindingCreated if old is None else (HomeBindingUpdated if old.careof != careof else HomeBindingRefreshed)
            out.append(kind(now, node, home=home_text, careof=addr(careof), seq=seq, lifetime=granted))
        out += self._ba(packet, home, careof, BAStatus.ACCEPTED, seq, granted, key, replay.timestamp, now)
        if record is not None:
            out.insert(guarded, Persist(store_key, record, len(out) - guarded, undo=(store_key, state, home, old, seq)))
        return out

    def _ba(self, packet: Packet, home: bytes, careof: bytes, status: int, seq: int, lifetime: int,
            key: MnHaSecurityAssociation | None, timestamp: int | None, now: int) -> list[Action]:
        if self._weak and "ha_ba_auth" in self._weaken:
            key = None
        if key is not None and timestamp is not None:  # every authenticated BA (``seal_home_ba``: quicker)
            mh = seal_home_ba(int(status), seq, lifetime, timestamp, key.spi, key.key, careof, home)
        else:
            options = (ReplayProtection(timestamp),) if timestamp is not None else ()
            msg = BindingAck(status, seq, lifetime, options=options)
            mh = seal_mn_ha(msg, key.spi, key.key, careof, home) if key is not None else encode(msg)
        return self._ba_actions(packet, home, careof, mh, status=status, seq=seq, authenticated=key is not None,
                                now=now, what="BA home")
