"""No key material in any ``repr``: Kcn, nonces, MN-HA keys, keygen tokens and Kbm values stay
out of what a debugger, a log line or a traceback would print (issue 9)."""

from __future__ import annotations

import dataclasses
import importlib
import ipaddress
import pkgutil

import pytest
from engine_fixtures import CN_PC, CN_RR, COA1, HOME, MN_HA_SA, make_world, preconfigured

import testbed
from testbed.diag.keymaterial import derive
from testbed.diag.verify import KeyRing
from testbed.mip6.constants import SECOND_NS
from testbed.mip6.crypto import binding_management_key, careof_keygen_token, home_keygen_token
from testbed.mip6.messages import CareofTest, HomeTest


def _forms(secret: bytes) -> list[str]:
    return [secret.hex(), secret.hex().upper(), repr(secret)[2:-1], repr(secret)]


def _assert_hidden(obj, secrets: list[bytes]) -> None:
    text = repr(obj)
    for secret in secrets:
        for form in _forms(secret):
            assert form not in text, f"{type(obj).__name__} shows key material in its repr: {text[:200]}"


@pytest.fixture(scope="module")
def bound_world():
    data = preconfigured()
    w = make_world(data=data)
    w.move(COA1)
    assert w.net.run_until(lambda: w.bound_everywhere(COA1), 10 * SECOND_NS)
    return w, data


def _all_secrets(w, data) -> list[bytes]:
    home_token = home_keygen_token(data.kcn, HOME, data.home_nonce)
    careof_token = careof_keygen_token(data.kcn, COA1, data.careof_nonce)
    out = [data.kcn, data.home_nonce, data.careof_nonce, MN_HA_SA.key, home_token, careof_token,
           binding_management_key(home_token, careof_token), binding_management_key(home_token, None),
           w.cn_rr._kcn]
    rr = w.mn.bul[CN_RR]
    out += [rr.home_token[0], rr.careof_token[0], rr.sent_kbm]
    out += [nonce for nonce, _ in w.cn_rr._nonces._nonces.values()]
    return out


def test_objects_holding_key_material_show_none_of_it(bound_world):
    w, data = bound_world
    secrets = _all_secrets(w, data)
    derived = derive(data, ipaddress.IPv6Address(COA1))
    objects = [
        data, MN_HA_SA, derived,
        w.cn_pc._peers[HOME], w.cn_pc._peers, w.cn_pc, w.cn_rr, w.cn_rr._nonces, w.ha, w.ha._keys, w.mn,
        *w.mn.entries(), w.mn.bul, w.mn._mn_ha,
        HomeTest(1, b"c" * 8, secrets[4]), CareofTest(1, b"c" * 8, secrets[5]),
        KeyRing([data], [MN_HA_SA]),
    ]
    for obj in objects:
        _assert_hidden(obj, secrets)
    # The values are really there (the test would notice a repr that showed them).
    assert w.mn.bul[CN_PC].sent_kbm == secrets[6] and w.mn.bul[CN_RR].home_token is not None
    assert secrets[6].hex() in repr(secrets[6].hex())


_SECRET_NAMES = ("kcn", "nonce", "token", "kbm", "key", "secret")
_NOT_SECRET = {"key_id", "store_key", "nonce_index", "home_nonce_index", "careof_nonce_index", "mn_ha_keys",
               "key_mgmt", "keys", "key_file", "coti_careof", "home_token_ns", "wants_home_token"}
_NOT_SECRET_FIELDS = {
    "testbed.diag.verify.MHRecord.kbm",  # "registration" / "de-registration": which Kbm, not its value
    "testbed.provision.inventory.Inventory.key_dirs",  # where each node keeps its key files: paths
    "testbed.agent.config.AgentConfig.home_token_reuse",  # a switch (reuse a valid home token), not a token
    "testbed.agent.events.DurableWrite.key",  # a sequence record's key, checked never to hold key material
}


def _dataclasses():
    for info in pkgutil.walk_packages(testbed.__path__, "testbed."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a module that needs what this machine lacks is not ours to judge here
            continue
        for value in vars(module).values():
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == info.name:
                yield value


def test_every_dataclass_field_named_like_key_material_is_left_out_of_repr():
    """A structural guard for classes added later: a field whose name says it holds a key,
    token, nonce or Kbm must be ``field(repr=False)``."""
    found = []
    for cls in _dataclasses():
        for f in dataclasses.fields(cls):
            name = f.name.lower()
            qualified = f"{cls.__module__}.{cls.__name__}.{f.name}"
            if name in _NOT_SECRET or qualified in _NOT_SECRET_FIELDS or not any(word in name for word in _SECRET_NAMES):
                continue
            found.append(qualified)
            assert not f.repr, f"{cls.__module__}.{cls.__name__}.{f.name} is shown by repr"
    assert len(found) >= 12, found  # the guard looked at the fields it is meant for
