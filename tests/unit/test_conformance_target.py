"""Target files of the conformance suite (docs/conformance.md) and the verdict files both
suites write: bad target files refused with one line naming the file and the key, secrets
only in key files, and summary.json / junit.xml in the shape other tools read."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from testbed.errors import ConfigError
from testbed.experiments.conformance.target import BUILTIN, load_target, parse_target
from testbed.experiments.verdicts import EXPECTED, FAIL, NOT_APPLICABLE, PASS, Outcome, junit_xml, write_outcomes

OURS = yaml.safe_load(BUILTIN["ours"].read_text())


def test_the_builtin_target_claims_every_profile_and_loads():
    t = load_target("ours")
    assert t.name == "ours" and t.profiles == ("rfc4449", "rr", "ha", "mn") and t.restartable
    assert set(t.roles) == {"cn", "ha", "mn"} and all(r.reload for r in t.roles.values())


@pytest.mark.parametrize("change, words", [
    (lambda d: d["roles"]["cn"].__setitem__("start", ["mip6d", "--kcn", "{kcn}"]), "{kcn} is key material"),
    (lambda d: d["roles"]["cn"]["files"].__setitem__("x.conf", "key {key}"), "{key} is key material"),
    (lambda d: d["roles"]["cn"].__setitem__("start", ["mip6d", "{nope}"]), "unknown placeholder {nope}"),
    (lambda d: d.__setitem__("colour", "blue"), "unknown key 'colour'"),
    (lambda d: d["roles"].pop("ha"), "the claimed profiles need role 'ha'"),
    (lambda d: d.__setitem__("profiles", ["rfc4449", "sctp"]), "profiles: expected a list of"),
    (lambda d: d["roles"]["cn"].__setitem__("stop_signal", "USR9"), "stop_signal"),
    (lambda d: d["keys"].pop("preconfigured"), "keys.preconfigured"),
])
def test_bad_target_files_are_refused_naming_the_file_and_the_problem(change, words):
    doc = yaml.safe_load(BUILTIN["ours"].read_text())
    change(doc)
    with pytest.raises(ConfigError) as err:
        parse_target(doc, "my-stack.yaml")
    assert str(err.value).startswith("my-stack.yaml: ") and words in str(err.value)


def test_an_unknown_target_name_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no such file, and not a built-in target"):
        load_target(str(tmp_path / "missing.yaml"))


def test_verdict_files(tmp_path):
    outcomes = [Outcome("a", "R4", PASS, {"detail": "ok", "packets": ["p"]}, group="g", seconds=0.5),
                Outcome("b", "R17", EXPECTED, {"detail": "shown"}, group="g"),
                Outcome("c", "R5", FAIL, {"detail": "accepted a forgery", "events": [{"event": "x"}]}, group="g"),
                Outcome("d", "RFC 6275 9.5.1", NOT_APPLICABLE, {"detail": "not claimed"}, group="h")]
    summary = write_outcomes(tmp_path, "suite", outcomes, report="# r\n")
    assert not summary["ok"] and summary["counts"]["fail"] == 1
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert [{k: s[k] for k in ("name", "requirement", "verdict")} for s in on_disk["scenarios"]] == [
        {"name": "a", "requirement": "R4", "verdict": "pass"}, {"name": "b", "requirement": "R17", "verdict": "expected"},
        {"name": "c", "requirement": "R5", "verdict": "fail"},
        {"name": "d", "requirement": "RFC 6275 9.5.1", "verdict": "not applicable"}]
    assert on_disk["scenarios"][0]["evidence"] == {"detail": "ok", "packets": ["p"]}
    suite = ET.fromstring(junit_xml("suite", outcomes)).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert cases["c"].find("failure").get("message") == "R5: accepted a forgery"
    assert cases["d"].find("skipped") is not None and cases["b"].find("system-out").text.startswith("expected")
    assert write_outcomes(tmp_path / "ok", "s", outcomes[:2], report="")["ok"]
    with pytest.raises(ValueError):
        Outcome("e", "R1", "maybe")
