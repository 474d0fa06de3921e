"""Mobility Header messages (RFC 6275 6.1): values, encoding and decoding.

``encode(msg)`` returns the Mobility Header with the Checksum field zero; the checksum
depends on the IPv6 addresses and is set by ``testbed.mip6.packet``. ``decode(mh)`` returns
the message with ``raw`` holding the Mobility Header octets exactly as received, which the
authenticators are computed over.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields

from testbed.mip6.constants import (
    ADDRESS_LEN,
    BA_FLAG_K,
    BU_FLAG_A,
    BU_FLAG_H,
    BU_FLAG_K,
    BU_FLAG_L,
    COOKIE_LEN,
    IPPROTO_NONE,
    TOKEN_LEN,
    MHType,
)
from testbed.mip6.errors import CodecError
from testbed.mip6.options import MobilityOption, decode_options, encode_options

_BU = struct.Struct("!HHH")  # sequence, flags, lifetime
_BA = struct.Struct("!BBHH")  # status, flags, sequence, lifetime
_HOT = struct.Struct("!H8s8s")  # nonce index, cookie, token
_BE = struct.Struct("!BB16s")  # status, reserved, home address
_HEAD = struct.Struct("!BBBBH")  # payload proto, header len, MH type, reserved, checksum


@dataclass(frozen=True, slots=True)
class BindingRefreshRequest:
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.BRR


@dataclass(frozen=True, slots=True)
class HomeTestInit:
    cookie: bytes
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.HOTI


@dataclass(frozen=True, slots=True)
class CareofTestInit:
    cookie: bytes
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.COTI


@dataclass(frozen=True, slots=True)
class HomeTest:
    nonce_index: int
    cookie: bytes
    token: bytes = field(repr=False)  # a keygen token: never in a repr
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.HOT


@dataclass(frozen=True, slots=True)
class CareofTest:
    nonce_index: int
    cookie: bytes
    token: bytes = field(repr=False)  # a keygen token: never in a repr
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.COT


@dataclass(frozen=True, slots=True)
class BindingUpdate:
    seq: int
    lifetime: int  # units of 4 seconds
    ack: bool = False  # A
    home: bool = False  # H
    link_local: bool = False  # L
    key_mgmt: bool = False  # K
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.BU


@dataclass(frozen=True, slots=True)
class BindingAck:
    status: int
    seq: int
    lifetime: int  # units of 4 seconds
    key_mgmt: bool = False  # K
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.BA


@dataclass(frozen=True, slots=True)
class BindingError:
    status: int
    home_address: bytes
    options: tuple[MobilityOption, ...] = ()
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    MH_TYPE = MHType.BE


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A Mobility Header of a type we do not know (answered with Binding Error status 2)."""

    mh_type: int
    body: bytes
    raw: bytes = field(default=b"", compare=False, repr=False)
    trailing_pad: int = field(default=0, compare=False, repr=False)
    options: tuple = ()


Message = (
    BindingRefreshRequest
    | HomeTestInit
    | CareofTestInit
    | HomeTest
    | CareofTest
    | BindingUpdate
    | BindingAck
    | BindingError
    | UnknownMessage
)


def _check_len(name: str, value: bytes, want: int) -> None:
    if len(value) != want:
        raise CodecError(f"{name} must be {want} octets, got {len(value)}")


