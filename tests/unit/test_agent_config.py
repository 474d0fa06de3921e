"""Agent configuration files: each role's keys, and one-line refusals of bad ones."""

from __future__ import annotations

import pytest

from testbed.agent.config import parse_agent_config
from testbed.errors import ConfigError

COMMON = {"state_dir": "st", "event_log": "ev.jsonl", "control_socket": "c.sock"}
MN = {**COMMON, "role": "mn", "interfaces": ["mn-eth0"], "home_address": "2001:db8:1::100",
      "home_agent": "2001:db8:1::1", "home_prefix": "2001:db8:1::/64", "correspondents": ["2001:db8:3::1"],
      "preconfigured": ["pair.yaml"], "mn_ha_keys": ["mnha.yaml"]}
CN = {**COMMON, "role": "cn", "address": "2001:db8:3::1", "preconfigured": ["a.yaml", "/etc/mip6/b.yaml"]}
HA = {**COMMON, "role": "ha", "address": "2001:db8:1::1", "home_prefix": "2001:db8:1::/64", "mn_ha_keys": ["k.yaml"]}


def test_valid_configurations_of_each_role(tmp_path):
    source = str(tmp_path / "agent.yaml")
    mn = parse_agent_config(MN, source)
    assert mn.node == "mn" and mn.interfaces == ("mn-eth0",) and str(mn.home_address) == "2001:db8:1::100"
    assert mn.preconfigured == (tmp_path / "pair.yaml",)  # relative paths are relative to the file
    cn = parse_agent_config(CN, source)
    assert [str(p) for p in cn.preconfigured] == [str(tmp_path / "a.yaml"), "/etc/mip6/b.yaml"]
    assert cn.precomputed_max_lifetime == 0xFFFF and cn.probe_port == 7777
    ha = parse_agent_config({**HA, "node": "home-agent"}, source)
    assert ha.node == "home-agent" and ha.interfaces == ()


@pytest.mark.parametrize(
    "doc, words",
    [
        ({**CN, "role": "router"}, "role"),
        ({**CN, "home_agent": "2001:db8:1::1"}, "unknown key 'home_agent'"),
        ({k: v for k, v in CN.items() if k != "address"}, "missing key 'address'"),
        ({**CN, "address": "2001:db8::zz"}, "is not an IPv6 address"),
        ({**MN, "interfaces": []}, "exactly one interface"),
        ({**MN, "interfaces": ["a", "b"]}, "exactly one interface"),
        ({**MN, "mn_ha_keys": ["a.yaml", "b.yaml"]}, "exactly one MN-HA key file"),
        ({**MN, "home_address": "2001:db8:2::100"}, "is not in home_prefix"),
        ({**HA, "address": "2001:db8:9::1"}, "is not in home_prefix"),
        ({**CN, "probe_port": 70000}, "probe_port"),
        ({**CN, "interfaces": ["a-name-longer-than-15"]}, "interfaces"),
    ],
)
def test_bad_configurations_are_refused_in_one_line(doc, words):
    with pytest.raises(ConfigError) as err:
        parse_agent_config(doc, "/etc/mip6/agent.yaml")
    message = str(err.value)
    assert message.startswith("/etc/mip6/agent.yaml: ") and words in message and "\n" not in message
