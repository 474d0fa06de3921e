"""Check every Mobility Header packet of a capture: decode, checksum, and the authentication of
BUs and BAs (RFC 4449/6275 Binding Authorization Data, RFC 4285 MN-HA authentication).

Decoding uses our codec (``packet.parse_packet``, ``messages.decode``); the checksum verdict is
``packet.mh_checksum_ok``. The Binding Authorization Data (BAD) verdict of a BU or BA is

- ``valid``: the authenticator matches the Kbm of the preconfigured data for the pair;
- ``invalid``: it does not, or BAD is not the last option, or appears twice;
- ``absent``: the message carries no BAD option;
- ``no-key``: no preconfigured data was given for the (home address, correspondent) pair;
- ``malformed``: the packet could not be decoded (``reason`` says why).

A home registration BU or BA carries the RFC 4285 Mobility Message Authentication option
instead; its verdict (same names; ``auth_option`` says which option was judged) uses the
MN-HA key file of the (home address, home agent) pair: the option must be last and single,
its SPI the file's, and its authenticator HMAC_SHA1(key, care-of address | home address |
MH Data)[:96 bits] (docs/protocol.md section 6).

Other message types have no verdict (None). Key selection and the authenticator inputs
follow RFC 6275 5.2.6 (docs/protocol.md section 2): a BU from home address H (Home Address option,
else the source) to correspondent C (the final destination) uses the pair (H, C) and the
care-of address of the Alternate Care-of Address option, else the packet's source; a BA from
C (source) to H (type 2 routing header, else the destination) uses the pair (H, C) and the
BA's destination as care-of address. Kbm is SHA1(home token) for a de-registration
(lifetime 0 or care-of address equal to the home address). A BA answering a rejected BU
may carry a lifetime that does not tell which Kbm its BU used, so a BA that fails with the
rule's Kbm is also tried with the other one (``kbm`` says which matched).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from testbed.diag.keymaterial import derive
from testbed.mip6 import crypto, messages, packet
from testbed.mip6.constants import (
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_IPV6,
    IPPROTO_MH,
    IPPROTO_ROUTING,
    MN_HA_AUTH_SUBTYPE,
    MHType,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.mnha import MnHaSecurityAssociation
from testbed.mip6.options import AlternateCoA, BindingAuthData, MobilityMessageAuth
from testbed.mip6.sealing import mn_ha_valid

VALID = "valid"
INVALID = "invalid"
ABSENT = "absent"
NO_KEY = "no-key"
MALFORMED = "malformed"
VERDICTS = (VALID, INVALID, ABSENT, NO_KEY, MALFORMED)

MH_TYPE_NAMES = {
    MHType.BRR: "BRR",
    MHType.HOTI: "HoTI",
    MHType.COTI: "CoTI",
    MHType.HOT: "HoT",
    MHType.COT: "CoT",
    MHType.BU: "BU",
    MHType.BA: "BA",
    MHType.BE: "BE",
}
_FROM_MN = (MHType.BU, MHType.HOTI, MHType.COTI)
_MAX_TUNNEL_DEPTH = 4


@dataclass(frozen=True, slots=True)
class MHRecord:
    """One Mobility Header packet of a capture, as reported (JSON: ``as_dict``)."""

    frame: int
    mh_type: str  # "BU", "BA", ..., "type 42", or "?" when the header could not be reached
    src: str | None  # the IPv6 header carrying the Mobility Header
    dst: str | None
    tunnel_src: str | None = None  # the enclosing IPv6-in-IPv6 header, when tunnelled
    tunnel_dst: str | None = None
    home_address: str | None = None
    careof_address: str | None = None
    seq: int | None = None
    lifetime: int | None = None  # units of 4 s
    status: int | None = None  # BA and BE
    checksum: str | None = None  # "ok" / "bad"; None when the packet could not be parsed
    auth: str | None = None  # one of VERDICTS; None for messages that carry no BAD
    reason: str | None = None
    key_file: str | None = None  # the preconfigured data or MN-HA key file used (a path, never key material)
    auth_option: str | None = None  # "binding-auth-data" or "mn-ha": which option ``auth`` judged
    kbm: str | None = None  # "registration" / "de-registration" when a key was used

    @property
    def tunnelled(self) -> bool:
        return self.tunnel_src is not None

    @property
    def failed(self) -> bool:
        """True for the verdicts that make ``testbed verify-pcap`` exit 1."""
        return self.auth in (INVALID, MALFORMED) or self.checksum == "bad"

    def as_dict(self) -> dict:
        out = asdict(self)
        out["tunnelled"] = self.tunnelled
        return out


class KeyRing:
    """Preconfigured data indexed by (home address, correspondent), and MN-HA security
    associations by (home address, home agent)."""

    def __init__(self, items: Iterable[PreconfiguredData] = (), mn_ha: Iterable[MnHaSecurityAssociation] = ()) -> None:
        self._by_pair: dict[tuple[bytes, bytes], PreconfiguredData] = _by_pair(items, "correspondent")
        self._mn_ha: dict[tuple[bytes, bytes], MnHaSecurityAssociation] = _by_pair(mn_ha, "home_agent")

    def get(self, home_address: bytes, correspondent: bytes) -> PreconfiguredData | None:
        return self._by_pair.get((home_address, correspondent))

    def mn_ha_for(self, home_address: bytes, home_agent: bytes) -> MnHaSecurityAssociation | None:
        return self._mn_ha.get((home_address, home_agent))

    def __len__(self) -> int:
        return len(self._by_pair)


def _by_pair(items: Iterable, peer: str) -> dict:
    """Key files indexed by (home address, ``peer`` attribute); two for one pair is an error."""
    out: dict = {}
    for item in items:
        pair = (item.home_address.packed, getattr(item, peer).packed)
        if pair in out:
            raise ValueError(
                f"{out[pair].source} and {item.source} are both for home address "
                f"{item.home_address} and {peer.replace('_', ' ')} {getattr(item, peer)}"
            )
        out[pair] = item
    return out


def _addr(a: bytes | None) -> str | None:
    return None if a is None else str(ipaddress.IPv6Address(a))


def _type_name(mh_type: int) -> str:
    return MH_TYPE_NAMES.get(mh_type, f"type {mh_type}")


def _chain_reaches_mh(data: bytes, depth: int = 0) -> bool:
    """Leniently follow the next-header chain (ignoring declared lengths that overrun):
    does this packet claim to carry a Mobility Header, possibly inside IPv6-in-IPv6?"""
    if len(data) < 40 or data[0] >> 4 != 6 or depth > _MAX_TUNNEL_DEPTH:
        return False
    nh, pos = data[6], 40
    for _ in range(16):
        if nh == IPPROTO_MH:
            return True
        if nh == IPPROTO_IPV6:
            return _chain_reaches_mh(data[pos:], depth + 1)
        if nh not in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT):
            return False
        if pos + 2 > len(data):
            return False
        step = 8 if nh == IPPROTO_FRAGMENT else (data[pos + 1] + 1) * 8
        nh, pos = data[pos], pos + step
    return False


def _home_address(pkt: packet.Packet, msg: messages.Message) -> bytes | None:
    """The mobile node's home address as the packet shows it."""
    mh_type = msg.MH_TYPE if not isinstance(msg, messages.UnknownMessage) else msg.mh_type
    if isinstance(msg, messages.BindingError):
        return msg.home_address
    if pkt.home_address is not None:
        return pkt.home_address
    if pkt.rh2_address is not None:
        return pkt.rh2_address
    if mh_type == MHType.COTI or mh_type == MHType.COT:
        return None  # sent from / to the care-of address only
    return pkt.src if mh_type in _FROM_MN else pkt.dst


