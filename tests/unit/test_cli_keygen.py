"""``testbed keygen``: output passes the validator (R1, R3); every bad input is one line, exit 2,
nothing existing changed (R1, R3, R10)."""

import os
import secrets
import stat
import subprocess
import sys

import pytest
import yaml

from testbed.cli import main
from testbed.mip6 import keys
from testbed.storage import keyfiles

HOME = "2001:db8:0:1::1234"
CN = "2001:db8:0:3::1"


def run_cli(capsys, *argv):
    rc = main(["keygen", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc, out, err, *fragments):
    assert rc == 2
    assert out == ""
    assert err.startswith("testbed: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def snapshot(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    data = path.read_bytes() if path.is_file() else None
    return (data, st.st_mode, st.st_mtime_ns, st.st_size)


# ------------------------------------------------------------------ generating


def test_r1_r3_keygen_prints_yaml_that_passes_the_validator(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "--home-address", HOME, "--correspondent", CN)
    assert rc == 0 and err == ""
    data = keys.parse_preconfigured(out, "<stdout>")
    assert str(data.home_address) == HOME and str(data.correspondent) == CN and len(data.kcn) == 20
    # and the same text, saved 0600, passes --check
    path = tmp_path / "p.yaml"
    path.write_text(out)
    path.chmod(0o600)
    assert run_cli(capsys, "--check", str(path)) == (0, f"{path}: ok\n", "")


def test_r1_r3_keygen_out_writes_a_0600_file_that_passes_check(capsys, tmp_path):
    path = tmp_path / "peer.yaml"
    rc, out, err = run_cli(capsys, "--home-address", HOME, "--correspondent", CN, "--out", str(path), "--kcn-octets", "32")
    assert rc == 0 and err == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = keyfiles.load_preconfigured(path)
    assert len(data.kcn) == 32
    assert out == f"{path}: written (key {data.key_id})\n"
    assert data.kcn.hex() not in out
    assert run_cli(capsys, "--check", str(path)) == (0, f"{path}: ok\n", "")


def test_keygen_out_refuses_an_existing_file_and_leaves_it_alone(capsys, tmp_path):
    path = tmp_path / "peer.yaml"
    path.write_text("precious: yes\n")
    before = snapshot(path)
    rc, out, err = run_cli(capsys, "--home-address", HOME, "--correspondent", CN, "--out", str(path))
    assert_one_line_error(rc, out, err, f"{path}: already exists")
    assert snapshot(path) == before


def test_keygen_out_refuses_an_existing_valid_key_file(capsys, tmp_path):
    path = tmp_path / "peer.yaml"
    assert run_cli(capsys, "--home-address", HOME, "--correspondent", CN, "--out", str(path))[0] == 0
    before = snapshot(path)
    rc, out, err = run_cli(capsys, "--home-address", HOME, "--correspondent", "2001:db8:0:3::2", "--out", str(path))
    assert_one_line_error(rc, out, err, "already exists")
    assert snapshot(path) == before


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--home-address", "2001:db8::zz", "--correspondent", CN], "home address '2001:db8::zz' is not an IPv6 address"),
        (["--home-address", HOME, "--correspondent", "10.0.0.1"], "correspondent '10.0.0.1' is not an IPv6 address"),
        (["--home-address", HOME, "--correspondent", "ff02::1"], "multicast"),
        (["--home-address", "fe80::1%eth0", "--correspondent", CN], "zone index"),
        (["--home-address", HOME, "--correspondent", HOME], "same address"),
        (["--home-address", HOME, "--correspondent", CN, "--kcn-octets", "16"], "under the R1 minimum of 20"),
        (["--home-address", HOME], "needs --home-address and --correspondent"),
        (["--home-address", HOME, "--correspondent", CN, "--role", "mn"], "--role goes with --check"),
        (["--check", "x.yaml", "--out", "y.yaml"], "--check does not go with --out"),
    ],
)
def test_bad_arguments_are_one_line_exit_2_and_write_nothing(capsys, tmp_path, argv, fragment):
    out_path = tmp_path / "out.yaml"
    rc, out, err = run_cli(capsys, *argv, *(["--out", str(out_path)] if "--out" not in argv and "--check" not in argv else []))
    assert_one_line_error(rc, out, err, fragment)
    assert not out_path.exists()


# ------------------------------------------------------------------ checking: every bad-input class


