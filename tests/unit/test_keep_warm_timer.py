"""The agent's keep_warm_ms timer (testbed/agent/daemon.py ``_on_rehearsal``), without
sockets: rehearsals run while the agent is idle, an input puts them off, and a rehearsal that
raises is logged once and ends the rehearsals, the agent going on."""

from __future__ import annotations

import asyncio
import time

from testbed.agent.daemon import Agent
from testbed.agent.eventlog import EventLog, read_typed_events
from testbed.agent.events import InternalError


class Counting:
    def __init__(self, fail_at: int | None = None) -> None:
        self.runs = 0
        self.fail_at = fail_at

    def run(self) -> int:
        self.runs += 1
        if self.runs == self.fail_at:
            raise RuntimeError("rehearsal broke")
        return 1


def _agent(tmp_path, rehearsal, keep_warm_ms: float) -> Agent:
    agent = Agent.__new__(Agent)  # only what the timer uses: no configuration, no sockets
    agent._rehearsal = rehearsal
    agent._keep_warm_ns = int(keep_warm_ms * 1e6)
    agent._woke_ns = time.monotonic_ns()
    agent._rehearsal_timer = None
    agent.log = EventLog(tmp_path / "events.jsonl", "cn")
    return agent


async def _run_for(agent: Agent, seconds: float, inputs_every: float | None = None) -> None:
    agent._loop = asyncio.get_running_loop()
    agent._rehearsal_timer = agent._loop.call_later(agent._keep_warm_ns / 1e9, agent._on_rehearsal)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(inputs_every or 0.01)
        if inputs_every:
            agent._woke_ns = time.monotonic_ns()  # what an input does
    if agent._rehearsal_timer is not None:
        agent._rehearsal_timer.cancel()


def test_rehearsals_run_while_idle(tmp_path):
    rehearsal = Counting()
    agent = _agent(tmp_path, rehearsal, 2)
    asyncio.run(_run_for(agent, 0.3))
    assert 10 <= rehearsal.runs <= 0.3 / 0.002 + 1  # some, and never two within 2 ms


def test_inputs_more_often_than_the_interval_put_every_rehearsal_off(tmp_path):
    rehearsal = Counting()
    agent = _agent(tmp_path, rehearsal, 50)
    asyncio.run(_run_for(agent, 0.4, inputs_every=0.005))
    assert rehearsal.runs == 0


def test_a_failing_rehearsal_is_logged_once_and_the_rehearsals_stop(tmp_path):
    rehearsal = Counting(fail_at=3)
    agent = _agent(tmp_path, rehearsal, 1)
    asyncio.run(_run_for(agent, 0.2))
    agent.log.close()
    assert rehearsal.runs == 3 and agent._rehearsal_timer is None
    errors = [e for e in read_typed_events(tmp_path / "events.jsonl") if isinstance(e, InternalError)]
    assert [(e.where, e.error) for e in errors] == [("rehearsal", "RuntimeError: rehearsal broke")]