def _careof_address(pkt: packet.Packet, msg: messages.Message) -> bytes | None:
    """The care-of address being bound (BU), acknowledged (BA) or tested (CoTI/CoT)."""
    if isinstance(msg, messages.BindingUpdate):
        for opt in msg.options:
            if isinstance(opt, AlternateCoA):
                return opt.address
        return pkt.src  # the HAO packet's source; without HAO the home address itself
    if isinstance(msg, (messages.BindingAck, messages.CareofTest)):
        return pkt.dst
    if isinstance(msg, messages.CareofTestInit):
        return pkt.src
    if pkt.home_address is not None:
        return pkt.src
    if pkt.rh2_address is not None:
        return pkt.dst
    return None


def _bad_verdict(
    pkt: packet.Packet, msg: messages.BindingUpdate | messages.BindingAck, keys: KeyRing
) -> dict:
    bads = [opt for opt in msg.options if isinstance(opt, BindingAuthData)]
    if not bads:
        if any(isinstance(opt, MobilityMessageAuth) for opt in msg.options):
            return _mn_ha_verdict(pkt, msg, keys)
        return {"auth": ABSENT}
    if isinstance(msg, messages.BindingUpdate):
        home, correspondent = pkt.mh_source, pkt.final_destination
    else:
        home, correspondent = pkt.final_destination, pkt.mh_source
    careof = _careof_address(pkt, msg)
    data = keys.get(home, correspondent)
    if data is None:
        return {"auth": NO_KEY, "auth_option": "binding-auth-data", "reason": f"no preconfigured data for home address {_addr(home)}, correspondent {_addr(correspondent)}"}
    found = {"key_file": data.source, "auth_option": "binding-auth-data"}
    if len(bads) > 1:
        return found | {"auth": INVALID, "reason": "more than one Binding Authorization Data option"}
    if not isinstance(msg.options[-1], BindingAuthData) or msg.trailing_pad:
        return found | {"auth": INVALID, "reason": "Binding Authorization Data is not the last option"}
    keys_for_coa = derive(data, careof)
    dereg = msg.lifetime == 0 or careof == home
    tries = [dereg] if isinstance(msg, messages.BindingUpdate) else [dereg, not dereg]
    mh_data = crypto.authenticated_part(msg.raw)
    for use_dereg in tries:
        expected = crypto.binding_authenticator(keys_for_coa.kbm_for(use_dereg), careof, correspondent, mh_data)
        if crypto.constant_time_equal(expected, bads[0].authenticator):
            note = None
            if use_dereg != dereg:
                note = (
                    "authenticated with the registration Kbm (lifetime 0 suggests de-registration)"
                    if dereg
                    else "authenticated with the de-registration Kbm"
                )
            return found | {"auth": VALID, "kbm": "de-registration" if use_dereg else "registration", "reason": note}
    return found | {
        "auth": INVALID,
        "kbm": "de-registration" if dereg else "registration",
        "reason": "authenticator does not match",
    }