def _text(**overrides):
    doc = {
        "home_address": HOME,
        "correspondent": CN,
        "kcn": secrets.token_hex(20),
        "home_nonce": secrets.token_hex(8),
        "careof_nonce": secrets.token_hex(8),
    }
    doc.update(overrides)
    return "".join(f"{k}: {v}\n" for k, v in doc.items() if v is not None)


# (case id, file content (str/bytes) or a special kind, mode, expected reason fragment)
BAD_FILES = [
    ("missing", None, 0o600, "cannot read: No such file or directory"),
    ("directory", "DIR", 0o700, "not a regular file"),
    ("not-yaml", "home_address: [unclosed\n", 0o600, "not valid YAML at line"),
    ("not-a-mapping", "- a\n- b\n", 0o600, "not a YAML mapping"),
    ("empty", "", 0o600, "not a YAML mapping"),
    ("missing-key", _text(careof_nonce=None), 0o600, "missing key careof_nonce"),
    ("unknown-key", _text() + "lifetime: 10\n", 0o600, "unknown key 'lifetime'"),
    ("duplicate-key", _text() + f"kcn: {secrets.token_hex(20)}\n", 0o600, "key 'kcn' appears twice"),
    ("bad-address", _text(home_address="2001:db8::1::2"), 0o600, "home_address '2001:db8::1::2' is not an IPv6 address"),
    ("ipv4-address", _text(correspondent="192.0.2.1"), 0o600, "correspondent '192.0.2.1' is not an IPv6 address"),
    ("multicast-address", _text(correspondent="ff05::2"), 0o600, "multicast address"),
    ("same-addresses", _text(correspondent=HOME), 0o600, "are the same address"),
    ("kcn-not-hex", _text(kcn="zz" + secrets.token_hex(20)), 0o600, "kcn is not a hex string"),
    ("kcn-0x-prefix", _text(kcn="0x" + secrets.token_hex(20)), 0o600, "kcn is not a hex string"),
    ("kcn-odd-digits", _text(kcn=secrets.token_hex(20) + "a"), 0o600, "odd number of hex digits"),
    ("kcn-empty", _text(kcn='""'), 0o600, "kcn is empty"),
    ("kcn-short", _text(kcn=secrets.token_hex(19)), 0o600, "kcn is 19 octets, R1 needs at least 20"),
    ("kcn-one-octet", _text(kcn="aa" * 20), 0o600, "one repeated octet"),
    ("kcn-pattern", _text(kcn="0102" * 10), 0o600, "repeats a pattern of 2 octets"),
    ("kcn-pattern-8", _text(kcn="deadbeefcafebabe" * 3), 0o600, "repeats a pattern of 8 octets"),
    ("kcn-test-vector", _text(kcn="0102030405060708090a0b0c0d0e0f1011121314"), 0o600, "arithmetic progression"),
    ("kcn-monotone", _text(kcn="01030710162a2b2c40415a5b6d7f8091a2b3c4f0"), 0o600, "monotone"),
    ("kcn-few-octets", _text(kcn="0001020001000200010203000102000100020003"), 0o600, "only 4 distinct octet values"),
    ("kcn-ascii", _text(kcn=b"The quick brown fox jumps over".hex()), 0o600, "printable ASCII"),
    ("home-nonce-short", _text(home_nonce=secrets.token_hex(7)), 0o600, "home_nonce is 7 octets, it must be 8"),
    ("careof-nonce-long", _text(careof_nonce=secrets.token_hex(9)), 0o600, "careof_nonce is 9 octets, it must be 8"),
    ("nonce-not-hex", _text(home_nonce="11111111111111xy"), 0o600, "home_nonce is not a hex string"),
    ("group-readable", _text(), 0o640, "mode 0640 lets group or others access the keys"),
    ("group-writable", _text(), 0o620, "mode 0620"),
    ("other-readable", _text(), 0o604, "mode 0604"),
    ("other-executable", _text(), 0o601, "mode 0601"),
    ("not-utf8", b"home_address: \xff\xfe\n", 0o600, "not UTF-8"),
    ("too-large", "# " + "x" * 70000 + "\n" + _text(), 0o600, "too large"),
]


