"""PID 1 of a user-mode Linux guest (scripts/kernel-probe-uml): loads the IPv6 modules step by
step and prints testbed.lab.kernelmip6's report after each, then check-host's rows; powers off.
Runs only as that guest's init (refuses otherwise)."""

import ctypes
import glob
import json
import os
import subprocess
import sys

REPO = os.environ["MIP6_REPO"]
libc = ctypes.CDLL(None, use_errno=True)


def load(pattern: str) -> None:
    found = glob.glob(f"/usr/lib/uml/modules/{os.uname().release}/kernel/{pattern}")
    if not found:
        print(f"== load {pattern}: not found", flush=True)
        return
    fd = os.open(found[0], os.O_RDONLY)
    rc = libc.syscall(313, fd, b"", 0)  # finit_module (no kmod needed)
    err = ctypes.get_errno()
    os.close(fd)
    print(f"== load {pattern}: {'ok' if rc == 0 else os.strerror(err)}", flush=True)


def report(label: str) -> None:
    done = subprocess.run([sys.executable, "-m", "testbed.lab.kernelmip6"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    if done.returncode:
        print(f"== {label}: report failed: {done.stderr[-1500:]}", flush=True)
        return
    d = json.loads(done.stdout)
    print(f"== {label}: kernel {d['release']}, configuration from {d['config_source']}", flush=True)
    print("   loaded: " + ", ".join(f"{k}={v['loaded']}" for k, v in d["modules"].items()), flush=True)
    print("   probe: " + json.dumps(d["probe"]), flush=True)
    for k, v in d["verdict"].items():
        print(f"   verdict {k}: {v}", flush=True)


if os.getpid() != 1:
    sys.exit("steps.py runs only as the init of a user-mode Linux guest (scripts/kernel-probe-uml)")
try:
    load("lib/crc-ccitt.ko*")
    load("net/ipv6/ipv6.ko*")
    report("A: mip6 not loaded")
    load("net/ipv6/mip6.ko*")
    report("B: mip6 loaded")
    load("net/ipv6/tunnel6.ko*")
    load("net/ipv6/ip6_tunnel.ko*")
    report("C: tunnel6 and ip6_tunnel loaded")
    done = subprocess.run([sys.executable, "-m", "testbed.cli", "check-host", "--seconds", "1", "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    try:
        for f in json.loads(done.stdout)["features"][:3]:
            print(f"   check-host: {f['name']}: {f['chosen']}", flush=True)
    except ValueError:
        print(f"   check-host failed: {done.stderr[-1500:]}", flush=True)
finally:
    libc.sync()
    libc.reboot(0x4321FEDC)  # RB_POWER_OFF
