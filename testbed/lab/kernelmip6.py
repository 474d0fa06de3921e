"""What this host's kernel does with Mobile IPv6 packets, for ``testbed check-host``
(docs/kernels.md explains every verdict).

Two parts:

- static facts, read-only: the kernel release, the CONFIG_* options that matter, read from the
  kernel's configuration (``/proc/config.gz``, ``/boot/config-<release>`` or
  ``/lib/modules/<release>/config``), and per module (mip6, ip6_tunnel, tunnel6, xfrm6_tunnel,
  sch_netem) whether it is built in, loadable, loaded or kept out by modprobe rules;
- a behavioural probe in a THROWAWAY network namespace (``unshare --net``, plus a user
  namespace when not root): it brings up that namespace's loopback, sends hand-built packets
  ::1 -> ::1 on an IPPROTO_RAW socket and records the ICMPv6 errors each one draws. The
  namespace dies with the probe process; nothing else is touched, no module is loaded (no
  xfrm state is created, so nothing triggers the mip6 module's aliases).

Loopback is exempt from ICMPv6 rate limiting, so the probe's answers are deterministic.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import json
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time

CONFIG_OPTIONS = ("CONFIG_MODULES", "CONFIG_IPV6", "CONFIG_IPV6_MIP6", "CONFIG_XFRM", "CONFIG_IPV6_TUNNEL",
                  "CONFIG_INET6_TUNNEL", "CONFIG_INET6_XFRM_TUNNEL", "CONFIG_NET_SCH_NETEM",
                  "CONFIG_IPV6_OPTIMISTIC_DAD")
MODULES = ("mip6", "ip6_tunnel", "tunnel6", "xfrm6_tunnel", "sch_netem")
MODPROBE_DIRS = ("/etc/modprobe.d", "/run/modprobe.d", "/usr/local/lib/modprobe.d", "/usr/lib/modprobe.d",
                 "/lib/modprobe.d")
PROBE_ENV = "MIP6_PROBE_IN_THROWAWAY_NETNS"
PROBE_TIMEOUT_S = 20
WAIT_S = 0.3  # per probe packet, for its ICMPv6 error on loopback (answered within microseconds)

# ------------------------------------------------------------------ static facts (read-only)


def parse_config(text: str) -> dict[str, str]:
    """``{option: value}`` of a kernel configuration; options "is not set" are ``n``."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value.strip('"')
        elif line.startswith("# CONFIG_") and line.endswith(" is not set"):
            values[line[2:].split()[0]] = "n"
    return values


def kernel_config(release: str | None = None) -> tuple[str | None, dict[str, str]]:
    """(where the configuration was read, {option: y|m|n} for CONFIG_OPTIONS); (None, {})
    when the kernel's configuration is nowhere to be read."""
    release = release or os.uname().release
    for path in ("/proc/config.gz", f"/boot/config-{release}", f"/lib/modules/{release}/config"):
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt") as f:
                values = parse_config(f.read())
        except OSError:
            continue
        return path, {k: values.get(k, "n") for k in CONFIG_OPTIONS}
    return None, {}


def module_names(text: str, *, loaded_list: bool = False) -> set[str]:
    """Module names of ``/proc/modules`` (``loaded_list``: "name size refs deps state addr")
    or of ``modules.builtin``/``modules.dep`` ("kernel/net/ipv6/mip6.ko[: deps]")."""
    names = set()
    for line in text.splitlines():
        if not line.strip():
            continue
        name = line.split()[0] if loaded_list else os.path.basename(line.split(":")[0]).split(".ko")[0]
        names.add(name.replace("-", "_"))
    return names


def _module_names(path: str, *, loaded_list: bool = False) -> set[str] | None:
    try:
        with open(path) as f:
            return module_names(f.read(), loaded_list=loaded_list)
    except OSError:
        return None


def modprobe_rules(name: str) -> list[str]:
    """``blacklist NAME`` and ``install NAME ...`` lines of the modprobe configuration."""
    found = []
    for directory in MODPROBE_DIRS:
        for path in sorted(glob.glob(os.path.join(directory, "*.conf"))):
            try:
                with open(path) as f:
                    for line in f:
                        words = line.split("#", 1)[0].split()
                        if len(words) >= 2 and words[0] in ("blacklist", "install") \
                                and words[1].replace("-", "_") == name:
                            found.append(f"{path}: {' '.join(words)}")
            except OSError:
                pass
    return found


