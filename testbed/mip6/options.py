"""Mobility options (RFC 6275 6.2, RFC 4285): values, encoding with alignment, decoding.

Options are immutable values. Encoding places each option at its alignment (xn+y, counted
from the start of the Mobility Header) with Pad1/PadN before it, and pads the message to a
multiple of 8 octets. Decoding returns the options in order, without padding; unknown option
types are kept as ``UnknownOption`` (RFC 6275 6.2.1: skipped by receivers).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from testbed.mip6.constants import ADDRESS_LEN, AUTHENTICATOR_LEN, OptType
from testbed.mip6.errors import CodecError

_U16 = struct.Struct("!H")
_U16x2 = struct.Struct("!HH")
_U64 = struct.Struct("!Q")
_SPI = struct.Struct("!BI")


@dataclass(frozen=True, slots=True)
class BindingRefreshAdvice:
    interval: int  # units of 4 seconds
    ALIGN = (2, 0)


@dataclass(frozen=True, slots=True)
class AlternateCoA:
    address: bytes  # 16 octets
    ALIGN = (8, 6)


@dataclass(frozen=True, slots=True)
class NonceIndices:
    home_nonce_index: int
    careof_nonce_index: int
    ALIGN = (2, 0)


@dataclass(frozen=True, slots=True)
class BindingAuthData:
    authenticator: bytes  # 12 octets; must be the last option
    ALIGN = (8, 2)


@dataclass(frozen=True, slots=True)
class MobilityMessageAuth:
    """RFC 4285 Mobility Message Authentication option; must be the last option.

    RFC 4285 asks for 4n+1; we place it at 8n+5 (a case of 4n+1) so that it ends on an
    8-octet boundary and no padding has to follow it.
    """

    subtype: int
    spi: int
    authenticator: bytes  # 12 octets for HMAC_SHA1-96
    ALIGN = (8, 5)


@dataclass(frozen=True, slots=True)
class ReplayProtection:
    timestamp: int  # 64 bits
    ALIGN = (8, 2)


@dataclass(frozen=True, slots=True)
class UnknownOption:
    type: int
    data: bytes
    ALIGN = (1, 0)


MobilityOption = (
    BindingRefreshAdvice
    | AlternateCoA
    | NonceIndices
    | BindingAuthData
    | MobilityMessageAuth
    | ReplayProtection
    | UnknownOption
)


_KNOWN = frozenset(int(t) for t in OptType)


def _padding(n: int) -> bytes:
    if n == 0:
        return b""
    if n == 1:
        return b"\x00"
    return bytes((OptType.PADN, n - 2)) + bytes(n - 2)


def _check(name: str, value: int, bits: int) -> int:
    if not isinstance(value, int) or not 0 <= value < (1 << bits):
        raise CodecError(f"{name} {value!r} does not fit {bits} bits")
    return value


def _option_bytes(opt: MobilityOption) -> bytes:
    cls = type(opt)
    if cls is BindingAuthData:
        if len(opt.authenticator) != AUTHENTICATOR_LEN:
            raise CodecError("Binding Authorization Data authenticator must be 12 octets")
        return b"\x05\x0c" + opt.authenticator
    if cls is NonceIndices:
        return b"\x04\x04" + _U16x2.pack(
            _check("home nonce index", opt.home_nonce_index, 16), _check("care-of nonce index", opt.careof_nonce_index, 16)
        )
    if cls is AlternateCoA:
        if len(opt.address) != ADDRESS_LEN:
            raise CodecError("Alternate Care-of Address must be 16 octets")
        return b"\x03\x10" + opt.address
    if cls is BindingRefreshAdvice:
        return b"\x02\x02" + _U16.pack(_check("refresh interval", opt.interval, 16))
    if cls is ReplayProtection:
        return b"\x0a\x08" + _U64.pack(_check("timestamp", opt.timestamp, 64))
    if cls is MobilityMessageAuth:
        body = _SPI.pack(_check("subtype", opt.subtype, 8), _check("SPI", opt.spi, 32)) + opt.authenticator
        if len(body) > 255:
            raise CodecError("Mobility Message Authentication option longer than 255 octets")
        return bytes((OptType.MOBILITY_MESSAGE_AUTH, len(body))) + body
    if cls is UnknownOption:
        if type(opt.type) is not int or not 0 <= opt.type <= 255 or opt.type in _KNOWN or len(opt.data) > 255:
            raise CodecError(f"cannot encode option type {opt.type!r} as an unknown option")
        return bytes((opt.type, len(opt.data))) + opt.data
    raise CodecError(f"not a mobility option: {opt!r}")


def encode_options(options: tuple[MobilityOption, ...], offset: int) -> bytes:
    """Encode options that start at ``offset`` octets into the Mobility Header.

    Each option is aligned per its ALIGN (x, y), and the result is padded so that
    ``offset + len(result)`` is a multiple of 8.
    """
    out = bytearray()
    pos = offset
    for opt in options:
        x, y = opt.ALIGN
        pad = (y - pos) % x
        out += _padding(pad)
        body = _option_bytes(opt)
        out += body
        pos += pad + len(body)
    out += _padding((-pos) % 8)
    return bytes(out)


# Expected Option Length per known type; MobilityMessageAuth is variable (at least 5).
_FIXED_LEN = {
    OptType.BINDING_REFRESH_ADVICE: 2,
    OptType.ALTERNATE_COA: 16,
    OptType.NONCE_INDICES: 4,
    OptType.BINDING_AUTH_DATA: 12,
    OptType.REPLAY_PROTECTION: 8,
}


# Plain ints for the decoder's comparisons (an IntEnum member costs an attribute look-up and
# Enum's __eq__ each time; this is on every packet's path).
_PAD1 = int(OptType.PAD1)
_PADN = int(OptType.PADN)
_BINDING_AUTH_DATA = int(OptType.BINDING_AUTH_DATA)
_NONCE_INDICES = int(OptType.NONCE_INDICES)
_ALTERNATE_COA = int(OptType.ALTERNATE_COA)
_BINDING_REFRESH_ADVICE = int(OptType.BINDING_REFRESH_ADVICE)
_REPLAY_PROTECTION = int(OptType.REPLAY_PROTECTION)
_MOBILITY_MESSAGE_AUTH = int(OptType.MOBILITY_MESSAGE_AUTH)


_BAD_AFTER_PADN = bytes((OptType.PADN, 4, 0, 0, 0, 0, OptType.BINDING_AUTH_DATA, AUTHENTICATOR_LEN))
_BAD_AFTER_PADN_LEN = len(_BAD_AFTER_PADN) + AUTHENTICATOR_LEN


def decode_options(data: bytes, start: int, end: int) -> tuple[tuple[MobilityOption, ...], int]:
    """Decode the options in ``data[start:end]``.

    Returns the options (padding dropped) and the number of padding octets that follow the
    last non-padding option (used to enforce "nothing after BAD").
    """
    if end - start == _BAD_AFTER_PADN_LEN and data[start:start + 8] == _BAD_AFTER_PADN:
        # The layout of every BU and BA that carries only a BAD after the 12-octet fixed part:
        # PadN of 6, then the BAD (what the loop below finds, in fewer steps).
        return (BindingAuthData(data[start + 8:end]),), 0
    options: list[MobilityOption] = []
    pos = start
    trailing_pad = 0
    while pos < end:
        otype = data[pos]
        if otype == _PAD1:
            pos += 1
            trailing_pad += 1
            continue
        if pos + 2 > end:
            raise CodecError(f"truncated option header at offset {pos}")
        olen = data[pos + 1]
        vstart = pos + 2
        vend = vstart + olen
        if vend > end:
            raise CodecError(f"option type {otype} at offset {pos} overruns the message")
        if otype == _PADN:
            trailing_pad += 2 + olen
            pos = vend
            continue
        want = _FIXED_LEN.get(otype)
        if want is not None and olen != want:
            raise CodecError(f"option type {otype} has length {olen}, expected {want}")
        if otype == _BINDING_AUTH_DATA:
            opt: MobilityOption = BindingAuthData(data[vstart:vend])
        elif otype == _NONCE_INDICES:
            opt = NonceIndices(*_U16x2.unpack_from(data, vstart))
        elif otype == _ALTERNATE_COA:
            opt = AlternateCoA(data[vstart:vend])
        elif otype == _BINDING_REFRESH_ADVICE:
            opt = BindingRefreshAdvice(_U16.unpack_from(data, vstart)[0])
        elif otype == _REPLAY_PROTECTION:
            opt = ReplayProtection(_U64.unpack_from(data, vstart)[0])
        elif otype == _MOBILITY_MESSAGE_AUTH:
            if olen < 5:
                raise CodecError(f"Mobility Message Authentication option too short ({olen})")
            subtype, spi = _SPI.unpack_from(data, vstart)
            opt = MobilityMessageAuth(subtype, spi, data[vstart + 5 : vend])
        else:
            opt = UnknownOption(otype, data[vstart:vend])
        options.append(opt)
        trailing_pad = 0
        pos = vend
    return tuple(options), trailing_pad
