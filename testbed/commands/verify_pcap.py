"""``testbed verify-pcap``: check every Mobility Header packet of a capture.

    testbed verify-pcap PCAP [--keys FILE ...] [--mn-ha FILE ...] [--json]

For each MH packet (also inside IPv6-in-IPv6): frame, type, addresses, sequence number,
status, checksum verdict and, for BUs and BAs, the verdict on their authentication: Binding
Authorization Data with RFC 4449 preconfigured data (--keys), or RFC 4285 MN-HA
authentication of home registrations (--mn-ha) (see testbed.diag.verify).
"""

from __future__ import annotations

import json
import sys

from testbed.errors import ConfigError
from testbed.mip6 import keys

EPILOG = """\
verdicts on the authentication of BUs and BAs (column "auth"):
  valid      the authenticator matches: Binding Authorization Data with Kbm from the
             preconfigured data of the pair; or, for a home registration, RFC 4285 MN-HA
             authentication with the MN-HA key file of the pair (and its SPI)
  invalid    it does not (or the option is not the last one, or appears twice)
  absent     no authentication option
  no-key     no --keys file for this (home address, correspondent) pair, or no --mn-ha
             file for this (home address, home agent) pair
  malformed  the packet could not be decoded; the reason is shown

exit status:
  0  every Mobility Header packet decoded, no invalid verdict and no bad checksum
  1  at least one verdict invalid or malformed, or a bad checksum
  2  bad input: missing or unreadable capture, not a pcap/pcapng file,
     unsupported link type, bad keys or MN-HA key file
"""


def add_parser(sub) -> None:
    import argparse

    p = sub.add_parser(
        "verify-pcap",
        help="check the checksums and authentication of the Mobility Header packets in a capture",
        description="Decode every Mobility Header packet of a pcap/pcapng capture (Ethernet, Linux "
        "cooked or raw IPv6 link types; IPv6-in-IPv6 tunnelled ones too) and verify its checksum "
        "and, for BUs and BAs, its Binding Authorization Data with the RFC 4449 preconfigured data "
        "given by --keys, or its RFC 4285 MN-HA authentication with the key files given by --mn-ha.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pcap", metavar="PCAP", help="the capture file (pcap or pcapng, may be gzipped)")
    p.add_argument(
        "--keys",
        metavar="FILE",
        action="append",
        default=[],
        help="preconfigured data of one MN-CN pair (YAML, mode 0600); repeat for more pairs",
    )
    p.add_argument(
        "--mn-ha",
        metavar="FILE",
        action="append",
        default=[],
        help="MN-HA key file of one mobile node and its home agent (YAML, mode 0600); repeat for more",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per Mobility Header packet")
    p.set_defaults(func=run)


def run(args) -> int:
    from testbed.diag.capture import CaptureError, read_frames
    from testbed.diag.verify import KeyRing, verify_frames
    from testbed.storage.keyfiles import load_mn_ha, load_preconfigured

    items = [load_preconfigured(path) for path in args.keys]
    keys.check_distinct_pairs(items)
    associations = [load_mn_ha(path) for path in args.mn_ha]
    try:
        ring = KeyRing(items, associations)
    except ValueError as exc:
        raise ConfigError(f"--mn-ha: {exc}") from None
    try:
        records = list(verify_frames(read_frames(args.pcap), ring))
    except CaptureError as exc:
        raise ConfigError(str(exc)) from None
    if args.json:
        for record in records:
            sys.stdout.write(json.dumps(record.as_dict()) + "\n")
    else:
        _print_table(args.pcap, records)
    return 1 if any(r.failed for r in records) else 0


_STYLE = {"valid": "green", "invalid": "bold red", "malformed": "bold red", "absent": "yellow", "no-key": "yellow"}


def _print_table(source: str, records: list) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200, highlight=False)
    table = Table(title=f"Mobility Header packets in {escape(source)}", title_justify="left")
    for name, justify in (
        ("#", "right"), ("type", "left"), ("src -> dst", "left"), ("home", "left"), ("care-of", "left"),
        ("seq", "right"), ("status", "right"), ("cksum", "left"), ("auth", "left"), ("note", "left"),
    ):
        table.add_column(name, justify=justify)
    for r in records:
        path = f"{r.src} -> {r.dst}"
        if r.tunnelled:
            path += f"\n(tunnelled {r.tunnel_src} -> {r.tunnel_dst})"
        auth = r.auth or "-"
        table.add_row(
            str(r.frame),
            r.mh_type,
            path,
            r.home_address or "-",
            r.careof_address or "-",
            "-" if r.seq is None else str(r.seq),
            "-" if r.status is None else str(r.status),
            r.checksum or "-",
            f"[{_STYLE[auth]}]{auth}[/]" if auth in _STYLE else auth,
            escape(r.reason or ""),
        )
    console.print(table)
    counts: dict[str, int] = {}
    for r in records:
        if r.auth:
            counts[r.auth] = counts.get(r.auth, 0) + 1
    bad = sum(1 for r in records if r.checksum == "bad")
    summary = ", ".join(f"{n} {verdict}" for verdict, n in counts.items()) or "no BU/BA"
    console.print(f"{len(records)} Mobility Header packet(s): {summary}; {bad} bad checksum(s)")
