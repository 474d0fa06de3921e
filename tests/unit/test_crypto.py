"""RFC 6275 5.2.5/5.2.6 crypto as RFC 4449 reuses it (R2, R5, R7) and RFC 4285 MN-HA: the
test vector of docs/protocol.md section 2, plus each formula checked against hmac/hashlib directly."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from testbed.mip6 import crypto, messages
from testbed.mip6.options import BindingAuthData, MobilityMessageAuth, NonceIndices

KCN = bytes.fromhex("0102030405060708090a0b0c0d0e0f1011121314")
HOME = ipaddress.IPv6Address("2001:db8:0:1::1234").packed
COA = ipaddress.IPv6Address("2001:db8:0:2::1234").packed
CN = ipaddress.IPv6Address("2001:db8:0:3::1").packed
HOME_NONCE = bytes.fromhex("1111111111111111")
CAREOF_NONCE = bytes.fromhex("2222222222222222")

VECTOR_HOME_TOKEN = "58ece48700429210"
VECTOR_CAREOF_TOKEN = "aa9759cbd75f1f7a"
VECTOR_KBM = "ed6390be45315932ee374012e99e37484c149739"
VECTOR_KBM_DEREG = "9ad8ee092f628eb2d4ce2a28d291defbdb16793b"
VECTOR_MH_DATA = "3b0305000000000180000069010400000000050c"
VECTOR_AUTHENTICATOR = "0bb472f675bbaa75162b2d2f"


def _vector_bu(authenticator: bytes = bytes(12)) -> bytes:
    return messages.encode(messages.BindingUpdate(1, 105, ack=True, options=(BindingAuthData(authenticator),)))


# ------------------------------------------------------------------ the docs/protocol.md test vector (R2)


def test_vector_home_keygen_token():
    assert crypto.home_keygen_token(KCN, HOME, HOME_NONCE).hex() == VECTOR_HOME_TOKEN


def test_vector_careof_keygen_token():
    assert crypto.careof_keygen_token(KCN, COA, CAREOF_NONCE).hex() == VECTOR_CAREOF_TOKEN


def test_vector_kbm_and_deregistration_kbm():
    home = bytes.fromhex(VECTOR_HOME_TOKEN)
    careof = bytes.fromhex(VECTOR_CAREOF_TOKEN)
    assert crypto.binding_management_key(home, careof).hex() == VECTOR_KBM
    assert crypto.binding_management_key(home, None).hex() == VECTOR_KBM_DEREG


def test_vector_mh_data_is_the_bu_up_to_the_authenticator():
    mh = _vector_bu(b"\xff" * 12)
    assert len(mh) == 32 and mh[1] == 3  # 12 fixed octets + PadN(6) + BAD(14), Header Len 3
    assert crypto.authenticated_part(mh).hex() == VECTOR_MH_DATA


def test_vector_authenticator_r5():
    mh_data = crypto.authenticated_part(_vector_bu())
    auth = crypto.binding_authenticator(bytes.fromhex(VECTOR_KBM), COA, CN, mh_data)
    assert auth.hex() == VECTOR_AUTHENTICATOR


def test_authenticated_part_zeroes_the_checksum():
    mh = bytearray(_vector_bu())
    mh[4:6] = b"\xbe\xef"
    assert crypto.authenticated_part(bytes(mh)).hex() == VECTOR_MH_DATA


# ------------------------------------------------------------------ formulas against hmac/hashlib


def test_tokens_use_distinct_trailing_octets():
    # home token ends the HMAC input with 0x00, care-of with 0x01: same address and nonce differ.
    home = crypto.home_keygen_token(KCN, HOME, HOME_NONCE)
    careof = crypto.careof_keygen_token(KCN, HOME, HOME_NONCE)
    assert home == hmac.new(KCN, HOME + HOME_NONCE + b"\x00", hashlib.sha1).digest()[:8]
    assert careof == hmac.new(KCN, HOME + HOME_NONCE + b"\x01", hashlib.sha1).digest()[:8]
    assert home != careof


def test_authenticator_covers_careof_correspondent_and_data_in_that_order():
    kbm = bytes(range(20))
    data = b"\x3b\x03\x06\x00\x00\x00" + bytes(14)
    got = crypto.binding_authenticator(kbm, COA, CN, data)
    assert got == hmac.new(kbm, COA + CN + data, hashlib.sha1).digest()[:12]
    assert got != crypto.binding_authenticator(kbm, CN, COA, data)


def test_bu_with_nonce_indices_is_authenticated_over_the_header_as_received_r6():
    # R6: Nonce Indices may be present; the authenticator covers the MH as received, NI included.
    mh = messages.encode(messages.BindingUpdate(7, 10, options=(NonceIndices(3, 4), BindingAuthData(bytes(12)))))
    part = crypto.authenticated_part(mh)
    assert b"\x04\x04\x00\x03\x00\x04" in part
    kbm = bytes.fromhex(VECTOR_KBM)
    assert crypto.binding_authenticator(kbm, COA, CN, part) == hmac.new(
        kbm, COA + CN + mh[:4] + b"\0\0" + mh[6:-12], hashlib.sha1
    ).digest()[:12]


def test_mn_ha_authenticator_rfc4285():
    key = b"k" * 20
    mh = messages.encode(messages.BindingUpdate(1, 100, ack=True, home=True,
                                                options=(MobilityMessageAuth(1, 0x01020304, bytes(12)),)))
    assert mh.endswith(b"\x01\x01\x02\x03\x04" + bytes(12))  # subtype, SPI, then the authenticator
    data = crypto.authenticated_part(mh)  # up to and including the SPI
    assert data.endswith(b"\x01\x02\x03\x04")
    got = crypto.mn_ha_authenticator(key, COA, HOME, data)
    assert got == hmac.new(key, COA + HOME + data, hashlib.sha1).digest()[:12]
    assert got != crypto.mn_ha_authenticator(key, HOME, COA, data)


@pytest.mark.parametrize("a,b,equal", [(b"x" * 12, b"x" * 12, True), (b"x" * 12, b"x" * 11 + b"y", False)])
def test_constant_time_equal(a, b, equal):
    assert crypto.constant_time_equal(a, b) is equal
