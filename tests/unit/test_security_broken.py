"""Every security scenario is shown able to fail (testbed/experiments/security/broken.py):
each has the weakenings that make it fail, of its own agent's role, or a reason why none can;
``testbed experiment security --weaken`` takes the CN's and the MN's names, and refuses the
home agent's (no scenario runs one) and unknown ones in one line, exit 2, before any lab."""

from __future__ import annotations

from testbed.cli import main
from testbed.experiments.security.broken import BROKEN_BY, EXEMPT
from testbed.experiments.security.run import scenario_names
from testbed.experiments.security.scenarios_cn import SCENARIOS
from testbed.mip6.weakening import role_of

ROLE_OF_PROFILE = {"rfc4449": "cn", "rr": "cn", "cn": "cn", "mn": "mn"}


def test_every_scenario_is_broken_by_weakenings_of_its_own_agent_or_says_why_not():
    names = scenario_names()
    assert set(BROKEN_BY) | set(EXEMPT) == set(names)
    assert not set(BROKEN_BY) & set(EXEMPT)
    assert all(len(why) > 40 for why in EXEMPT.values())
    profile = {s.id: s.profile for s in SCENARIOS}
    for name, alternatives in BROKEN_BY.items():
        assert alternatives and all(alternatives), name
        for together in alternatives:
            assert {role_of(w) for w in together} == {ROLE_OF_PROFILE[profile[name]]}, (name, together)


def test_security_refuses_a_home_agent_weakening_and_unknown_names_in_one_line(tmp_path, capsys):
    for name, said in (("ha_auth", "a home agent's weakening"), ("nope", "not a weakening of our CN or MN")):
        out = tmp_path / name
        assert main(["experiment", "security", "--weaken", name, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"--weaken {name}: {said}" in err and len(err.strip().splitlines()) == 1
        assert not out.exists()
