"""RFC 4285 MN-HA key files: loading, refusing unsafe ones, generating."""

from __future__ import annotations

import os

import pytest

from testbed.errors import ConfigError
from testbed.mip6.mnha import dump_mn_ha, generate_mn_ha, index_by_home
from testbed.storage.keyfiles import load_mn_ha
from testbed.storage.secretfiles import write_secret_text


def _write(tmp_path, name, text, mode=0o600):
    path = tmp_path / name
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_generated_association_round_trips_through_a_0600_file(tmp_path):
    sa = generate_mn_ha("2001:db8:1::100", "2001:db8:1::1")
    path = tmp_path / "mnha.yaml"
    write_secret_text(path, dump_mn_ha(sa))
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = load_mn_ha(path)
    assert (loaded.home_address, loaded.home_agent, loaded.spi, loaded.key) == (sa.home_address, sa.home_agent, sa.spi, sa.key)
    assert sa.key.hex() not in repr(loaded) + str(loaded)
    with pytest.raises(ConfigError, match="already exists"):
        write_secret_text(path, "x")


@pytest.mark.parametrize(
    "text,mode,reason",
    [
        ('home_address: "2001:db8:1::100"\nhome_agent: "2001:db8:1::1"\nspi: "4097"\nkey: "%s"\n', 0o644, "mode 0644"),
        ('home_address: "2001:db8:1::100"\nhome_agent: "2001:db8:1::1"\nspi: "12"\nkey: "%s"\n', 0o600, "reserved"),
        ('home_address: "2001:db8:1::100"\nhome_agent: "nope"\nspi: "4097"\nkey: "%s"\n', 0o600, "not an IPv6 address"),
        ('home_address: "2001:db8:1::100"\nhome_agent: "2001:db8:1::1"\nspi: "4097"\nkey: "abcd"\n', 0o600, "at least 20"),
        ('home_address: "2001:db8:1::100"\nhome_agent: "2001:db8:1::1"\nspi: "4097"\n', 0o600, "missing key key"),
        ('home_address: "2001:db8:1::100"\nhome_agent: "2001:db8:1::1"\nspi: "4097"\nkey: "%s"\n' % ("11" * 20), 0o600, "repeated"),
    ],
)
def test_unsafe_or_malformed_files_are_refused_in_one_line(tmp_path, text, mode, reason):
    key = generate_mn_ha("2001:db8:1::100", "2001:db8:1::1").key.hex()
    path = _write(tmp_path, "k.yaml", text.replace("%s", key) if "%s" in text else text, mode)
    with pytest.raises(ConfigError) as err:
        load_mn_ha(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and reason in message
    assert key not in message


def test_home_agent_refuses_two_associations_for_one_home_address():
    a = generate_mn_ha("2001:db8:1::100", "2001:db8:1::1")
    b = generate_mn_ha("2001:db8:1::100", "2001:db8:1::1")
    with pytest.raises(ConfigError, match="both for home address"):
        index_by_home([a, b])
    c = generate_mn_ha("2001:db8:1::101", "2001:db8:1::1")
    assert set(index_by_home([a, c])) == {a.home_address.packed, c.home_address.packed}
