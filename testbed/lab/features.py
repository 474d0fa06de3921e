"""Kernel and tool features the lab needs, detected by trying them, and what it chose.

Each decision is a :class:`Feature`: what was chosen, and when something is missing a
message naming it and the replacement. The lab logs them (a missing feature as a warning)
and keeps them in ``lab.features``; ``testbed lab`` prints them.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from dataclasses import dataclass

from testbed.errors import ConfigError
from testbed.lab import netem
from testbed.lab.daemons import probe_radvd_intervals

log = logging.getLogger("testbed.lab")

DELAY_BACKENDS = ("auto", "netem", "delayline")
FALLBACK_RA_INTERVALS = (3.0, 4.0, 3.0)  # RFC 4861 minimums: MinRtrAdvInterval 3, Max 4


@dataclass(frozen=True)
class Feature:
    name: str
    chosen: str
    missing: str | None = None  # what is missing and why the choice differs from the best

    def describe(self) -> str:
        text = f"{self.name}: {self.chosen}"
        return f"{text} ({self.missing})" if self.missing else text

    def report(self) -> None:
        (log.warning if self.missing else log.info)("%s", self.describe())


def choose_delay_backend(requested: str) -> Feature:
    """netem where the kernel has it, else the user-space delay line."""
    if requested not in DELAY_BACKENDS:
        raise ConfigError(f"delay_backend={requested!r} is not one of {', '.join(DELAY_BACKENDS)}")
    if requested == "delayline":
        return Feature("link delay", "delayline (user-space delay line, as requested)")
    if netem.netem_available():
        return Feature("link delay", "netem")
    detail = netem.netem_probe_detail()
    if requested == "netem":
        raise ConfigError("delay_backend=netem: the kernel has no netem qdisc"
                          + (f" (tc: {detail})" if detail else ""))
    return Feature("link delay", "delayline",
                   netem.NETEM_MISSING_MESSAGE)


def choose_ra_intervals(min_interval: float, max_interval: float, min_delay: float,
                        user_set: bool) -> tuple[Feature, tuple[float, float, float]]:
    """The RA intervals to use: the requested ones if radvd accepts them.

    If radvd rejects the defaults, fall back to the RFC 4861 minimums (slow movement
    detection) with a warning; if it rejects intervals the user asked for, that is a
    ConfigError naming the parameters.
    """
    probe = probe_radvd_intervals(min_interval, max_interval, min_delay)
    wanted = (min_interval, max_interval, min_delay)
    text = (f"MinRtrAdvInterval {min_interval:g} s, MaxRtrAdvInterval {max_interval:g} s, "
            f"MinDelayBetweenRAs {min_delay:g} s")
    if probe.accepted:
        return Feature("router advertisements", f"radvd {probe.version}: {text}"), wanted
    if user_set:
        raise ConfigError(f"ra_min_interval/ra_max_interval/ra_min_delay: radvd {probe.version} "
                          f"rejects {text}: {probe.detail}")
    fallback = FALLBACK_RA_INTERVALS
    return (Feature("router advertisements",
                    f"radvd {probe.version}: MinRtrAdvInterval {fallback[0]:g} s, "
                    f"MaxRtrAdvInterval {fallback[1]:g} s",
                    f"radvd {probe.version} does not accept Mobile IPv6 intervals ({text}: "
                    f"{probe.detail}); movement detection will take seconds"),
            fallback)


@functools.cache
def optimistic_dad_available() -> bool:
    """Whether the kernel has optimistic DAD (its sysctl can be set in a fresh namespace)."""
    try:
        done = subprocess.run(["unshare", "--net", "sysctl", "-q", "-w",
                               "net.ipv6.conf.default.optimistic_dad=1"],
                              capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def choose_dad() -> Feature:
    if optimistic_dad_available():
        return Feature("duplicate address detection on mobile nodes",
                       "optimistic DAD (optimistic_dad=1, use_optimistic=1)")
    return Feature("duplicate address detection on mobile nodes", "off (accept_dad=0)",
                   "the kernel has no optimistic DAD (net.ipv6.conf.*.optimistic_dad, "
                   "CONFIG_IPV6_OPTIMISTIC_DAD); DAD is turned off on mobile nodes instead so "
                   "a new care-of address is usable at once")


def kernel_mip6(kernel: dict) -> Feature:
    """Whether the kernel has Mobile IPv6 (CONFIG_IPV6_MIP6), from ``kernelmip6.report()``.
    The agents work in user space either way (docs/kernels.md)."""
    from testbed.lab.kernelmip6 import mip6_summary

    chosen, unexpected = mip6_summary(kernel["config"], kernel["modules"], kernel["verdict"])
    return Feature("kernel Mobile IPv6", chosen, unexpected)


def tunnel6(kernel: dict) -> Feature:
    """What the kernel does with IPv6-in-IPv6 no tunnel device takes (the HA's reverse tunnel)."""
    config, modules = kernel["config"], kernel["modules"]
    parts = [f"CONFIG_IPV6_TUNNEL={config.get('CONFIG_IPV6_TUNNEL', '?')}",
             f"CONFIG_INET6_TUNNEL={config.get('CONFIG_INET6_TUNNEL', '?')}"]
    loaded = [name for name in ("ip6_tunnel", "tunnel6") if modules.get(name, {}).get("loaded")]
    if loaded:
        parts.append("loaded: " + ", ".join(loaded))
    verdict = kernel["verdict"].get("ip6ip6") or kernel["verdict"].get("probe", "")
    return Feature("IPv6-in-IPv6 (ip6_tunnel)", f"{verdict} ({'; '.join(parts)})",
                   verdict if verdict.startswith("unexpected") else None)


IP6TABLES_TOOLS = (("ip6tables-legacy", "iptables (legacy)"), ("ip6tables", "iptables"),
                   ("ip6tables-nft", "nftables (ip6tables-nft)"))


def packet_filter() -> Feature:
    """Which ip6tables the agents' ICMPv6 Parameter Problem rules go through: the first that
    takes a rule in a throwaway network namespace (legacy tables where the kernel has them,
    else nftables)."""
    import os
    import shutil

    name = "packet filter (agents' ICMPv6 rules)"
    tried = []
    unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]
    for tool, label in IP6TABLES_TOOLS:
        if shutil.which(tool) is None:
            continue
        try:
            done = subprocess.run([*unshare, tool, "-w", "-A", "OUTPUT", "-p", "ipv6-icmp", "--icmpv6-type",
                                   "4/0", "-j", "DROP"], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            tried.append(f"{tool}: {exc}")
            continue
        if done.returncode == 0:
            fallback = None if tool == "ip6tables-legacy" else "legacy iptables tables are not usable here: " + (
                "; ".join(tried) or "ip6tables-legacy not installed")
            return Feature(name, f"{label}: {tool}", fallback)
        tried.append(f"{tool}: {' '.join(done.stderr.split())[:120]}")
    return Feature(name, "none", "no ip6tables took a rule (" + ("; ".join(tried) or "none installed")
                   + "): the agents cannot start (install iptables)")
