"""Control-socket requests the agent must answer with a clean error (issue 9): a JSON line
nested deeper than the parser's recursion limit, and ``probe_start`` arguments out of range.
The running agent is tested the same way in tests/agent/test_cn_hardening.py."""

from __future__ import annotations

import pytest

from testbed.agent.control import _parse
from testbed.agent.probes import parse_probe_request


def test_deeply_nested_request_is_a_value_error_not_a_recursion_error():
    for line in (b"[" * 50000 + b"]" * 50000, b'{"cmd": ' + b"[" * 50000 + b"]" * 50000 + b"}"):
        assert len(line) < 64 * 1024 * 2
        with pytest.raises(ValueError, match="nested too deeply"):
            _parse(line)


@pytest.mark.parametrize(
    "args, word",
    [({"rate": 1e-320}, "rate"), ({"rate": float("nan")}, "rate"), ({"rate": float("inf")}, "rate"),
     ({"rate": "100"}, "rate"), ({"rate": True}, "rate"), ({"rate": 20000}, "rate"), ({"rate": 0}, "rate"),
     ({"count": -1}, "count"), ({"count": "many"}, "count"), ({"count": 0}, "count"), ({"count": 2.5}, "count"),
     ({"count": True}, "count"), ({"home": "ff02::1"}, "home"), ({"home": "nope"}, "home"), ({"home": 5}, "home")],
)
def test_probe_start_refuses_bad_arguments(args, word):
    request = {"cmd": "probe_start", "home": "2001:db8:1::100", **args}
    with pytest.raises(ValueError) as err:
        parse_probe_request(request)
    assert str(err.value).startswith(f"{word}: ")


def test_probe_start_accepts_good_arguments():
    home, rate, count = parse_probe_request({"cmd": "probe_start", "home": "2001:db8:1::100", "rate": 0.5, "count": 3})
    assert rate == 0.5 and count == 3 and len(home) == 16
    assert parse_probe_request({"home": "2001:db8:1::100"})[1:] == (100.0, None)