def _make(tmp_path, content, mode):
    path = tmp_path / "peer.yaml"
    if content is None:
        return path
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("case, content, mode, reason", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_r1_r3_check_refuses_each_bad_file_class_in_one_line(capsys, tmp_path, case, content, mode, reason):
    """R1/R3: the API and the CLI refuse the file, name it and the reason, change nothing, show no secret."""
    path = _make(tmp_path, content, mode)
    before = snapshot(path)
    with pytest.raises(keys.ConfigError) as api_err:
        keyfiles.load_preconfigured(path)
    assert str(api_err.value).startswith(f"{path}: ") and reason in str(api_err.value)
    rc, out, err = run_cli(capsys, "--check", str(path))
    assert_one_line_error(rc, out, err, f"testbed: error: {path}: ", reason)
    assert snapshot(path) == before
    if isinstance(content, str):
        for line in content.splitlines():
            key, _, value = line.partition(": ")
            if key in ("kcn", "home_nonce", "careof_nonce") and len(value) > 4:
                assert value not in err, "secret echoed"
    # generating over the bad file is refused too, and it stays as it was
    if content is not None:
        rc, out, err = run_cli(capsys, "--home-address", HOME, "--correspondent", CN, "--out", str(path))
        assert_one_line_error(rc, out, err, "already exists")
        assert snapshot(path) == before


def test_check_stops_at_the_first_bad_file(capsys, tmp_path):
    good = tmp_path / "good.yaml"
    assert run_cli(capsys, "--home-address", HOME, "--correspondent", CN, "--out", str(good))[0] == 0
    bad = _make(tmp_path, _text(), 0o644)
    rc, out, err = run_cli(capsys, "--check", str(good), str(bad))
    assert_one_line_error(rc, out, err, f"{bad}: mode 0644")


# ------------------------------------------------------------------ checking sets (R10)


def _gen(capsys, path, home=HOME, cn=CN):
    assert run_cli(capsys, "--home-address", home, "--correspondent", cn, "--out", str(path))[0] == 0
    return path


def test_r10_check_accepts_distinct_peers(capsys, tmp_path):
    a = _gen(capsys, tmp_path / "a.yaml", cn="2001:db8:0:3::1")
    b = _gen(capsys, tmp_path / "b.yaml", cn="2001:db8:0:3::2")
    assert run_cli(capsys, "--check", str(a), str(b), "--role", "mn") == (0, f"{a}: ok\n{b}: ok\n", "")


def test_r10_check_refuses_a_kcn_shared_between_two_files(capsys, tmp_path):
    a = _gen(capsys, tmp_path / "a.yaml", cn="2001:db8:0:3::1")
    kcn = yaml.safe_load(a.read_text())["kcn"]
    b = _make(tmp_path, _text(correspondent="2001:db8:0:3::2", kcn=kcn), 0o600)
    before = (snapshot(a), snapshot(b))
    rc, out, err = run_cli(capsys, "--check", str(a), str(b))
    assert_one_line_error(rc, out, err, f"{a} and {b} hold the same Kcn", "R10")
    assert kcn not in err
    assert (snapshot(a), snapshot(b)) == before


def test_check_refuses_the_same_pair_twice(capsys, tmp_path):
    a = _gen(capsys, tmp_path / "a.yaml")
    b = _gen(capsys, tmp_path / "b.yaml")
    rc, out, err = run_cli(capsys, "--check", str(a), str(b))
    assert_one_line_error(rc, out, err, f"{a} and {b} are both for home address {HOME} and correspondent {CN}")


@pytest.mark.parametrize("role, field", [("mn", "home_address"), ("cn", "correspondent")])
def test_check_role_requires_one_nodes_address_throughout(capsys, tmp_path, role, field):
    a = _gen(capsys, tmp_path / "a.yaml", home="2001:db8:0:1::1", cn="2001:db8:0:3::1")
    b = _gen(capsys, tmp_path / "b.yaml", home="2001:db8:0:1::2", cn="2001:db8:0:3::2")
    rc, out, err = run_cli(capsys, "--check", str(a), str(b), "--role", role)
    assert_one_line_error(rc, out, err, f"differ in {field}")


def test_the_real_command_prints_one_line_and_exits_2(tmp_path):
    """Through the interpreter, not main(): no traceback, exit status 2, stderr one line."""
    path = _make(tmp_path, _text(kcn="00" * 20), 0o600)
    proc = subprocess.run(
        [sys.executable, "-m", "testbed.cli", "keygen", "--check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"testbed: error: {path}: Kcn is one repeated octet (low entropy)\n"
