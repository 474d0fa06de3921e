"""Authenticating Mobility Header messages: add and check the authenticator that ends them.

Two kinds end a message with a 12-octet authenticator: the Binding Authorization Data
option (RFC 6275, keyed by Kbm, for correspondent registrations) and the RFC 4285 Mobility
Message Authentication option (keyed by the MN-HA key, for home registrations). Both must be
the last option, with nothing after them; both authenticate the Mobility Header from its
first octet to just before the authenticator, with the checksum field zero.
"""

from __future__ import annotations

import dataclasses
import hmac
import struct

from testbed.mip6.constants import AUTHENTICATOR_LEN, MN_HA_AUTH_SUBTYPE
from testbed.mip6.crypto import (
    authenticated_part,
    binding_authenticator,
    constant_time_equal,
    mn_ha_authenticator,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.messages import BindingAck, BindingUpdate, Message, encode
from testbed.mip6.options import BindingAuthData, MobilityMessageAuth, ReplayProtection, UnknownOption

_PLACEHOLDER = bytes(AUTHENTICATOR_LEN)


def seal_bad(msg: Message, kbm: bytes, careof: bytes, correspondent: bytes) -> bytes:
    """Encode ``msg`` (its options must not hold a BAD) with a BAD option appended and filled."""
    mh = encode(_with_option(msg, BindingAuthData(_PLACEHOLDER)))
    return mh[:-AUTHENTICATOR_LEN] + binding_authenticator(kbm, careof, correspondent, authenticated_part(mh))


# A BA whose only option is a BAD, laid out once by the encoder: its first 12 octets (header,
# status, flags, sequence number, lifetime) change per BA; the padding and the option's type
# and length after them do not.
_BA_TEMPLATE = encode(BindingAck(0, 0, 0, options=(BindingAuthData(_PLACEHOLDER),)))
_BA_FIXED = struct.Struct("!BBBBHBBHH")
_BA_PROTO, _BA_HEADER_LEN, _BA_TYPE = _BA_TEMPLATE[0], _BA_TEMPLATE[1], _BA_TEMPLATE[2]
_BA_MIDDLE = _BA_TEMPLATE[_BA_FIXED.size:-AUTHENTICATOR_LEN]


def seal_ba(status: int, seq: int, lifetime: int, kbm: bytes, careof: bytes, correspondent: bytes) -> bytes:
    """``seal_bad(BindingAck(status, seq, lifetime), kbm, careof, correspondent)``, the same
    octets, without building the message: the correspondent's per-BU path."""
    try:
        head = _BA_FIXED.pack(_BA_PROTO, _BA_HEADER_LEN, _BA_TYPE, 0, 0, status, 0, seq, lifetime) + _BA_MIDDLE
    except struct.error:
        raise CodecError(f"BA status {status!r}, sequence number {seq!r} or lifetime {lifetime!r} out of range") from None
    return head + hmac.digest(kbm, careof + correspondent + head, "sha1")[:AUTHENTICATOR_LEN]


# A home agent's BA: a Replay Protection option and the MN-HA authentication option, laid out
# once by the encoder with marker values, to find where the timestamp and the SPI go.
_TS_MARK, _SPI_MARK = 0x0102030405060708, 0x0A0B0C0D
_HOME_BA_TEMPLATE = encode(BindingAck(0, 0, 0, options=(
    ReplayProtection(_TS_MARK), MobilityMessageAuth(MN_HA_AUTH_SUBTYPE, _SPI_MARK, _PLACEHOLDER))))
_TS_AT = _HOME_BA_TEMPLATE.index(_TS_MARK.to_bytes(8, "big"))
_SPI_AT = _HOME_BA_TEMPLATE.index(_SPI_MARK.to_bytes(4, "big"))
_HOME_BA_A = _HOME_BA_TEMPLATE[_BA_FIXED.size:_TS_AT]
_HOME_BA_B = _HOME_BA_TEMPLATE[_TS_AT + 8:_SPI_AT]
_HOME_BA_C = _HOME_BA_TEMPLATE[_SPI_AT + 4:-AUTHENTICATOR_LEN]
_HOME_BA_PROTO, _HOME_BA_HEADER_LEN = _HOME_BA_TEMPLATE[0], _HOME_BA_TEMPLATE[1]


def seal_home_ba(status: int, seq: int, lifetime: int, timestamp: int, spi: int, key: bytes,
                 careof: bytes, home: bytes) -> bytes:
    """``seal_mn_ha(BindingAck(status, seq, lifetime, options=(ReplayProtection(timestamp),)),
    spi, key, careof, home)``, the same octets without building the message (a property test
    holds them equal): the home agent's per-BU path, where building it took most of the
    engine's time."""
    try:
        head = (_BA_FIXED.pack(_HOME_BA_PROTO, _HOME_BA_HEADER_LEN, _BA_TYPE, 0, 0, status, 0, seq, lifetime)
                + _HOME_BA_A + timestamp.to_bytes(8, "big") + _HOME_BA_B + spi.to_bytes(4, "big") + _HOME_BA_C)
    except (struct.error, OverflowError):
        raise CodecError(f"BA status {status!r}, sequence number {seq!r}, lifetime {lifetime!r}, timestamp "
                         f"or SPI out of range") from None
    return head + mn_ha_authenticator(key, careof, home, head)


# A mobile node's BUs, laid out once: to its home agent (A and H set, Replay Protection, MN-HA
# authentication) and to a precomputed correspondent (A set, the BAD alone). Per BU only the
# sequence number (octets 6-7), the lifetime (10-11), the timestamp and the authenticator change.
_HOME_BU_TEMPLATE = encode(BindingUpdate(0, 0, ack=True, home=True, options=(
    ReplayProtection(_TS_MARK), MobilityMessageAuth(MN_HA_AUTH_SUBTYPE, _SPI_MARK, _PLACEHOLDER))))
_HOME_BU_TS_AT = _HOME_BU_TEMPLATE.index(_TS_MARK.to_bytes(8, "big"))
_HOME_BU_SPI_AT = _HOME_BU_TEMPLATE.index(_SPI_MARK.to_bytes(4, "big"))
_CN_BU_TEMPLATE = encode(BindingUpdate(0, 0, ack=True, options=(BindingAuthData(_PLACEHOLDER),)))
_U16 = struct.Struct("!H")


def seal_home_bu(seq: int, lifetime: int, timestamp: int, spi: int, key: bytes, careof: bytes, home: bytes) -> bytes:
    """``seal_mn_ha(BindingUpdate(seq, lifetime, ack=True, home=True,
    options=(ReplayProtection(timestamp),)), spi, key, careof, home)``, the same octets from a
    template (a property test holds them equal): the mobile node's move path."""
    t = _HOME_BU_TEMPLATE
    try:
        head = (t[:6] + _U16.pack(seq) + t[8:10] + _U16.pack(lifetime) + t[12:_HOME_BU_TS_AT]
                + timestamp.to_bytes(8, "big") + t[_HOME_BU_TS_AT + 8:_HOME_BU_SPI_AT] + spi.to_bytes(4, "big")
                + t[_HOME_BU_SPI_AT + 4:-AUTHENTICATOR_LEN])
    except (struct.error, OverflowError):
        raise CodecError(f"BU sequence number {seq!r}, lifetime {lifetime!r}, timestamp or SPI out of range") from None
    return head + mn_ha_authenticator(key, careof, home, head)


def seal_precomputed_bu(seq: int, lifetime: int, kbm: bytes, careof: bytes, correspondent: bytes) -> bytes:
    """``seal_bad(BindingUpdate(seq, lifetime, ack=True), kbm, careof, correspondent)``, the
    same octets from a template (a property test holds them equal)."""
    t = _CN_BU_TEMPLATE
    try:
        head = t[:6] + _U16.pack(seq) + t[8:10] + _U16.pack(lifetime) + t[12:-AUTHENTICATOR_LEN]
    except struct.error:
        raise CodecError(f"BU sequence number {seq!r} or lifetime {lifetime!r} out of range") from None
    return head + binding_authenticator(kbm, careof, correspondent, head)


def seal_mn_ha(msg: Message, spi: int, key: bytes, careof: bytes, home: bytes) -> bytes:
    """Encode ``msg`` with an RFC 4285 MN-HA authentication option appended and filled."""
    mh = encode(_with_option(msg, MobilityMessageAuth(MN_HA_AUTH_SUBTYPE, spi, _PLACEHOLDER)))
    return mh[:-AUTHENTICATOR_LEN] + mn_ha_authenticator(key, careof, home, authenticated_part(mh))


def _with_option(msg: Message, opt) -> Message:
    return dataclasses.replace(msg, options=(*msg.options, opt))


def option_layout_error(msg: Message) -> str | None:
    """Why ``msg``'s options break RFC 6275's rules, or None: an option type that appears
    twice, and an authenticating option that is not the last thing in the message. Options of
    unknown types are skipped by the receivers (RFC 6275 6.2.1), so two different ones are
    fine; duplicates are told apart by option type, not by the class that holds them."""
    opts = msg.options
    if len(opts) == 1 and type(opts[0]) is BindingAuthData:  # a precomputed BU: the common case
        return "padding follows BindingAuthData" if msg.trailing_pad else None
    seen = set()
    for opt in opts:
        kind = type(opt)
        key = ("unknown", opt.type) if kind is UnknownOption else kind
        if key in seen:
            name = f"option type {opt.type}" if kind is UnknownOption else f"{kind.__name__} option"
            return f"duplicate {name}"
        seen.add(key)
    for kind in (BindingAuthData, MobilityMessageAuth):
        if kind in seen:
            if type(opts[-1]) is not kind:
                return f"{kind.__name__} is not the last option"
            if msg.trailing_pad:
                return f"padding follows {kind.__name__}"
    return None


def last_option(msg: Message, kind):
    """The message's last option if it is of ``kind`` (callers check the layout first)."""
    opts = msg.options
    if opts and type(opts[-1]) is kind:
        return opts[-1]
    return None


def bad_valid(msg: Message, kbm: bytes, careof: bytes, correspondent: bytes) -> bool:
    """True when ``msg`` ends with a BAD whose authenticator matches."""
    opt = last_option(msg, BindingAuthData)
    if opt is None or msg.trailing_pad:
        return False
    want = binding_authenticator(kbm, careof, correspondent, authenticated_part(msg.raw))
    return constant_time_equal(want, opt.authenticator)


def bad_matches(raw: bytes, kbm: bytes, careof: bytes, correspondent: bytes) -> bool:
    """``bad_valid`` for a message already known to end with a BAD and nothing after it
    (``option_layout_error`` passed, a BAD present): its last 12 octets are the authenticator."""
    mh_data = raw[:4] + b"\x00\x00" + raw[6:-AUTHENTICATOR_LEN]
    want = hmac.digest(kbm, careof + correspondent + mh_data, "sha1")[:AUTHENTICATOR_LEN]
    return hmac.compare_digest(want, raw[-AUTHENTICATOR_LEN:])


def mn_ha_valid(msg: Message, key: bytes, careof: bytes, home: bytes) -> bool:
    """True when ``msg`` ends with an MN-HA authentication option whose authenticator matches."""
    opt = last_option(msg, MobilityMessageAuth)
    if opt is None or msg.trailing_pad or len(opt.authenticator) != AUTHENTICATOR_LEN:
        return False
    want = mn_ha_authenticator(key, careof, home, authenticated_part(msg.raw))
    return constant_time_equal(want, opt.authenticator)
