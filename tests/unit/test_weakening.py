"""Test-only weakenings of the CN (testbed/mip6/weakening.py): refused in any configuration
unless the environment allows them, unknown names refused, and each one used by the broken
variants turns exactly its defence off in the engine (the rest of the engine unchanged)."""

from __future__ import annotations

import os

import pytest

from testbed.agent.config import parse_agent_config
from testbed.errors import ConfigError
from testbed.experiments.conformance.broken import BREAKS, NO_CHECK, NOT_COVERED, broken_by
from testbed.experiments.conformance.suite import REGISTRY  # the suite registers every check
from testbed.lab import craft
from testbed.mip6.cn import CorrespondentNode
from testbed.mip6.actions import Send
from testbed.mip6.events import Event
from testbed.mip6.keys import PreconfiguredData
from testbed.mip6.weakening import BY_ROLE, ENV, KEEPS_SERVING, check_names, role_of

KCN = bytes.fromhex("0102030405060708090a0b0c0d0e0f1011121314")
HOME, COA, COA2, CNA = "2001:db8:0:1::1234", "2001:db8:0:2::1234", "2001:db8:0:5::1", "2001:db8:0:3::1"
DATA = PreconfiguredData(HOME, CNA, KCN, bytes.fromhex("1111111111111111"), bytes.fromhex("2222222222222222"))
PAIR = craft.PairKeys.of(DATA)
CFG = {"role": "cn", "address": CNA, "state_dir": "st", "event_log": "ev.jsonl", "control_socket": "c.sock",
       "preconfigured": ["a.yaml"], "test_weaken": ["auth"]}


def A(t):
    return craft.a16(t)


def test_a_configuration_with_test_weaken_is_refused_without_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ConfigError, match="for tests only.*MIP6_TESTBED_ALLOW_WEAKENING=1"):
        parse_agent_config(CFG, str(tmp_path / "a.yaml"))
    monkeypatch.setenv(ENV, "yes")  # only exactly "1"
    with pytest.raises(ConfigError, match="for tests only"):
        parse_agent_config(CFG, str(tmp_path / "a.yaml"))


def test_with_the_environment_known_names_are_taken_and_unknown_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV, "1")
    assert parse_agent_config(CFG, str(tmp_path / "a.yaml")).test_weaken == frozenset({"auth"})
    with pytest.raises(ConfigError, match="'nope' is not a weakening of a cn agent"):
        parse_agent_config({**CFG, "test_weaken": ["nope"]}, str(tmp_path / "a.yaml"))
    with pytest.raises(ConfigError, match="not a weakening of a ha agent"):
        check_names("ha", ["auth"], "x")


def test_home_agent_and_mobile_node_configurations_take_their_own_weakenings_only(monkeypatch, tmp_path):
    common = {"state_dir": "st", "event_log": "ev.jsonl", "control_socket": "c.sock"}
    ha = {**common, "role": "ha", "address": "2001:db8:1::1", "home_prefix": "2001:db8:1::/64", "mn_ha_keys": ["k.yaml"]}
    mn = {**common, "role": "mn", "interfaces": ["mn-eth0"], "home_address": "2001:db8:1::100",
          "home_agent": "2001:db8:1::1", "home_prefix": "2001:db8:1::/64", "mn_ha_keys": ["mnha.yaml"]}
    source = str(tmp_path / "a.yaml")
    monkeypatch.delenv(ENV, raising=False)
    for doc, name in ((ha, "ha_auth"), (mn, "mn_brr")):
        with pytest.raises(ConfigError, match="for tests only"):
            parse_agent_config({**doc, "test_weaken": [name]}, source)
    monkeypatch.setenv(ENV, "1")
    assert parse_agent_config({**ha, "test_weaken": ["ha_auth", "ha_keeps_serving"]}, source).test_weaken == \
        frozenset({"ha_auth", "ha_keeps_serving"})
    assert parse_agent_config({**mn, "test_weaken": ["mn_brr"]}, source).test_weaken == frozenset({"mn_brr"})
    for doc, other in ((ha, "mn_brr"), (mn, "ha_auth"), (mn, "auth"), (CFG, "ha_auth"), (CFG, "mn_keeps_serving")):
        with pytest.raises(ConfigError, match=f"{other!r} is not a weakening of a {doc['role']} agent"):
            parse_agent_config({**doc, "test_weaken": [other]}, source)


def test_every_weakening_name_belongs_to_one_role():
    everything = [name for table in BY_ROLE.values() for name in table]
    assert len(everything) == len(set(everything))
    assert all(role_of(name) == role for role, table in BY_ROLE.items() for name in table)
    assert all(name.startswith(f"{role}_") for role in ("ha", "mn") for name in BY_ROLE[role])
    assert {n for n in everything if n.endswith("keeps_serving")} == KEEPS_SERVING
    with pytest.raises(ConfigError, match="--weaken nope: not a weakening of our agents"):
        role_of("nope")