def _mn_ha_verdict(pkt: packet.Packet, msg: messages.BindingUpdate | messages.BindingAck, keys: KeyRing) -> dict:
    """RFC 4285 MN-HA authentication of a home registration BU or BA."""
    if isinstance(msg, messages.BindingUpdate):
        home, home_agent = pkt.mh_source, pkt.final_destination
    else:
        home, home_agent = pkt.final_destination, pkt.mh_source
    careof = _careof_address(pkt, msg)
    base = {"auth_option": "mn-ha"}
    sa = keys.mn_ha_for(home, home_agent)
    if sa is None:
        return base | {"auth": NO_KEY, "reason": f"no MN-HA key file for home address {_addr(home)}, home agent {_addr(home_agent)}"}
    base["key_file"] = sa.source
    auths = [opt for opt in msg.options if isinstance(opt, MobilityMessageAuth)]
    if len(auths) > 1:
        return base | {"auth": INVALID, "reason": "more than one Mobility Message Authentication option"}
    if not isinstance(msg.options[-1], MobilityMessageAuth) or msg.trailing_pad:
        return base | {"auth": INVALID, "reason": "Mobility Message Authentication is not the last option"}
    if auths[0].subtype != MN_HA_AUTH_SUBTYPE:
        return base | {"auth": INVALID, "reason": f"authentication subtype {auths[0].subtype}, not MN-HA ({MN_HA_AUTH_SUBTYPE})"}
    if auths[0].spi != sa.spi:
        return base | {"auth": INVALID, "reason": f"Mobility SPI {auths[0].spi}, the key file's is {sa.spi}"}
    if not mn_ha_valid(msg, sa.key, careof, home):
        return base | {"auth": INVALID, "reason": "authenticator does not match"}
    return base | {"auth": VALID}


