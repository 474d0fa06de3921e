"""``preconfigured_dir``: a directory of key files for an MN or CN agent, listed at start-up
and on reload; and the open-files limit an agent raises for its sequence store."""

from __future__ import annotations

import resource

import pytest

from testbed.agent.config import load_agent_config, parse_agent_config
from testbed.agent.limits import raise_open_files_limit
from testbed.errors import ConfigError

CN = {"role": "cn", "address": "2001:db8:3::1", "state_dir": "st", "event_log": "ev.jsonl", "control_socket": "c.sock"}


def test_the_directory_s_key_files_come_after_the_listed_ones_in_name_order(tmp_path):
    keys = tmp_path / "peers"
    keys.mkdir()
    for name in ("b.yaml", "a.yml", ".hidden.yaml", "notes.txt", "c.yaml~"):
        (keys / name).write_text("x")
    (keys / "sub.yaml").mkdir()  # a directory named like a key file is not one
    config = parse_agent_config({**CN, "preconfigured": ["/etc/mip6/one.yaml"], "preconfigured_dir": "peers"},
                                str(tmp_path / "cn.yaml"))
    assert config.preconfigured_dir == keys
    assert [str(p) for p in config.preconfigured_paths()] == ["/etc/mip6/one.yaml", str(keys / "a.yml"),
                                                              str(keys / "b.yaml")]
    (keys / "d.yaml").write_text("x")  # listed again at each call (SIGHUP reload)
    assert config.preconfigured_paths()[-1] == keys / "d.yaml"


def test_a_missing_key_directory_is_one_line_naming_the_config(tmp_path):
    config = parse_agent_config({**CN, "preconfigured_dir": "/nonexistent/peers"}, "/etc/mip6/cn.yaml")
    with pytest.raises(ConfigError) as err:
        config.preconfigured_paths()
    assert str(err.value).startswith("/etc/mip6/cn.yaml: preconfigured_dir: cannot list /nonexistent/peers")
    assert "\n" not in str(err.value)


def test_the_ha_has_no_key_directory_and_a_bad_value_is_refused():
    with pytest.raises(ConfigError, match="unknown key 'preconfigured_dir' for role ha"):
        parse_agent_config({**CN, "role": "ha", "home_prefix": "2001:db8:3::/64", "mn_ha_keys": ["k.yaml"],
                            "preconfigured_dir": "x"}, "ha.yaml")
    with pytest.raises(ConfigError, match="preconfigured_dir: expected a path"):
        parse_agent_config({**CN, "preconfigured_dir": 7}, "cn.yaml")


def test_a_config_with_ten_thousand_key_paths_loads(tmp_path):
    paths = "\n".join(f"  - /etc/mip6/peers/mn{i:05d}.yaml" for i in range(10000))
    source = tmp_path / "cn.yaml"
    source.write_text("role: cn\naddress: 2001:db8:3::1\nstate_dir: st\nevent_log: e\ncontrol_socket: c\n"
                      f"preconfigured:\n{paths}\n")
    config = load_agent_config(source)
    assert len(config.preconfigured) == 10000 and config.preconfigured[-1].name == "mn09999.yaml"


def test_the_open_files_soft_limit_is_raised_to_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 64:
        pytest.skip(f"hard limit {hard}: nothing to raise to")
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        assert raise_open_files_limit() == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
