"""Run ids and the tag every root-namespace name of a run carries.

A run id is 4 hex digits; its tag is ``m6`` + run id (6 characters). Bridges are named
tag + segment (``m6c0dea1``) and Mininet names their ports ``<bridge>-eth<N>``
(``m6c0dea1-eth2``), all within Linux's 15-character limit. Namespaces of the nodes are
anonymous (held by the node shells); their pids are in the run's state file.
"""

from __future__ import annotations

import re
import secrets

TAG_PREFIX = "m6"
IFNAMSIZ = 15
RUN_ID_RE = re.compile(r"^[0-9a-f]{4}$")
# A root-namespace interface of some run: tag, segment (1-3 alnum), optional Mininet port suffix.
TAGGED_IFNAME_RE = re.compile(r"^m6([0-9a-f]{4})[a-z0-9]{1,3}(?:-eth[0-9]+)?$")


def new_run_id() -> str:
    return secrets.token_hex(2)


def tag_of(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise ValueError(f"bad run id {run_id!r}")
    return TAG_PREFIX + run_id


def bridge_name(run_id: str, segment: str) -> str:
    name = tag_of(run_id) + segment
    # Room for Mininet's "-ethNN" port names on that bridge.
    if len(name) + len("-eth99") > IFNAMSIZ:
        raise ValueError(f"segment name {segment!r} is too long for a bridge name")
    return name


def run_id_of_ifname(ifname: str) -> str | None:
    """The run id in a tagged root-namespace interface name, or None if it is not ours."""
    match = TAGGED_IFNAME_RE.match(ifname)
    return match.group(1) if match else None