def inspect_mh(frame: int, pkt: packet.Packet, keys: KeyRing, tunnel: packet.Packet | None = None) -> MHRecord:
    """The record of one parsed packet whose upper layer is a Mobility Header."""
    base = {
        "frame": frame,
        "src": _addr(pkt.src),
        "dst": _addr(pkt.dst),
        "tunnel_src": _addr(tunnel.src) if tunnel else None,
        "tunnel_dst": _addr(tunnel.dst) if tunnel else None,
        "checksum": "ok" if packet.mh_checksum_ok(pkt) else "bad",
    }
    try:
        msg = messages.decode(pkt.payload)
    except CodecError as exc:
        mh_type = _type_name(pkt.payload[2]) if len(pkt.payload) > 2 else "?"
        return MHRecord(
            mh_type=mh_type,
            home_address=_addr(pkt.home_address or pkt.rh2_address),
            auth=MALFORMED,
            reason=str(exc),
            **base,
        )
    fields: dict = {
        "home_address": _addr(_home_address(pkt, msg)),
        "careof_address": _addr(_careof_address(pkt, msg)),
    }
    if isinstance(msg, (messages.BindingUpdate, messages.BindingAck)):
        fields |= {"seq": msg.seq, "lifetime": msg.lifetime}
        fields |= _bad_verdict(pkt, msg, keys)
    if isinstance(msg, (messages.BindingAck, messages.BindingError)):
        fields["status"] = msg.status
    mh_type = msg.mh_type if isinstance(msg, messages.UnknownMessage) else msg.MH_TYPE
    return MHRecord(mh_type=_type_name(mh_type), **base, **fields)


def inspect_ipv6(frame: int, data: bytes, keys: KeyRing, *, truncated_note: str | None = None) -> list[MHRecord]:
    """Records for the Mobility Header packets in one IPv6 packet (none, one, or a tunnelled one)."""
    records: list[MHRecord] = []
    tunnel: packet.Packet | None = None
    for _ in range(_MAX_TUNNEL_DEPTH + 1):
        try:
            pkt = packet.parse_packet(data)
        except CodecError as exc:
            if _chain_reaches_mh(data):
                reason = str(exc) if truncated_note is None else f"{exc} ({truncated_note})"
                records.append(
                    MHRecord(
                        frame=frame,
                        mh_type="?",
                        src=_addr(data[8:24]),
                        dst=_addr(data[24:40]),
                        tunnel_src=_addr(tunnel.src) if tunnel else None,
                        tunnel_dst=_addr(tunnel.dst) if tunnel else None,
                        auth=MALFORMED,
                        reason=reason,
                    )
                )
            return records
        if pkt.next_header == IPPROTO_MH:
            records.append(inspect_mh(frame, pkt, keys, tunnel))
            return records
        if pkt.next_header != IPPROTO_IPV6:
            return records
        tunnel, data = pkt, pkt.payload
    return records


def verify_frames(frames: Iterable, keys: KeyRing) -> Iterator[MHRecord]:
    """Records for every Mobility Header packet of ``frames`` (``capture.Frame`` values)."""
    for frame in frames:
        note = None
        if frame.truncated:
            note = f"frame truncated by the capture: {frame.captured_len} of {frame.wire_len} octets"
        yield from inspect_ipv6(frame.number, frame.ipv6, keys, truncated_note=note)
