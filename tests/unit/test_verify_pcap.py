"""``testbed verify-pcap`` on captures built by scapy (R5, R7): valid, tampered, keyless, unauthenticated
and malformed Mobility Header packets, link types, tunnels, exit codes and bad input.

Authenticators here come straight from the RFC 6275 5.2.5/5.2.6 formulas with hmac/hashlib, not from
testbed.mip6.crypto; key files are random (the validator refuses the spec's test-vector Kcn)."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import struct

import pytest
from scapy.layers.inet6 import (
    HAO,
    MIP6MH_BA,
    MIP6MH_BU,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_HoT,
    MIP6MH_HoTI,
    MIP6OptAltCoA,
    MIP6OptBindingAuthData,
    MIP6OptNonceIndices,
)
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap, wrpcapng

from testbed.cli import main
from testbed.mip6 import keys
from testbed.storage import keyfiles

HOME, HOME2, COA, COA2 = "2001:db8:0:1::1234", "2001:db8:0:1::5678", "2001:db8:0:2::1234", "2001:db8:0:4::1234"
CN, HA = "2001:db8:0:3::1", "2001:db8:0:1::1"


# Explicit MACs: a bare Ether() would make scapy resolve the destination on the network.
ETHER = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def packed(a: str) -> bytes:
    return ipaddress.IPv6Address(a).packed


@pytest.fixture
def pair(tmp_path):
    """Preconfigured data for (HOME, CN), written 0600 by the keys module."""
    data = keyfiles.write_new(tmp_path / "home-cn.yaml", keys.generate(HOME, CN))
    assert os.stat(data.source).st_mode & 0o777 == 0o600
    return data


def kbm(data, coa: str, dereg: bool) -> bytes:
    home_token = hmac.new(data.kcn, packed(HOME) + data.home_nonce + b"\x00", hashlib.sha1).digest()[:8]
    if dereg:
        return hashlib.sha1(home_token).digest()
    careof_token = hmac.new(data.kcn, packed(coa) + data.careof_nonce + b"\x01", hashlib.sha1).digest()[:8]
    return hashlib.sha1(home_token + careof_token).digest()


def bad(auth: int) -> MIP6OptBindingAuthData:
    return MIP6OptBindingAuthData(olen=12, authenticator=auth)


def signed(make, key: bytes, coa: str, correspondent: str, after: list = ()):
    """``make(options)`` returns an MH layer; sign it as RFC 6275 5.2.6: HMAC_SHA1(Kbm, CoA | CN | MH Data)."""
    zeroed = make([bad(0), *after])
    zeroed.cksum = 0
    mh = bytes(zeroed)
    mh_data = mh[: mh.rindex(b"\x05\x0c" + bytes(12)) + 2]  # up to the authenticator, checksum zero
    auth = hmac.new(key, packed(coa) + packed(correspondent) + mh_data, hashlib.sha1).digest()[:12]
    return make([bad(int.from_bytes(auth, "big")), *after])


def bu(seq=1, lifetime=105, flags="A", extra=()):
    return lambda opts: MIP6MH_BU(seq=seq, flags=flags, mhtime=lifetime, options=[*extra, *opts])


def ba(status=0, seq=1, lifetime=105):
    return lambda opts: MIP6MH_BA(status=status, flags=0, seq=seq, mhtime=lifetime, options=list(opts))


def from_coa(coa=COA, home=HOME, dst=CN):
    return IPv6(src=coa, dst=dst) / IPv6ExtHdrDestOpt(options=[HAO(hoa=home)])  # HAO alone: scapy checksums it


def to_coa(coa=COA, home=HOME, src=CN):
    return IPv6(src=src, dst=coa) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[home])


def run_json(capsys, pcap, *keyfiles, mn_ha=()) -> tuple[int, list[dict]]:
    args = ["verify-pcap", str(pcap), "--json"]
    for k in keyfiles:
        args += ["--keys", str(k)]
    for k in mn_ha:
        args += ["--mn-ha", str(k)]
    code = main(args)
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def assert_no_secrets(text: str, data) -> None:
    for secret in (data.kcn, data.home_nonce, data.careof_nonce):
        assert secret.hex() not in text.lower()


# ------------------------------------------------------------------ the mixed capture


def mixed_frames(data):
    reg = kbm(data, COA, dereg=False)
    valid_bu = from_coa() / signed(bu(), reg, COA, CN)
    tampered = valid_bu.copy()
    tampered[MIP6MH_BU].mhtime ^= 0xFF  # one byte of the lifetime flipped ...
    tampered[MIP6MH_BU].cksum = None  # ... and the checksum recomputed
    bad_checksum = valid_bu.copy()
    bad_checksum[MIP6MH_BU].cksum = (IPv6(bytes(valid_bu))[MIP6MH_BU].cksum + 1) & 0xFFFF
    tampered_ba = to_coa() / signed(ba(seq=1), reg, COA, CN)
    tampered_ba[MIP6MH_BA].status = 128
    frames = [
        from_coa() / ICMPv6EchoRequest(),  # 1: not MH, no row
        valid_bu,  # 2
        to_coa() / signed(ba(seq=1), reg, COA, CN),  # 3: BA: CoA = its destination, correspondent = its source
        tampered,  # 4
        from_coa(home=HOME2) / signed(bu(), os.urandom(20), COA, CN),  # 5: no key for (HOME2, CN)
        from_coa() / bu(seq=2)([]),  # 6: no BAD
        bad_checksum,  # 7
        from_coa() / signed(bu(seq=3, lifetime=0), kbm(data, COA, dereg=True), COA, CN),  # 8: dereg, lifetime 0
        IPv6(src=HOME, dst=CN) / signed(bu(seq=4, lifetime=0), kbm(data, HOME, dereg=True), HOME, CN),  # 9: at home
        from_coa() / signed(bu(seq=5, extra=[MIP6OptAltCoA(acoa=COA2)]), kbm(data, COA2, False), COA2, CN),  # 10
        IPv6(src=COA, dst=HA) / IPv6(src=HOME, dst=CN) / MIP6MH_HoTI(cookie=b"c" * 8),  # 11: reverse tunnel
        IPv6(src=HOME, dst=CN, nh=135) / Raw(b"\x3b\x05\x05\x00\x00\x00" + bytes(10)),  # 12: Header Len overrun
        tampered_ba,  # 13
        to_coa() / signed(ba(status=135, seq=9, lifetime=0), reg, COA, CN),  # 14: rejection BA, registration Kbm
        from_coa() / signed(bu(seq=6), reg, COA, CN, after=[MIP6OptNonceIndices(olen=4, hni=1, coni=2)]),  # 15
    ]
    return [ETHER / f for f in frames]


@pytest.fixture
def mixed(tmp_path, pair):
    path = tmp_path / "mixed.pcap"
    wrpcap(str(path), mixed_frames(pair))
    return path


def test_verdicts_of_the_mixed_capture(mixed, pair, capsys):
    code, rows = run_json(capsys, mixed, pair.source)
    by_frame = {r["frame"]: r for r in rows}
    assert sorted(by_frame) == list(range(2, 16))  # frame 1 (ICMPv6) is not Mobility Header
    verdict = {f: (r["mh_type"], r["auth"], r["checksum"]) for f, r in by_frame.items()}
    assert verdict == {
        2: ("BU", "valid", "ok"),
        3: ("BA", "valid", "ok"),
        4: ("BU", "invalid", "ok"),
        5: ("BU", "no-key", "ok"),
        6: ("BU", "absent", "ok"),
        7: ("BU", "valid", "bad"),
        8: ("BU", "valid", "ok"),
        9: ("BU", "valid", "ok"),
        10: ("BU", "valid", "ok"),
        11: ("HoTI", None, "ok"),
        12: ("BU", "malformed", "bad"),
        13: ("BA", "invalid", "ok"),
        14: ("BA", "valid", "ok"),
        15: ("BU", "invalid", "ok"),
    }
    assert code == 1  # invalid, malformed and a bad checksum


def test_addresses_and_fields(mixed, pair, capsys):
    _, rows = run_json(capsys, mixed, pair.source)
    r = {row["frame"]: row for row in rows}
    assert (r[2]["src"], r[2]["dst"], r[2]["home_address"], r[2]["careof_address"]) == (COA, CN, HOME, COA)
    assert (r[2]["seq"], r[2]["lifetime"], r[2]["kbm"], r[2]["key_file"]) == (1, 105, "registration", pair.source)
    assert (r[3]["src"], r[3]["dst"], r[3]["home_address"], r[3]["careof_address"], r[3]["status"]) == (
        CN, COA, HOME, COA, 0)
    assert r[4]["reason"] == "authenticator does not match" and r[4]["lifetime"] == 105 ^ 0xFF
    assert r[5]["home_address"] == HOME2 and HOME2 in r[5]["reason"] and r[5]["key_file"] is None
    assert r[8]["kbm"] == "de-registration" and r[9]["kbm"] == "de-registration"
    assert (r[9]["home_address"], r[9]["careof_address"]) == (HOME, HOME)
    assert r[10]["careof_address"] == COA2
    assert r[11]["tunnelled"] and (r[11]["tunnel_src"], r[11]["tunnel_dst"]) == (COA, HA)
    assert (r[11]["src"], r[11]["dst"], r[11]["home_address"]) == (HOME, CN, HOME)
    assert not r[2]["tunnelled"] and r[2]["tunnel_src"] is None
    assert "Header Len" in r[12]["reason"]
    assert r[14]["status"] == 135 and r[14]["kbm"] == "registration" and r[14]["reason"]
    assert "not the last option" in r[15]["reason"]
    for row in rows:
        assert set(row) >= {"frame", "mh_type", "src", "dst", "home_address", "careof_address", "seq", "status",
                            "checksum", "auth", "reason", "tunnelled"}


def test_without_keys_every_authenticated_message_is_no_key(mixed, capsys):
    code, rows = run_json(capsys, mixed)
    auth = {r["frame"]: r["auth"] for r in rows}
    assert auth[2] == auth[3] == auth[4] == "no-key"
    assert auth[6] == "absent" and auth[12] == "malformed"
    assert code == 1  # still: malformed frame and bad checksum


def test_a_different_key_for_the_same_pair_makes_valid_invalid(mixed, tmp_path, capsys):
    other = keyfiles.write_new(tmp_path / "other.yaml", keys.generate(HOME, CN))
    _, rows = run_json(capsys, mixed, other.source)
    assert {r["frame"]: r["auth"] for r in rows}[2] == "invalid"


def test_human_table(mixed, pair, capsys):
    assert main(["verify-pcap", str(mixed), "--keys", pair.source]) == 1
    out = capsys.readouterr().out
    for word in ("valid", "invalid", "no-key", "absent", "malformed", "bad", "HoTI", "tunnelled", HOME, COA2):
        assert word in out
    assert "14 Mobility Header packet(s)" in out
    assert_no_secrets(out, pair)


def test_json_output_has_no_secrets(mixed, pair, capsys):
    main(["verify-pcap", str(mixed), "--keys", pair.source, "--json"])
    assert_no_secrets(capsys.readouterr().out, pair)


# ------------------------------------------------------------------ exit 0, link types, tunnels


def clean_frames(data):
    reg = kbm(data, COA, dereg=False)
    return [
        from_coa() / signed(bu(seq=7), reg, COA, CN),
        to_coa() / signed(ba(seq=7), reg, COA, CN),
        from_coa() / bu(seq=8)([]),
        IPv6(src=HA, dst=COA) / IPv6(src=CN, dst=HOME) / MIP6MH_HoT(index=1, cookie=b"c" * 8, token=b"t" * 8),
    ]


def test_clean_capture_exits_0(tmp_path, pair, capsys):
    path = tmp_path / "clean.pcap"
    wrpcap(str(path), [ETHER / f for f in clean_frames(pair)])
    code, rows = run_json(capsys, path, pair.source)
    assert code == 0
    assert [(r["mh_type"], r["auth"]) for r in rows] == [("BU", "valid"), ("BA", "valid"), ("BU", "absent"),
                                                         ("HoT", None)]
    assert rows[3]["tunnelled"] and rows[3]["home_address"] == HOME


def _linktype(path) -> int:
    with open(path, "rb") as f:
        return struct.unpack("<I", f.read(24)[20:24])[0]


@pytest.mark.parametrize(
    "wrap,linktype",
    [
        (lambda p: ETHER / p, 1),
        (lambda p: ETHER / Dot1Q(vlan=7) / p, 1),
        (lambda p: CookedLinux(proto=0x86DD) / p, 113),
        (lambda p: CookedLinuxV2(proto=0x86DD) / p, 276),
        (lambda p: p, 229),
    ],
    ids=["ethernet", "vlan", "linux-sll", "linux-sll2", "raw-ipv6"],
)
def test_link_types(tmp_path, pair, capsys, wrap, linktype):
    path = tmp_path / "one.pcap"
    wrpcap(str(path), [wrap(from_coa() / signed(bu(), kbm(pair, COA, False), COA, CN))])
    assert _linktype(path) == linktype
    code, rows = run_json(capsys, path, pair.source)
    assert code == 0 and [(r["frame"], r["auth"], r["checksum"]) for r in rows] == [(1, "valid", "ok")]


def test_pcapng(tmp_path, pair, capsys):
    path = tmp_path / "one.pcapng"
    frames = [ETHER / f for f in clean_frames(pair)]
    wrpcapng(str(path), frames)
    with open(path, "rb") as f:
        assert f.read(4) == b"\x0a\x0d\x0d\x0a"
    code, rows = run_json(capsys, path, pair.source)
    assert code == 0 and [r["auth"] for r in rows] == ["valid", "valid", "absent", None]


def test_frame_truncated_by_snaplen_is_malformed_with_the_reason(tmp_path, pair, capsys):
    frame = bytes(ETHER / from_coa() / signed(bu(), kbm(pair, COA, False), COA, CN))
    path = tmp_path / "snap.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 96, 1))
        f.write(struct.pack("<IIII", 0, 0, 96, len(frame)) + frame[:96])
    code, rows = run_json(capsys, path, pair.source)
    assert code == 1
    assert len(rows) == 1 and rows[0]["auth"] == "malformed"
    assert f"96 of {len(frame)} octets" in rows[0]["reason"]


def test_capture_cut_off_in_the_last_record(tmp_path, pair, capsys):
    # tcpdump killed while writing: the last record's header promises more octets than the file has.
    frame = bytes(ETHER / from_coa() / signed(bu(), kbm(pair, COA, False), COA, CN))
    path = tmp_path / "cut.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        f.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
        f.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame[:70])
    code, rows = run_json(capsys, path, pair.source)
    assert [(r["frame"], r["auth"]) for r in rows] == [(1, "valid"), (2, "malformed")]
    assert f"frame truncated by the capture: 70 of {len(frame)} octets" in rows[1]["reason"]
    assert code == 1


def test_capture_without_mobility_headers(tmp_path, capsys):
    path = tmp_path / "ping.pcap"
    wrpcap(str(path), [ETHER / IPv6(src=HOME, dst=CN) / ICMPv6EchoRequest()])
    assert run_json(capsys, path) == (0, [])


# ------------------------------------------------------------------ bad input: one line, exit 2


def _one_line_error(capsys, args, *expected) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("testbed: error: ")
    for text in expected:
        assert text in captured.err


def test_missing_capture(tmp_path, capsys):
    _one_line_error(capsys, ["verify-pcap", str(tmp_path / "nope.pcap")], "nope.pcap", "no such file")


@pytest.mark.parametrize("content", [b"", b"hello, not a capture\n", b"\xd4\xc3\xb2\xa1\x02\x00"])
def test_not_a_capture(tmp_path, capsys, content):
    path = tmp_path / "text.pcap"
    path.write_bytes(content)
    _one_line_error(capsys, ["verify-pcap", str(path)], "text.pcap")


def test_unsupported_link_type(tmp_path, capsys):
    path = tmp_path / "user0.pcap"
    wrpcap(str(path), [Raw(b"\x60" + bytes(50))], linktype=147)
    _one_line_error(capsys, ["verify-pcap", str(path)], "link type 147")


def test_bad_keys_file(mixed, pair, capsys):
    os.chmod(pair.source, 0o640)
    _one_line_error(capsys, ["verify-pcap", str(mixed), "--keys", pair.source], pair.source, "0640")


def test_two_keys_files_for_one_pair(mixed, pair, tmp_path, capsys):
    twin = keyfiles.write_new(tmp_path / "twin.yaml", keys.generate(HOME, CN))
    _one_line_error(capsys, ["verify-pcap", str(mixed), "--keys", pair.source, "--keys", twin.source], "twin.yaml")


def test_help_documents_the_exit_status(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["verify-pcap", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "exit status" in out and "1  at least one verdict invalid" in out and "no-key" in out


# ------------------------------------------------------------------ what our engines put on the wire


def _engine_capture(path, *worlds) -> None:
    from scapy.utils import RawPcapWriter

    writer = RawPcapWriter(str(path), linktype=229)  # raw IPv6, the octets exactly as the engines sent them
    for world in worlds:
        for _, _, _, raw in world.net.wire:
            writer.write(raw)
    writer.close()


def test_engine_signalling_verifies(tmp_path, capsys):
    """The MN/CN/HA engines' packets (RR, RFC 4449, RFC 4285 home registration, a BA 135 after the MN
    lost its sequence numbers, de-registration) are judged as the protocol intends."""
    from engine_fixtures import CN_PC, CN_RR, COA1, COA2, MS, make_world
    from engine_fixtures import HA as ENGINE_HA
    from engine_fixtures import HOME as ENGINE_HOME

    home, cn_pc = ipaddress.IPv6Address(ENGINE_HOME), ipaddress.IPv6Address(CN_PC)
    data = keyfiles.write_new(tmp_path / "engine.yaml", keys.generate(home, cn_pc))
    first = make_world(data=data)
    first.move(COA1)
    assert first.net.run_until(lambda: first.bound_everywhere(COA1), 10_000 * MS)
    second = make_world(data=data, disks={"cn_pc": first.cn_pc_store})  # empty MN store: BA 135 first
    second.move(COA2)
    assert second.net.run_until(lambda: second.bound_everywhere(COA2), 10_000 * MS)
    second.move(ENGINE_HOME)
    assert second.net.run_until(lambda: second.cn_pc.binding_for(ENGINE_HOME) is None
                                and ENGINE_HOME not in second.ha.bindings, 10_000 * MS)
    path = tmp_path / "engines.pcap"
    _engine_capture(path, first, second)

    code, rows = run_json(capsys, path, data.source)
    assert code == 0
    assert all(r["checksum"] == "ok" for r in rows)
    peer = {str(cn_pc)}
    pc = [r for r in rows if r["mh_type"] in ("BU", "BA") and peer & {r["src"], r["dst"]}]
    rr = [r for r in rows if r["mh_type"] in ("BU", "BA") and str(ipaddress.IPv6Address(CN_RR)) in (r["src"], r["dst"])]
    ha = [r for r in rows if r["mh_type"] in ("BU", "BA") and str(ipaddress.IPv6Address(ENGINE_HA)) in (r["src"], r["dst"])]
    assert pc and rr and ha
    assert {r["auth"] for r in pc} == {"valid"}
    assert {r["auth"] for r in rr} == {"no-key"}
    assert {r["auth"] for r in ha} == {"no-key"} and {r["auth_option"] for r in ha} == {"mn-ha"}
    assert any(r["status"] == 135 for r in pc)
    assert any(r["mh_type"] == "BU" and r["lifetime"] == 0 for r in pc)
    assert any(r["tunnelled"] and r["mh_type"] == "HoTI" for r in rows)

    # RFC 4285 home registrations, with the MN-HA key file: every BU and BA to/from the HA is
    # valid, registration and de-registration alike
    from engine_fixtures import MN_HA_SA

    from testbed.mip6.mnha import dump_mn_ha, generate_mn_ha

    mn_ha_file = _secret_file(tmp_path / "mn-ha.yaml", dump_mn_ha(MN_HA_SA))
    code, rows = run_json(capsys, path, data.source, mn_ha=[mn_ha_file])
    assert code == 0
    ha = [r for r in rows if r["mh_type"] in ("BU", "BA") and str(ipaddress.IPv6Address(ENGINE_HA)) in (r["src"], r["dst"])]
    assert {(r["auth"], r["key_file"]) for r in ha} == {("valid", str(mn_ha_file))}
    assert {r["mh_type"] for r in ha} == {"BU", "BA"} and any(r["lifetime"] == 0 for r in ha)
    assert MN_HA_SA.key.hex() not in json.dumps(rows)

    # another key, or the right key under another SPI: invalid, exit 1
    other = generate_mn_ha(str(MN_HA_SA.home_address), str(MN_HA_SA.home_agent), spi=MN_HA_SA.spi)
    code, rows = run_json(capsys, path, data.source, mn_ha=[_secret_file(tmp_path / "other.yaml", dump_mn_ha(other))])
    assert code == 1
    assert {r["reason"] for r in rows if r["auth_option"] == "mn-ha"} == {"authenticator does not match"}
    respi = dump_mn_ha(MN_HA_SA).replace(f'spi: "{MN_HA_SA.spi}"', f'spi: "{MN_HA_SA.spi + 1}"')
    code, rows = run_json(capsys, path, data.source, mn_ha=[_secret_file(tmp_path / "respi.yaml", respi)])
    assert code == 1
    assert {r["reason"] for r in rows if r["auth_option"] == "mn-ha"} == {
        f"Mobility SPI {MN_HA_SA.spi}, the key file's is {MN_HA_SA.spi + 1}"}


def _secret_file(path, text: str):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def test_bad_or_duplicate_mn_ha_files_are_one_line_errors(mixed, pair, tmp_path, capsys):
    from testbed.mip6.mnha import dump_mn_ha, generate_mn_ha

    sa = generate_mn_ha(HOME, HA)
    loose = tmp_path / "loose.yaml"
    loose.write_text(dump_mn_ha(sa))
    loose.chmod(0o644)
    assert main(["verify-pcap", str(mixed), "--mn-ha", str(loose)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "loose.yaml" in err and sa.key.hex() not in err
    a = _secret_file(tmp_path / "a.yaml", dump_mn_ha(sa))
    b = _secret_file(tmp_path / "b.yaml", dump_mn_ha(generate_mn_ha(HOME, HA)))
    assert main(["verify-pcap", str(mixed), "--mn-ha", str(a), "--mn-ha", str(b)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a.yaml" in err and "b.yaml" in err
