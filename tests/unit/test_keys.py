"""RFC 4449 preconfigured data: shape (R1), weak-key refusal (R3), one Kcn per peer (R10).

Every bad-file class is also driven through ``testbed keygen --check`` in test_cli_keygen.py.
"""

import ipaddress
import os
import secrets
import stat

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from testbed.errors import ConfigError
from testbed.mip6 import keys
from testbed.storage import keyfiles
from testbed.mip6.entropy import MAX_PATTERN, kcn_weakness, min_distinct_octets
from testbed.mip6.keys import PreconfiguredData

HOME = "2001:db8:0:1::1234"
CN = "2001:db8:0:3::1"
VECTOR_KCN = bytes.fromhex("0102030405060708090a0b0c0d0e0f1011121314")


def _write(path, text, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def _file_text(home=HOME, cn=CN, kcn=None, hn=None, cn_nonce=None):
    return (
        f"home_address: {home}\n"
        f"correspondent: {cn}\n"
        f"kcn: {kcn or secrets.token_hex(20)}\n"
        f"home_nonce: {hn or secrets.token_hex(8)}\n"
        f"careof_nonce: {cn_nonce or secrets.token_hex(8)}\n"
    )


# ------------------------------------------------------------------ the data class


def test_r1_vector_data_can_be_built_directly_bypassing_the_entropy_check():
    """The docs/protocol.md test vector's Kcn is weak by design; engines' crypto tests build it directly."""
    d = PreconfiguredData(HOME, CN, VECTOR_KCN, bytes.fromhex("11" * 8), bytes.fromhex("22" * 8))
    assert d.home_address == ipaddress.IPv6Address(HOME)
    assert isinstance(d.correspondent, ipaddress.IPv6Address)
    assert d.kcn == VECTOR_KCN and d.source == "<memory>"
    assert kcn_weakness(VECTOR_KCN) is not None  # ...but a file holding it is refused (R3)


@pytest.mark.parametrize(
    "kcn, hn, cn_nonce, exc",
    [
        (b"\x01" * 19, b"1" * 8, b"2" * 8, ValueError),
        (VECTOR_KCN, b"1" * 7, b"2" * 8, ValueError),
        (VECTOR_KCN, b"1" * 8, b"2" * 9, ValueError),
        (VECTOR_KCN.hex(), b"1" * 8, b"2" * 8, TypeError),
    ],
)
def test_r1_shape_is_enforced_on_construction(kcn, hn, cn_nonce, exc):
    with pytest.raises(exc):
        PreconfiguredData(HOME, CN, kcn, hn, cn_nonce)


def test_secrets_never_appear_in_repr_str_or_format():
    d = keys.generate(HOME, CN)
    for text in (repr(d), str(d), f"{d}", f"{d!r}"):
        for secret in (d.kcn, d.home_nonce, d.careof_nonce):
            assert secret.hex() not in text.lower()
            assert repr(secret) not in text
        assert d.key_id in text or text.startswith("PreconfiguredData(")
    assert HOME in str(d) and CN in str(d)


def test_key_id_is_a_stable_short_fingerprint_not_the_key():
    d = keys.generate(HOME, CN)
    assert len(d.key_id) == 16 and int(d.key_id, 16) >= 0
    assert d.key_id == PreconfiguredData(HOME, "2001:db8::9", d.kcn, d.home_nonce, d.careof_nonce).key_id
    assert d.key_id not in d.kcn.hex()
    assert keys.generate(HOME, CN).key_id != d.key_id
    # domain-separated: not simply a prefix of SHA-256(Kcn)
    import hashlib

    assert d.key_id != hashlib.sha256(d.kcn).hexdigest()[:16]


# ------------------------------------------------------------------ loading


def test_r1_load_round_trips_what_write_new_wrote(tmp_path):
    data = keys.generate(HOME, CN)
    written = keyfiles.write_new(tmp_path / "peer.yaml", data)
    assert written.source == str(tmp_path / "peer.yaml")
    loaded = keyfiles.load_preconfigured(tmp_path / "peer.yaml")
    assert (loaded.home_address, loaded.correspondent, loaded.kcn, loaded.home_nonce, loaded.careof_nonce) == (
        data.home_address,
        data.correspondent,
        data.kcn,
        data.home_nonce,
        data.careof_nonce,
    )
    assert loaded.source == str(tmp_path / "peer.yaml")
    assert stat.S_IMODE(os.stat(tmp_path / "peer.yaml").st_mode) == 0o600


def test_unquoted_numeric_looking_values_are_read_as_hex_not_numbers(tmp_path):
    """YAML would read 1111111111111111 as an int and 0123... as octal; we read every value as text."""
    kcn = secrets.token_hex(20)
    path = _write(tmp_path / "p.yaml", _file_text(kcn=kcn, hn="1111111111111111", cn_nonce="0123456701234567"))
    d = keyfiles.load_preconfigured(path)
    assert d.home_nonce == bytes.fromhex("1111111111111111")
    assert d.careof_nonce == bytes.fromhex("0123456701234567")
    assert d.kcn == bytes.fromhex(kcn)


def test_uppercase_hex_and_longer_kcn_are_accepted(tmp_path):
    kcn = secrets.token_hex(32).upper()
    d = keyfiles.load_preconfigured(_write(tmp_path / "p.yaml", _file_text(kcn=kcn)))
    assert d.kcn == bytes.fromhex(kcn) and len(d.kcn) == 32


@pytest.mark.parametrize("mode", [0o400, 0o600])
def test_r1_modes_0600_or_stricter_are_accepted(tmp_path, mode):
    assert keyfiles.load_preconfigured(_write(tmp_path / "p.yaml", _file_text(), mode)).source.endswith("p.yaml")


def test_refusals_name_the_file_in_one_line_and_never_show_secrets(tmp_path):
    kcn = "ab" * 20  # one repeated octet
    hn = secrets.token_hex(8)
    path = _write(tmp_path / "p.yaml", _file_text(kcn=kcn, hn=hn))
    with pytest.raises(ConfigError) as err:
        keyfiles.load_preconfigured(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg
    assert kcn not in msg and hn not in msg and "repeated" in msg


def test_unknown_key_that_looks_like_key_material_is_not_echoed(tmp_path):
    secret = secrets.token_hex(20)
    path = _write(tmp_path / "p.yaml", _file_text() + f"{secret}: x\n")
    with pytest.raises(ConfigError, match="unknown key") as err:
        keyfiles.load_preconfigured(path)
    assert secret not in str(err.value)


def test_bad_address_holding_key_material_is_not_echoed(tmp_path):
    secret = secrets.token_hex(20)
    with pytest.raises(ConfigError, match="not an IPv6 address") as err:
        keyfiles.load_preconfigured(_write(tmp_path / "p.yaml", _file_text(home=secret)))
    assert secret not in str(err.value)


# ------------------------------------------------------------------ R3 entropy


def test_r3_keys_from_the_csprng_pass():
    """False refusals of random keys are below 1e-8 per key (entropy.py); 2000 draws all pass."""
    for n in (20, 20, 32, 64) * 500:
        assert kcn_weakness(secrets.token_bytes(n)) is None


@given(st.binary(min_size=1, max_size=MAX_PATTERN), st.integers(min_value=20, max_value=64))
def test_r3_any_short_repeating_pattern_is_refused(pattern, length):
    kcn = (pattern * length)[:length]
    assert kcn_weakness(kcn) is not None


@given(st.integers(0, 255), st.integers(0, 255), st.integers(20, 64))
def test_r3_any_arithmetic_progression_is_refused(start, step, length):
    kcn = bytes((start + i * step) & 0xFF for i in range(length))
    assert kcn_weakness(kcn) is not None


@given(st.data(), st.integers(20, 64))
def test_r3_too_few_distinct_octets_are_refused(data, length):
    alphabet = data.draw(st.lists(st.integers(0, 255), min_size=1, max_size=min_distinct_octets(length) - 1, unique=True))
    kcn = bytes(data.draw(st.lists(st.sampled_from(alphabet), min_size=length, max_size=length)))
    assert kcn_weakness(kcn) is not None


@given(st.lists(st.integers(0, 255), min_size=20, max_size=40, unique=True), st.booleans())
def test_r3_strictly_monotone_keys_are_refused(values, descending):
    kcn = bytes(sorted(values, reverse=descending))
    assert kcn_weakness(kcn) is not None


@pytest.mark.parametrize(
    "kcn, reason",
    [
        (b"\x00" * 20, "repeated octet"),
        (bytes.fromhex("0102") * 10, "pattern of 2"),
        (bytes.fromhex("deadbeefcafebabe") * 3, "pattern of 8"),
        (VECTOR_KCN, "arithmetic progression"),
        (bytes(range(250, 256)) + bytes(range(0, 14)), "arithmetic progression"),
        (bytes((i * 3 // 2) & 0xFF for i in range(20)), "regular progression"),
        (bytes(sorted(secrets.SystemRandom().sample(range(256), 20))), "monotone"),
        (bytes(secrets.choice(b"\x01\x02\x03\x05\x08\x0d\x15\x22\x37") for _ in range(40)), "distinct"),
        (b"The quick brown fox jumps over", "printable ASCII"),
    ],
)
def test_r3_each_weakness_class_has_its_reason(kcn, reason):
    assert reason in (kcn_weakness(kcn) or "")


# ------------------------------------------------------------------ R10 and peer sets


def _peer(home=HOME, cn=CN, kcn=None, source="<memory>"):
    d = keys.generate(home, cn)
    return PreconfiguredData(d.home_address, d.correspondent, kcn or d.kcn, d.home_nonce, d.careof_nonce, source)


def test_r10_a_kcn_shared_by_two_peers_is_refused_naming_both_files():
    a = _peer(cn="2001:db8:0:3::1", source="a.yaml")
    b = _peer(cn="2001:db8:0:3::2", kcn=a.kcn, source="b.yaml")
    with pytest.raises(ConfigError) as err:
        keys.check_distinct_kcn([a, _peer(cn="2001:db8:0:3::3"), b])
    msg = str(err.value)
    assert "a.yaml" in msg and "b.yaml" in msg and "R10" in msg and "\n" not in msg
    assert a.kcn.hex() not in msg
    keys.check_distinct_kcn([a, _peer(cn="2001:db8:0:3::2")])  # distinct keys pass


def test_the_same_pair_twice_is_refused():
    a = _peer(source="a.yaml")
    b = _peer(source="b.yaml")
    with pytest.raises(ConfigError, match="a.yaml and b.yaml are both for home address"):
        keys.check_distinct_pairs([a, b])


def test_r10_mn_peer_set_is_keyed_by_correspondent():
    peers = [_peer(cn=f"2001:db8:0:3::{i}") for i in (1, 2, 3)]
    index = keys.index_peers(peers, "mn")
    assert set(index) == {ipaddress.IPv6Address(f"2001:db8:0:3::{i}") for i in (1, 2, 3)}
    assert index[ipaddress.IPv6Address("2001:db8:0:3::2")] is peers[1]


def test_r10_cn_peer_set_is_keyed_by_home_address():
    peers = [_peer(home=f"2001:db8:0:1::{i}") for i in (1, 2)]
    index = keys.index_peers(peers, "cn")
    assert index[ipaddress.IPv6Address("2001:db8:0:1::2")] is peers[1]


@pytest.mark.parametrize(
    "role, a, b, field",
    [
        ("mn", dict(home="2001:db8:0:1::1", cn=CN), dict(home="2001:db8:0:1::2", cn="2001:db8:0:3::2"), "home_address"),
        ("cn", dict(home="2001:db8:0:1::1", cn=CN), dict(home="2001:db8:0:1::2", cn="2001:db8:0:3::2"), "correspondent"),
    ],
)
def test_one_nodes_peer_files_must_share_its_own_address(role, a, b, field):
    with pytest.raises(ConfigError, match=f"x.yaml and y.yaml differ in {field}"):
        keys.index_peers([_peer(source="x.yaml", **a), _peer(source="y.yaml", **b)], role)


def test_r10_load_peer_set_loads_files_and_applies_the_checks(tmp_path):
    text1 = _file_text(cn="2001:db8:0:3::1")
    p1 = _write(tmp_path / "cn1.yaml", text1)
    p2 = _write(tmp_path / "cn2.yaml", _file_text(cn="2001:db8:0:3::2"))
    peers = keyfiles.load_peer_set([p1, p2], "mn")
    assert {str(a) for a in peers} == {"2001:db8:0:3::1", "2001:db8:0:3::2"}
    kcn1 = yaml.safe_load(text1)["kcn"]
    p3 = _write(tmp_path / "cn3.yaml", _file_text(cn="2001:db8:0:3::3", kcn=kcn1))
    with pytest.raises(ConfigError, match="cn1.yaml and .*cn3.yaml hold the same Kcn"):
        keyfiles.load_peer_set([p1, p2, p3], "mn")


def test_index_peers_rejects_an_unknown_role():
    with pytest.raises(ValueError):
        keys.index_peers([], "ha")


# ------------------------------------------------------------------ generation and writing


def test_r3_generate_uses_fresh_random_material_that_passes_the_validator():
    a, b = keys.generate(HOME, CN), keys.generate(HOME, CN)
    assert len(a.kcn) == 20 and len(a.home_nonce) == 8 and len(a.careof_nonce) == 8
    assert len({a.kcn, b.kcn}) == 2 and len({a.home_nonce, b.home_nonce, a.careof_nonce, b.careof_nonce}) == 4
    assert keys.parse_preconfigured(keys.dump(a), "<t>").kcn == a.kcn
    assert len(keys.generate(HOME, CN, kcn_len=32).kcn) == 32


@pytest.mark.parametrize(
    "home, cn, kcn_len, match",
    [
        ("not-an-address", CN, 20, "home address 'not-an-address' is not an IPv6 address"),
        (HOME, "192.0.2.1", 20, "correspondent '192.0.2.1' is not an IPv6 address"),
        (HOME, "ff02::1", 20, "multicast"),
        ("fe80::1", CN, 20, "link-local"),
        ("::", CN, 20, "unspecified"),
        (HOME, HOME, 20, "same address"),
        (HOME, CN, 19, "under the R1 minimum"),
    ],
)
def test_generate_refuses_bad_arguments_in_one_line(home, cn, kcn_len, match):
    with pytest.raises(ConfigError, match=match) as err:
        keys.generate(home, cn, kcn_len=kcn_len)
    assert "\n" not in str(err.value)


def test_dump_is_plain_yaml_of_strings_for_other_readers():
    """Any YAML reader (Ansible's include_vars too) gets strings, not numbers."""
    d = keys.generate(HOME, CN)
    doc = yaml.safe_load(keys.dump(d))
    assert doc == {
        "home_address": HOME,
        "correspondent": CN,
        "kcn": d.kcn.hex(),
        "home_nonce": d.home_nonce.hex(),
        "careof_nonce": d.careof_nonce.hex(),
    }


def test_write_new_creates_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        keyfiles.write_new(tmp_path / "p.yaml", keys.generate(HOME, CN))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "p.yaml").st_mode) == 0o600


def test_write_new_never_overwrites(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("precious\n")
    before = os.stat(path)
    with pytest.raises(ConfigError, match="already exists") as err:
        keyfiles.write_new(path, keys.generate(HOME, CN))
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    assert path.read_text() == "precious\n" and os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_write_new_does_not_follow_a_dangling_symlink(tmp_path):
    (tmp_path / "link.yaml").symlink_to(tmp_path / "elsewhere.yaml")
    with pytest.raises(ConfigError, match="already exists"):
        keyfiles.write_new(tmp_path / "link.yaml", keys.generate(HOME, CN))
    assert not (tmp_path / "elsewhere.yaml").exists()


def test_write_new_into_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot create") as err:
        keyfiles.write_new(tmp_path / "nope" / "p.yaml", keys.generate(HOME, CN))
    assert "\n" not in str(err.value)
