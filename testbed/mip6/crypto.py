"""Return-routability cryptography (RFC 6275 5.2.5, 5.2.6; reused by RFC 4449) and the
RFC 4285 MN-HA authenticator. All inputs are raw octets; addresses are 16 octets."""

from __future__ import annotations

import hashlib
import hmac

from testbed.mip6.constants import AUTHENTICATOR_LEN, TOKEN_LEN

_HOME = b"\x00"
_CAREOF = b"\x01"


def home_keygen_token(kcn: bytes, home_address: bytes, home_nonce: bytes) -> bytes:
    """First 64 bits of HMAC_SHA1(Kcn, home address | nonce | 0)."""
    return hmac.digest(kcn, home_address + home_nonce + _HOME, "sha1")[:TOKEN_LEN]


def careof_keygen_token(kcn: bytes, careof_address: bytes, careof_nonce: bytes) -> bytes:
    """First 64 bits of HMAC_SHA1(Kcn, care-of address | nonce | 1)."""
    return hmac.digest(kcn, careof_address + careof_nonce + _CAREOF, "sha1")[:TOKEN_LEN]


def binding_management_key(home_token: bytes, careof_token: bytes | None) -> bytes:
    """Kbm = SHA1(home token | care-of token); SHA1(home token) when de-registering."""
    if careof_token is None:
        return hashlib.sha1(home_token).digest()
    return hashlib.sha1(home_token + careof_token).digest()


def binding_authenticator(kbm: bytes, careof_address: bytes, correspondent: bytes, mh_data: bytes) -> bytes:
    """First 96 bits of HMAC_SHA1(Kbm, care-of address | correspondent | MH Data).

    ``mh_data`` is the Mobility Header up to (not including) the authenticator, with the
    checksum field zero."""
    return hmac.digest(kbm, careof_address + correspondent + mh_data, "sha1")[:AUTHENTICATOR_LEN]


def mn_ha_authenticator(key: bytes, careof_address: bytes, home_address: bytes, mh_data: bytes) -> bytes:
    """RFC 4285: first 96 bits of HMAC_SHA1(MN-HA key, care-of | home address | MH Data).

    ``mh_data`` runs up to and including the Mobility SPI, checksum field zero."""
    return hmac.digest(key, careof_address + home_address + mh_data, "sha1")[:AUTHENTICATOR_LEN]


def authenticated_part(mh: bytes) -> bytes:
    """The MH Data an authenticator ending the message covers: checksum zeroed, without
    the last 12 octets (the authenticator itself)."""
    return mh[:4] + b"\x00\x00" + mh[6:-AUTHENTICATOR_LEN]


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
