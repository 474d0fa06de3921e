"""The agent's keep_warm_ms timer (testbed/agent/daemon.py ``_on_rehearsal``), without
sockets and without waiting: each call is what the event loop does when the timer fires.
Rehearsals run once the agent has been idle for the interval, never two within it, an input
puts them off, and a rehearsal that raises is logged once and ends the rehearsals."""

from __future__ import annotations

import asyncio
import time

import pytest

from testbed.agent.daemon import Agent
from testbed.agent.eventlog import EventLog, read_typed_events
from testbed.agent.events import InternalError

INTERVAL_MS = 2


class Counting:
    def __init__(self, fail_at: int | None = None) -> None:
        self.runs = 0
        self.fail_at = fail_at

    def run(self) -> int:
        self.runs += 1
        if self.runs == self.fail_at:
            raise RuntimeError("rehearsal broke")
        return 1


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()  # only its timers are used: call_at, never run
    yield loop
    loop.close()


def _agent(tmp_path, loop, rehearsal, woke_ns: int) -> Agent:
    agent = Agent.__new__(Agent)  # only what the timer uses: no configuration, no sockets
    agent._rehearsal = rehearsal
    agent._keep_warm_ns = INTERVAL_MS * 1_000_000
    agent._woke_ns = woke_ns
    agent._rehearsal_timer = None
    agent._loop = loop
    agent.log = EventLog(tmp_path / "events.jsonl", "cn")
    return agent


def test_an_idle_agent_rehearses_and_the_next_one_is_an_interval_later(tmp_path, loop):
    rehearsal = Counting()
    agent = _agent(tmp_path, loop, rehearsal, woke_ns=time.monotonic_ns() - 10 * INTERVAL_MS * 1_000_000)
    before = time.monotonic()
    agent._on_rehearsal()
    assert rehearsal.runs == 1
    assert agent._rehearsal_timer.when() >= before + INTERVAL_MS / 1000  # never two within the interval
    agent._rehearsal_timer.cancel()


def test_an_input_within_the_interval_puts_the_rehearsal_off_until_an_interval_after_it(tmp_path, loop):
    rehearsal = Counting()
    woke = time.monotonic_ns()  # an input just now
    agent = _agent(tmp_path, loop, rehearsal, woke_ns=woke)
    agent._on_rehearsal()
    assert rehearsal.runs == 0
    assert agent._rehearsal_timer.when() == pytest.approx((woke + INTERVAL_MS * 1_000_000) / 1e9, abs=1e-6)
    agent._rehearsal_timer.cancel()


def test_a_failing_rehearsal_is_logged_once_and_the_rehearsals_stop(tmp_path, loop):
    rehearsal = Counting(fail_at=2)
    agent = _agent(tmp_path, loop, rehearsal, woke_ns=0)  # idle since long ago
    agent._on_rehearsal()
    assert rehearsal.runs == 1 and agent._rehearsal_timer is not None
    agent._rehearsal_timer.cancel()
    agent._on_rehearsal()  # the timer firing again: this one raises
    assert rehearsal.runs == 2 and agent._rehearsal_timer is None  # no further rehearsal scheduled
    agent.log.close()
    errors = [e for e in read_typed_events(tmp_path / "events.jsonl") if isinstance(e, InternalError)]
    assert [(e.where, e.error) for e in errors] == [("rehearsal", "RuntimeError: rehearsal broke")]
