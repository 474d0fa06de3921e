"""``testbed kbm``: tokens and Kbm (R2) for preconfigured data and a care-of address, computed here
independently with hmac/hashlib; the derived secrets printed only with --show-secrets; Kcn and
the nonces never printed; bad input = one line, exit 2."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re

import pytest

from testbed.cli import main
from testbed.mip6 import keys
from testbed.storage import keyfiles

HOME = "2001:db8:0:1::1234"
CN = "2001:db8:0:3::1"
COA = "2001:db8:0:2::1234"


@pytest.fixture
def keyfile(tmp_path):
    data = keyfiles.write_new(tmp_path / "pair.yaml", keys.generate(HOME, CN))
    assert os.stat(data.source).st_mode & 0o777 == 0o600
    return data


def expected(data, coa: str) -> dict:
    """RFC 6275 5.2.5 straight from the formulas."""
    home_token = hmac.new(data.kcn, ipaddress.IPv6Address(HOME).packed + data.home_nonce + b"\0", hashlib.sha1).digest()[:8]
    careof_token = hmac.new(data.kcn, ipaddress.IPv6Address(coa).packed + data.careof_nonce + b"\1",
                            hashlib.sha1).digest()[:8]
    return {
        "home_token": home_token.hex(),
        "careof_token": careof_token.hex(),
        "kbm": hashlib.sha1(home_token + careof_token).hexdigest(),
        "kbm_dereg": hashlib.sha1(home_token).hexdigest(),
    }


def assert_no_secrets(text: str, data) -> None:
    for secret in (data.kcn, data.home_nonce, data.careof_nonce):
        assert secret.hex() not in text.lower()


def test_kbm_json(keyfile, capsys):
    assert main(["kbm", "--keys", keyfile.source, "--coa", COA, "--json", "--show-secrets"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    got = json.loads(out)
    assert {k: got[k] for k in ("home_token", "careof_token", "kbm", "kbm_dereg")} == expected(keyfile, COA)
    assert (got["home_address"], got["correspondent"], got["careof_address"]) == (HOME, CN, COA)
    assert got["key_id"] == keyfile.key_id
    assert_no_secrets(out, keyfile)


def test_kbm_text(keyfile, capsys):
    assert main(["kbm", "--keys", keyfile.source, "--coa", COA, "--show-secrets"]) == 0
    out = capsys.readouterr().out
    want = expected(keyfile, COA)
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in out.splitlines())
    assert lines["home keygen token"] == want["home_token"]
    assert lines["care-of keygen token"] == want["careof_token"]
    assert lines["Kbm"] == want["kbm"]
    assert lines["Kbm (dereg)"] == want["kbm_dereg"]
    assert_no_secrets(out, keyfile)


def test_kbm_changes_with_the_careof_address_but_not_the_dereg_kbm(keyfile, capsys):
    main(["kbm", "--keys", keyfile.source, "--coa", COA, "--json", "--show-secrets"])
    first = json.loads(capsys.readouterr().out)
    main(["kbm", "--keys", keyfile.source, "--coa", "2001:db8:0:4::1234", "--json", "--show-secrets"])
    second = json.loads(capsys.readouterr().out)
    assert first["home_token"] == second["home_token"] and first["kbm_dereg"] == second["kbm_dereg"]
    assert first["careof_token"] != second["careof_token"] and first["kbm"] != second["kbm"]


@pytest.mark.parametrize("fmt", [[], ["--json"]])
def test_kbm_without_show_secrets_prints_no_token_or_key(keyfile, capsys, fmt):
    """The home token and the de-registration Kbm never change for a pair (RFC 4449): whoever
    reads them can forge de-registrations. Without --show-secrets none of the four derived
    values, nor any 16+ hex digit run that could be part of one, is printed."""
    assert main(["kbm", "--keys", keyfile.source, "--coa", COA, *fmt]) == 0
    out = capsys.readouterr().out
    for value in expected(keyfile, COA).values():
        assert value not in out and value[:16] not in out
    assert_no_secrets(out, keyfile)
    assert keyfile.key_id in out and COA in out
    if fmt:
        got = json.loads(out)
        assert not {"home_token", "careof_token", "kbm", "kbm_dereg"} & set(got)
    else:
        assert out.count("--show-secrets") == 4


def test_kbm_help_says_secrets_need_show_secrets(capsys):
    with pytest.raises(SystemExit):
        main(["kbm", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--show-secrets" in text and "only with --show-secrets" in text


def test_kbm_at_home_notes_deregistration(keyfile, capsys):
    assert main(["kbm", "--keys", keyfile.source, "--coa", HOME]) == 0
    assert "de-registration" in capsys.readouterr().out


@pytest.mark.parametrize("coa,why", [("not-an-address", "not an IPv6 address"), ("10.0.0.1", "not an IPv6 address"),
                                     ("ff02::1", "unicast"), ("::", "unicast"), ("fe80::1%eth0", "zone index")])
def test_kbm_bad_address(keyfile, capsys, coa, why):
    assert main(["kbm", "--keys", keyfile.source, "--coa", coa]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("testbed: error: --coa") and why in captured.err


def test_kbm_missing_file(tmp_path, capsys):
    assert main(["kbm", "--keys", str(tmp_path / "nope.yaml"), "--coa", COA]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.yaml" in err


def test_kbm_refuses_a_file_readable_by_others(keyfile, capsys):
    os.chmod(keyfile.source, 0o644)
    assert main(["kbm", "--keys", keyfile.source, "--coa", COA]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and keyfile.source in err and "0644" in err


def test_kbm_refuses_low_entropy_kcn(tmp_path, capsys):
    # The spec's test-vector Kcn 0102...14 is refused by the validator (R3).
    path = tmp_path / "weak.yaml"
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, (f'home_address: "{HOME}"\ncorrespondent: "{CN}"\nkcn: "0102030405060708090a0b0c0d0e0f1011121314"\n'
                  'home_nonce: "1111111111111111"\ncareof_nonce: "2222222222222222"\n').encode())
    os.close(fd)
    assert main(["kbm", "--keys", str(path), "--coa", COA]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weak.yaml" in err
    assert "0102030405060708090a0b0c0d0e0f1011121314" not in err