def module_states(release: str | None = None) -> dict[str, dict]:
    """Per module: loaded (None: the kernel has no loadable modules), built in, loadable
    (None: no module lists to read), and the modprobe rules naming it."""
    release = release or os.uname().release
    loaded = _module_names("/proc/modules", loaded_list=True)
    builtin = _module_names(f"/lib/modules/{release}/modules.builtin")
    on_disk = _module_names(f"/lib/modules/{release}/modules.dep")
    return {name: {"loaded": None if loaded is None else name in loaded,
                   "builtin": None if builtin is None else name in builtin,
                   "loadable": None if on_disk is None else name in on_disk,
                   "modprobe_rules": modprobe_rules(name)} for name in MODULES}

# ------------------------------------------------------ behavioural probe (throwaway netns only)


LOOPBACK = socket.inet_pton(socket.AF_INET6, "::1")
HAO_ADDR = socket.inet_pton(socket.AF_INET6, "2001:db8::2")
RH2_HOA = socket.inet_pton(socket.AF_INET6, "2001:db8::3")
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
IPPROTO_MH = 135


def _ipv6(nexthdr: int, payload: bytes, flow: int) -> bytes:
    return struct.pack("!IHBB16s16s", (6 << 28) | flow, len(payload), nexthdr, 64, LOOPBACK, LOOPBACK) + payload


def _dstopts(opt_type: int) -> bytes:  # PadN(4), then an 18-octet option at 8n+6 (as a HAO is)
    return bytes([59, 2, 1, 2, 0, 0, opt_type, 16]) + HAO_ADDR


def _rthdr(rh_type: int) -> bytes:  # hdrlen 2, segments left 1, one address
    return bytes([59, 2, rh_type, 1, 0, 0, 0, 0]) + RH2_HOA


def _mh(payload_proto: int = 59) -> bytes:  # a Binding Refresh Request, 8 octets
    return bytes([payload_proto, 0, 0, 0, 0, 0, 0, 0])


# name: (flow label, packet, whether a raw socket on protocol 135 is open meanwhile)
PROBES = {
    "unknown_dstopt_control": (0x1001, _ipv6(60, _dstopts(0xDE), 0x1001), False),
    "hao": (0x1002, _ipv6(60, _dstopts(201), 0x1002), False),
    "rh0_control": (0x1003, _ipv6(43, _rthdr(0), 0x1003), False),
    "rh2": (0x1004, _ipv6(43, _rthdr(2), 0x1004), False),
    "mh_no_listener": (0x1005, _ipv6(IPPROTO_MH, _mh(), 0x1005), False),
    "ip6ip6": (0x1006, _ipv6(41, _ipv6(59, b"", 0), 0x1006), False),
    "mh_with_listener": (0x1007, _ipv6(IPPROTO_MH, _mh(), 0x1007), True),
    "bad_mh_with_listener": (0x1008, _ipv6(IPPROTO_MH, _mh(payload_proto=6), 0x1008), True),
}