def _u16(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise CodecError(f"{name} {value!r} does not fit 16 bits")


def _u8(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise CodecError(f"{name} {value!r} does not fit 8 bits")


def _fixed_part(msg: Message) -> tuple[int, bytes]:
    cls = type(msg)
    if cls is BindingUpdate:
        _u16("sequence number", msg.seq)
        _u16("lifetime", msg.lifetime)
        flags = (
            (BU_FLAG_A if msg.ack else 0)
            | (BU_FLAG_H if msg.home else 0)
            | (BU_FLAG_L if msg.link_local else 0)
            | (BU_FLAG_K if msg.key_mgmt else 0)
        )
        return MHType.BU, _BU.pack(msg.seq, flags, msg.lifetime)
    if cls is BindingAck:
        _u16("sequence number", msg.seq)
        _u16("lifetime", msg.lifetime)
        _u8("status", msg.status)
        return MHType.BA, _BA.pack(msg.status, BA_FLAG_K if msg.key_mgmt else 0, msg.seq, msg.lifetime)
    if cls is HomeTestInit or cls is CareofTestInit:
        _check_len("cookie", msg.cookie, COOKIE_LEN)
        return msg.MH_TYPE, b"\x00\x00" + msg.cookie
    if cls is HomeTest or cls is CareofTest:
        _u16("nonce index", msg.nonce_index)
        _check_len("cookie", msg.cookie, COOKIE_LEN)
        _check_len("keygen token", msg.token, TOKEN_LEN)
        return msg.MH_TYPE, _HOT.pack(msg.nonce_index, msg.cookie, msg.token)
    if cls is BindingError:
        _check_len("home address", msg.home_address, ADDRESS_LEN)
        _u8("status", msg.status)
        return MHType.BE, _BE.pack(msg.status, 0, msg.home_address)
    if cls is BindingRefreshRequest:
        return MHType.BRR, b"\x00\x00"
    if cls is UnknownMessage:
        _u8("MH type", msg.mh_type)
        if msg.mh_type in _MIN_DATA:
            raise CodecError(f"MH type {msg.mh_type} is a known type, not an unknown message")
        return msg.mh_type, msg.body
    raise CodecError(f"not a Mobility Header message: {msg!r}")


def encode(msg: Message, payload_proto: int = IPPROTO_NONE) -> bytes:
    """Encode ``msg`` as a Mobility Header with a zero checksum."""
    _u8("payload proto", payload_proto)
    mh_type, fixed = _fixed_part(msg)
    offset = 6 + len(fixed)
    opts = encode_options(msg.options, offset)
    total = offset + len(opts)
    header_len = total // 8 - 1
    if header_len > 255:
        raise CodecError("Mobility Header longer than 2048 octets")
    return _HEAD.pack(payload_proto, header_len, mh_type, 0, 0) + fixed + opts


# Minimum message-data length (after the 6-octet header) per known type.
_MIN_DATA = {
    MHType.BRR: 2,
    MHType.HOTI: 10,
    MHType.COTI: 10,
    MHType.HOT: 18,
    MHType.COT: 18,
    MHType.BU: 6,
    MHType.BA: 6,
    MHType.BE: 18,
}


def _slot_setters(cls) -> tuple:
    """The ``__set__`` of each field's slot, in field order: a frozen dataclass's fields set
    without going through its ``__init__`` (which calls ``object.__setattr__`` by name per
    field, twice as slow). Only the decoder uses them, on values it has just checked."""
    return tuple(getattr(cls, f.name).__set__ for f in fields(cls))


_new = object.__new__
(_bu_seq, _bu_lifetime, _bu_ack, _bu_home, _bu_link_local, _bu_key_mgmt, _bu_options, _bu_raw,
 _bu_trailing_pad) = _slot_setters(BindingUpdate)


def _decoded_bu(seq: int, flags: int, lifetime: int, options: tuple, raw: bytes, trailing: int) -> BindingUpdate:
    """``BindingUpdate(seq, lifetime, A, H, L, K, options, raw, trailing)``, made quicker:
    every BU a correspondent or home agent receives is made here."""
    bu = _new(BindingUpdate)
    _bu_seq(bu, seq)
    _bu_lifetime(bu, lifetime)
    _bu_ack(bu, bool(flags & BU_FLAG_A))
    _bu_home(bu, bool(flags & BU_FLAG_H))
    _bu_link_local(bu, bool(flags & BU_FLAG_L))
    _bu_key_mgmt(bu, bool(flags & BU_FLAG_K))
    _bu_options(bu, options)
    _bu_raw(bu, raw)
    _bu_trailing_pad(bu, trailing)
    return bu


# Plain ints for the decoder's comparisons (see options.py).
_MH_BU = int(MHType.BU)
_MH_BA = int(MHType.BA)
_MH_HOTI = int(MHType.HOTI)
_MH_COTI = int(MHType.COTI)
_MH_HOT = int(MHType.HOT)
_MH_COT = int(MHType.COT)
_MH_BE = int(MHType.BE)


def decode(data: bytes) -> Message:
    """Decode one Mobility Header; raise CodecError if it is malformed.

    ``data`` may extend past the header (the rest is ignored); Header Len decides.
    """
    if len(data) < 8:
        raise CodecError(f"Mobility Header shorter than 8 octets ({len(data)})")
    header_len = data[1]
    mh_type = data[2]
    total = (header_len + 1) * 8
    if total > len(data):
        raise CodecError(f"Header Len says {total} octets but only {len(data)} are present")
    raw = bytes(data[:total])
    need = _MIN_DATA.get(mh_type)
    if need is None:
        return UnknownMessage(mh_type, raw[6:], raw)
    start = 6 + need
    if start > total:
        raise CodecError(f"MH type {mh_type} needs {start} octets, Header Len gives {total}")
    options, trailing = decode_options(raw, start, total)
    if mh_type == _MH_BU:
        seq, flags, lifetime = _BU.unpack_from(raw, 6)
        return _decoded_bu(seq, flags, lifetime, options, raw, trailing)
    if mh_type == _MH_BA:
        status, flags, seq, lifetime = _BA.unpack_from(raw, 6)
        return BindingAck(status, seq, lifetime, bool(flags & BA_FLAG_K), options, raw, trailing)
    if mh_type == _MH_HOTI:
        return HomeTestInit(raw[8:16], options, raw, trailing)
    if mh_type == _MH_COTI:
        return CareofTestInit(raw[8:16], options, raw, trailing)
    if mh_type == _MH_HOT:
        index, cookie, token = _HOT.unpack_from(raw, 6)
        return HomeTest(index, cookie, token, options, raw, trailing)
    if mh_type == _MH_COT:
        index, cookie, token = _HOT.unpack_from(raw, 6)
        return CareofTest(index, cookie, token, options, raw, trailing)
    if mh_type == _MH_BE:
        status, _, home = _BE.unpack_from(raw, 6)
        return BindingError(status, home, options, raw, trailing)
    return BindingRefreshRequest(options, raw, trailing)
