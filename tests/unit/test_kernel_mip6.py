"""What check-host says about the kernel's Mobile IPv6 (testbed/lab/kernelmip6.py,
docs/kernels.md): the configuration parser, the verdicts on probe answers recorded on a kernel
without Mobile IPv6 (this CI machine's) and on a CONFIG_IPV6_MIP6=m kernel (Debian's
user-mode Linux 6.1, modular like Ubuntu's), and the probe itself on this kernel."""

from __future__ import annotations

import os
import shutil

import pytest

from testbed.lab import kernelmip6
from testbed.lab.kernelmip6 import interpret, kernel_config, parse_config, probe_in_throwaway_netns

WITHOUT_MIP6 = {"unknown_dstopt_control": ["4/2@46"], "hao": ["4/2@46"], "rh0_control": ["4/0@42"],
                "rh2": ["4/0@42"], "mh_no_listener": ["4/1@6"], "ip6ip6": ["4/1@6"], "mh_with_listener": [],
                "bad_mh_with_listener": [], "interfaces": ["lo"]}
# CONFIG_IPV6_MIP6=m, mip6 not loaded / loaded / ip6_tunnel loaded (recorded answers)
MIP6_NOT_LOADED = {**WITHOUT_MIP6, "hao": [], "rh2": []}
MIP6_LOADED = {**MIP6_NOT_LOADED, "bad_mh_with_listener": ["4/0@40"]}
MIP6_AND_IP6_TUNNEL = {**MIP6_LOADED, "ip6ip6": ["1/4@0"], "interfaces": ["ip6tnl0", "lo"]}


def test_config_parser_reads_set_modular_and_unset_options():
    text = "CONFIG_IPV6=y\nCONFIG_IPV6_MIP6=m\n# CONFIG_NET_SCH_NETEM is not set\nCONFIG_X=\"a b\"\n"
    assert parse_config(text) == {"CONFIG_IPV6": "y", "CONFIG_IPV6_MIP6": "m", "CONFIG_NET_SCH_NETEM": "n",
                                  "CONFIG_X": "a b"}


def test_verdicts_tell_the_kernels_apart():
    without = interpret(WITHOUT_MIP6)
    assert without["hao_rh2"].startswith("kernel without Mobile IPv6")
    assert without["ip6ip6"].startswith("no kernel handler") and "fresh_namespace" not in without
    modular = interpret(MIP6_NOT_LOADED)
    assert modular["hao_rh2"].startswith("kernel with Mobile IPv6") and "dropped silently" in modular["hao_rh2"]
    assert modular["mh_filter"].startswith("no kernel Mobility Header filter")
    assert interpret(MIP6_LOADED)["mh_filter"].startswith("mip6 module active")
    tunnel = interpret(MIP6_AND_IP6_TUNNEL)
    assert "1/4" in tunnel["ip6ip6"] and "ip6tnl0" in tunnel["fresh_namespace"]


def test_answers_that_fit_no_kernel_are_reported_not_guessed():
    assert interpret({**WITHOUT_MIP6, "hao": ["4/2@46"], "rh2": []})["hao_rh2"].startswith("unexpected")
    assert interpret({**WITHOUT_MIP6, "rh0_control": []}) == {
        "probe": "inconclusive: the control packets drew no ICMPv6 error"}
    assert interpret({"error": "no unshare"}) == {"probe": "not run: no unshare"}


def test_the_probe_refuses_to_run_in_this_namespace(monkeypatch):
    monkeypatch.delenv(kernelmip6.PROBE_ENV, raising=False)
    with pytest.raises(RuntimeError, match="throwaway namespace"):
        kernelmip6.run_probe_in_this_netns()


def test_the_probe_on_this_kernel_agrees_with_its_configuration():
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("the probe needs root (or user namespaces) and unshare")
    source, config = kernel_config()
    probe = probe_in_throwaway_netns()
    assert "error" not in probe, probe
    verdict = interpret(probe)
    assert not any(v.startswith(("unexpected", "inconclusive")) for v in verdict.values()), verdict
    if source is not None:
        with_mip6 = config["CONFIG_IPV6_MIP6"] in ("y", "m")
        assert verdict["hao_rh2"].startswith("kernel with Mobile IPv6" if with_mip6 else "kernel without Mobile IPv6")
    # the control packets drew their errors; the MH with a listener none
    assert probe["unknown_dstopt_control"] == ["4/2@46"] and probe["mh_with_listener"] == []


def test_module_lists_are_read_in_their_own_formats():
    proc = "mip6 16384 0 - Live 0x0000000000000000\nip6_tunnel 45056 0 - Live 0x0000000000000000\n"
    assert kernelmip6.module_names(proc, loaded_list=True) == {"mip6", "ip6_tunnel"}
    dep = "kernel/net/ipv6/mip6.ko: kernel/lib/crc-ccitt.ko\nkernel/net/sched/sch_netem.ko.zst:\n"
    assert kernelmip6.module_names(dep) == {"mip6", "sch_netem"}
    assert kernelmip6.module_names("kernel/net/ipv6/tunnel6.ko\n") == {"tunnel6"}


def test_the_mip6_row_follows_the_configuration_or_else_the_probe():
    modular = {"CONFIG_IPV6_MIP6": "m"}
    loaded = {"mip6": {"loaded": True}}
    chosen, unexpected = kernelmip6.mip6_summary(modular, loaded, interpret(MIP6_LOADED))
    assert chosen.startswith("module (CONFIG_IPV6_MIP6=m, loaded)") and unexpected is None
    chosen, _ = kernelmip6.mip6_summary({"CONFIG_IPV6_MIP6": "n"}, {}, interpret(WITHOUT_MIP6))
    assert chosen.startswith("not in this kernel (CONFIG_IPV6_MIP6 not set)")
    # no configuration to read (a user-mode Linux kernel has none): the probe decides
    chosen, _ = kernelmip6.mip6_summary({}, {}, interpret(MIP6_NOT_LOADED))
    assert chosen.startswith("in this kernel (the probe") and "dropped silently" in chosen
    chosen, _ = kernelmip6.mip6_summary({}, {}, interpret(WITHOUT_MIP6))
    assert chosen.startswith("not in this kernel (the probe")
