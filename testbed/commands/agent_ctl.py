"""``testbed agent-ctl SOCKET CMD [NAME=VALUE ...]``: talk to a running agent."""

from __future__ import annotations

import json

from testbed.errors import TestbedError

COMMANDS = ("status", "bindings", "bul", "probe_start", "probe_stop", "reload", "flush")


def add_parser(sub) -> None:
    p = sub.add_parser("agent-ctl", help="query or command a running agent through its control socket")
    p.add_argument("socket", help="the agent's control socket")
    p.add_argument("cmd", choices=COMMANDS)
    p.add_argument("args", nargs="*", metavar="NAME=VALUE", help="arguments, e.g. home=2001:db8:1::100 rate=100")
    p.set_defaults(func=run)


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def run(args) -> int:
    from testbed.agent.control import request

    command = {"cmd": args.cmd}
    for item in args.args:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise TestbedError(f"argument {item!r} is not NAME=VALUE")
        command[name] = _value(value)
    try:
        answer = request(args.socket, command)
    except (OSError, ValueError) as exc:
        raise TestbedError(f"{args.socket}: cannot talk to the agent: {exc}") from None
    print(json.dumps(answer, indent=2))
    return 0 if answer.get("ok") else 1