def test_no_shipped_configuration_playbook_or_script_names_test_weaken():
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    for top in ("playbooks", "topologies", "scripts"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in files:
                with open(os.path.join(dirpath, name), errors="replace") as f:
                    assert "test_weaken" not in f.read(), os.path.join(dirpath, name)


def test_every_broken_variant_names_real_checks_of_its_own_role():
    checks = {c.id: c for c in REGISTRY}
    role_of_profile = {"rfc4449": "cn", "rr": "cn", "cn": "cn", "ha": "ha", "mn": "mn"}
    for name, ids in BREAKS.items():
        assert ids and set(ids) <= set(checks), name
        assert {role_of_profile[checks[i].profile] for i in ids} == {role_of(name)}, name


def test_every_weakening_breaks_a_check_or_says_why_not():
    everything = {name for table in BY_ROLE.values() for name in table}
    assert set(BREAKS) | set(NO_CHECK) == everything
    assert not set(BREAKS) & set(NO_CHECK)
    assert all(len(why) > 40 for why in NO_CHECK.values())


def test_every_check_of_every_profile_is_broken_by_a_weakening_or_says_why_not():
    ids = {c.id for c in REGISTRY}
    broken = {c for checks in BREAKS.values() for c in checks}
    assert ids - broken == set(NOT_COVERED)
    assert all(broken_by(i) for i in ids - set(NOT_COVERED))
    assert {c.profile for c in REGISTRY} == {"rfc4449", "rr", "cn", "ha", "mn"}


def _engine(*weaken):
    return CorrespondentNode(A(CNA), peers=[DATA], weaken=frozenset(weaken))


def _sent(actions):
    return [a for a in actions if isinstance(a, Send)]


def _events(actions, kind):
    return [a for a in actions if isinstance(a, Event) and a.NAME == kind]


def _bu(seq, coa=COA, key=None, **kw):
    return craft.binding_update(coa, CNA, seq=seq, home=HOME, key=key or PAIR.kbm(A(coa)), **kw)


@pytest.mark.parametrize("weaken", [(), ("auth",)])
def test_auth_weakening_accepts_a_wrong_authenticator_and_only_then(weaken):
    out = _engine(*weaken).receive(_bu(1, key=os.urandom(20)), 1)
    assert bool(_events(out, "binding_created")) == bool(weaken)


@pytest.mark.parametrize("weaken", [(), ("sequence", "r13")])  # alone, R13 catches the backward step
def test_sequence_weakening_accepts_a_replay(weaken):
    cn = _engine(*weaken)
    cn.receive(_bu(5), 1)
    cn.receive(_bu(6, coa=COA2), 2)
    out = cn.receive(_bu(5), 3)
    assert bool(_events(out, "binding_updated")) == bool(weaken)
    assert bool(_events(out, "bu_rejected")) == (not weaken)


@pytest.mark.parametrize("weaken", [(), ("bad_last",)])
def test_bad_last_weakening_honours_an_option_after_the_bad(weaken):
    alt = "2001:db8:bad::2"
    pkt = _bu(1, key=PAIR.kbm(A(alt)), careof=alt, after_bad=[craft.MIP6OptAltCoA(acoa=alt)])
    out = _engine(*weaken).receive(pkt, 1)
    assert bool(_events(out, "binding_created")) == bool(weaken)


def test_binding_error_when_the_source_is_not_the_registered_care_of_address_unless_weakened():
    for weaken, want in (((), [1]), (("be_careof",), [])):
        cn = _engine(*weaken)
        cn.receive(_bu(1), 1)
        assert not _sent(cn.receive(craft.with_home_address(COA, CNA, HOME), 2))  # the registered CoA: no error
        sent = _sent(cn.receive(craft.with_home_address(COA2, CNA, HOME), 3))
        assert [craft.read(s.packet).status for s in sent] == want


def test_an_unweakened_engine_reports_no_weakening_and_a_bad_name_is_refused():
    assert _engine()._weak is False
    with pytest.raises(ConfigError):
        _engine("no_such_defence")


@pytest.mark.parametrize("weaken", [(), ("ba_auth",)])
def test_ba_auth_weakening_leaves_the_bad_out_of_every_ba_the_ba_0_too(weaken):
    cn = _engine(*weaken)
    accepted = [craft.read(s.packet) for s in _sent(cn.receive(_bu(5), 1))]
    refused = [craft.read(s.packet) for s in _sent(cn.receive(_bu(5, coa=COA2), 2))]
    assert [(b.status, b.bad_valid(PAIR.kbm(A(COA)), A(COA), A(CNA))) for b in accepted] == [(0, not weaken)]
    assert [(b.status, b.option(craft.OPT_BAD) is None) for b in refused] == [(135, bool(weaken))]


@pytest.mark.parametrize("weaken", [(), ("hdrlen",)])
def test_hdrlen_weakening_reads_a_bu_whose_header_len_is_too_short(weaken):
    whole = craft.with_header_len(_bu(1), 0, key=PAIR.kbm(A(COA)), careof=COA, correspondent=CNA)
    out = _engine(*weaken).receive(whole, 1)
    assert bool(_events(out, "binding_created")) == bool(weaken)
    if not weaken:
        assert "MH type 5 needs 12 octets" in _events(out, "drop")[0].reason
    # the same octets with a wrong checksum: dropped either way
    broken = bytearray(whole)
    broken[-13] ^= 1
    assert not _events(_engine(*weaken).receive(bytes(broken), 1), "binding_created")


def test_keeps_serving_is_the_agents_not_the_engines():
    cn = _engine("keeps_serving")
    assert _events(cn.receive(craft.malformed_mh(COA, CNA)[0], 1), "drop")