def _lo_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def run_probe_in_this_netns() -> dict:
    """Only in a namespace of its own (``probe_in_throwaway_netns``): {probe: ICMPv6 errors
    as "type/code@pointer"}; also the namespace's interfaces (ip6tnl0 appears when the
    ip6_tunnel module is loaded)."""
    if os.environ.get(PROBE_ENV) != "1":
        raise RuntimeError("refusing to probe outside a throwaway namespace made for it")
    _lo_up()
    time.sleep(0.05)
    sender = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    icmp = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    listener = None
    result: dict = {}
    for name, (flow, packet, needs_listener) in PROBES.items():
        if needs_listener and listener is None:
            listener = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        sender.sendto(packet, ("::1", 0))
        errors = []
        deadline = time.monotonic() + WAIT_S
        while (left := deadline - time.monotonic()) > 0 and select.select([icmp], [], [], left)[0]:
            data = icmp.recv(2048)
            if len(data) >= 12 and data[0] < 128 and struct.unpack("!I", data[8:12])[0] & 0xFFFFF == flow:
                errors.append("%d/%d@%d" % (data[0], data[1], struct.unpack("!I", data[4:8])[0]))
        result[name] = errors
    result["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    return result


def probe_in_throwaway_netns() -> dict:
    """The probe's result, run in a new network namespace; {"error": ...} when it could not run."""
    if shutil.which("unshare") is None:
        return {"error": "unshare (util-linux) is not installed"}
    wrap = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--net"]
    try:
        done = subprocess.run([*wrap, sys.executable, "-m", "testbed.lab.kernelmip6", "--in-netns"],
                              env={**os.environ, PROBE_ENV: "1"}, capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"error": f"the probe could not run: {exc}"}
    if done.returncode != 0:
        return {"error": " ".join(done.stderr.split())[-300:] or f"exit status {done.returncode}"}
    return json.loads(done.stdout)

# --------------------------------------------------------------------------- interpretation


def interpret(probe: dict) -> dict[str, str]:
    """One sentence per aspect; "unexpected: ..." when the answers fit no known kernel."""
    if "error" in probe:
        return {"probe": "not run: " + probe["error"]}
    if not probe["unknown_dstopt_control"] or not probe["rh0_control"]:
        return {"probe": "inconclusive: the control packets drew no ICMPv6 error"}
    out = {}
    hao, rh2 = probe["hao"], probe["rh2"]
    if hao == ["4/2@46"] and rh2 == ["4/0@42"]:
        out["hao_rh2"] = ("kernel without Mobile IPv6: a Home Address option or type 2 routing header draws "
                          "ICMPv6 Parameter Problem 4/2 or 4/0 (the agents drop those errors while they run)")
    elif not hao and not rh2:
        out["hao_rh2"] = ("kernel with Mobile IPv6 (CONFIG_IPV6_MIP6=y or m, module loaded or not): packets "
                          "with a Home Address option or type 2 routing header and no route-optimisation "
                          "xfrm state are dropped silently; the agents read their AF_PACKET copies, unchanged")
    else:
        out["hao_rh2"] = f"unexpected: Home Address option {hao}, type 2 routing header {rh2}"
    bad_mh = probe["bad_mh_with_listener"]
    out["mh_filter"] = ("mip6 module active: with a raw socket on protocol 135 open, a malformed Mobility "
                        "Header draws 4/0 (the agents open none)" if bad_mh == ["4/0@40"]
                        else "no kernel Mobility Header filter (mip6 module not loaded, or not built)"
                        if not bad_mh else f"unexpected: {bad_mh}")
    tun = probe["ip6ip6"]
    out["ip6ip6"] = ("no kernel handler for IPv6-in-IPv6: Parameter Problem 4/1 (the agents drop it)"
                     if tun == ["4/1@6"] else
                     "tunnel6 present (built in, or loaded with ip6_tunnel): a tunnelled packet no tunnel device "
                     "takes draws Destination Unreachable 1/4 (the HA's and MN's agents drop it)"
                     if tun == ["1/4@0"] else
                     "IPv6-in-IPv6 consumed silently (xfrm6_tunnel loaded, or a wildcard tunnel up)"
                     if not tun else f"unexpected: {tun}")
    plain = probe["mh_no_listener"]
    out["mh"] = ("Mobility Header without a listener: 4/1 as expected; a raw socket on 135 suppresses it"
                 if plain == ["4/1@6"] and not probe["mh_with_listener"]
                 else f"unexpected: {plain} / {probe['mh_with_listener']}")
    extra = [name for name in probe.get("interfaces", []) if name != "lo"]
    if extra:
        out["fresh_namespace"] = (f"a new network namespace already has {', '.join(extra)} (tunnel modules "
                                  "loaded): the lab and the agents name the interfaces they use, never list them")
    return out


def mip6_summary(config: dict[str, str], modules: dict[str, dict], verdict: dict[str, str]) -> tuple[str, str | None]:
    """The "kernel Mobile IPv6" row of check-host: (chosen, why not the first choice)."""
    option = config.get("CONFIG_IPV6_MIP6")
    loaded = modules.get("mip6", {}).get("loaded")
    probe = verdict.get("hao_rh2") or verdict.get("probe", "")
    if option is None and probe.startswith("kernel without"):  # no configuration to read: the probe tells
        option, state = "n", "not in this kernel (the probe; no kernel configuration to read)"
    elif option is None and probe.startswith("kernel with "):
        option, state = "probe", "in this kernel (the probe; no kernel configuration to read)"
    else:
        state = {"y": "built in (CONFIG_IPV6_MIP6=y)", "m": "module (CONFIG_IPV6_MIP6=m"
                 + (", loaded)" if loaded else ", not loaded)" if loaded is False else ")"),
                 "n": "not in this kernel (CONFIG_IPV6_MIP6 not set)"}.get(option or "",
                                                                         "unknown (no kernel configuration)")
    if option in ("y", "m", "probe"):
        return (f"{state}: not used, the agents work in user space; HAO/RH2 packets are dropped silently by the "
                "IPv6 core, the agents read them from AF_PACKET", None if "unexpected" not in probe else probe)
    return f"{state}: signalling and data plane in user space", None if "unexpected" not in probe else probe


def report() -> dict:
    """Everything check-host prints about the kernel."""
    release = os.uname().release
    source, config = kernel_config(release)
    modules = module_states(release)
    probe = probe_in_throwaway_netns()
    return {"release": release, "config_source": source, "config": config, "modules": modules, "probe": probe,
            "verdict": interpret(probe)}


if __name__ == "__main__":
    if "--in-netns" in sys.argv:
        print(json.dumps(run_probe_in_this_netns()))
        sys.exit(0)
    print(json.dumps(report(), indent=1))
