"""``testbed agent``: run the MN, CN or HA agent of this node."""

from __future__ import annotations

from testbed.agent.config import load_agent_config


def add_parser(sub) -> None:
    p = sub.add_parser("agent", help="run a Mobile IPv6 agent (mn, cn or ha) in this node")
    p.add_argument("--config", required=True, metavar="FILE", help="the agent's YAML configuration")
    p.add_argument("--role", choices=("mn", "cn", "ha"), help="check that the configuration is for this role")
    p.set_defaults(func=run)


def run(args) -> int:
    from testbed.errors import ConfigError

    config = load_agent_config(args.config)  # checked before the agent's heavier imports
    if args.role is not None and args.role != config.role:
        raise ConfigError(f"{args.config}: role is {config.role}, not {args.role}")
    from testbed.agent.daemon import run_agent

    return run_agent(config)
