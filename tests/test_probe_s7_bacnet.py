"""plantguard probe's S7comm and BACnet queries against the real stacks: python-snap7's server
(its SZL contents laid out as a CPU's, tests/fixtures/probe_s7_server.py) and a bacpypes3 device
application, each in the device namespace of a veth pair; the probe in the other namespace,
captured with tcpdump. The identities read must be the configured ones, the same that the
passive decoders read from the capture, and agree with nmap's NSE scripts where they can talk."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plantguard.probe.validator import ConnectionValidator, Refused
from support.probe import DEVICE_IP, namespace_pair, passive_identity, probe_json, site_file, stop

FIXTURES = Path(__file__).parent / "fixtures"
S7_IDENTITY = {"order_number": "6ES7 315-2EH14-0AB0", "firmware": "V3.2.17", "name": "PLC-Boiler-3",
               "module": "CPU 315-2 PN/DP", "plant_id": "Boiler house", "copyright": "Original Siemens Equipment",
               "serial": "S C-X4U421302009", "model": "CPU 315-2 PN/DP"}
# vendor id 15 with its registered name: the I-Am's vendor id and the vendor-name property agree
BACNET_IDENTITY = {"instance": 260001, "name": "AHU-3 controller", "vendor": "Cornell University", "vendor_id": 15,
                   "model": "PTC-AHU-200", "firmware": "4.2.1", "software": "ahu-app 1.7",
                   "description": "Air handler 3", "location": "Roof plant room"}


def _dry_run(tmp_path: Path, protocol: str) -> dict:
    r = subprocess.run([sys.executable, "-m", "plantguard", "probe", "--site", str(site_file(tmp_path, [protocol])),
                        "--targets", DEVICE_IP, "--protocols", protocol, "--format", "json"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_dry_run_shows_each_frame_with_its_decoded_operations(tmp_path):
    s7 = _dry_run(tmp_path, "s7")
    assert s7["sent"] == 0
    (run,) = s7["frames"]
    assert run["query"] == "s7comm.szl-identity" and run["status"] == "planned"
    assert [f["operations"] for f in run["frames"]] == [["connection set-up"], ["Setup Communication"],
                                                         ["Read SZL"], ["Read SZL"]]
    cr = bytes.fromhex(run["frames"][0]["hex"])
    assert cr[-4:] == bytes.fromhex("c2020102")              # called TSAP: rack 0 slot 2
    assert [bytes.fromhex(f["hex"])[-4:-2] for f in run["frames"][2:]] == [b"\x00\x11", b"\x00\x1c"]

    bac = _dry_run(tmp_path, "bacnet")
    (run,) = bac["frames"]
    assert [f["operations"] for f in run["frames"]] == [["who_is"]] + [["read_property"]] * 8
    frames = [bytes.fromhex(f["hex"]) for f in run["frames"]]
    assert frames[0].endswith(bytes.fromhex("09001b3fffff"))          # Who-Is 0..4194303
    assert [f[8] for f in frames[1:]] == list(range(1, 9))             # invoke ids increase
    assert all(f[11:15] == bytes.fromhex("023fffff") for f in frames[1:])   # assumed: device 4194303


def test_catalogue_tells_bacnet_service_spaces_and_s7_follow_ups_apart():
    v = ConnectionValidator("bacnet", "udp", DEVICE_IP, 47808)
    with pytest.raises(Refused):       # confirmed service 8 is AddListElement, not Who-Is
        v.check(bytes.fromhex("810a0011010400050108" "0c023fffff194d"))
    with pytest.raises(Refused):       # unconfirmed service 14 is You-Are, not ReadPropertyMultiple
        v.check(bytes.fromhex("810a000a0100100e" "c4023fffff"))
    s7 = ConnectionValidator("s7comm", "tcp", DEVICE_IP, 102)
    from plantguard.probe.queries.s7 import connection_request, read_szl_next
    assert s7.check(connection_request(0x0102)) == ["connection set-up"]
    assert s7.check(read_szl_next(3, 1, 5)) == ["connection set-up"]   # the next fragment: no new operation


def _probe(pair, tmp: Path, protocol: str) -> dict:
    with pair.capture(tmp / "capture.pcap"):
        r = pair.plantguard("probe", "--site", str(site_file(tmp, [protocol])), "--targets", DEVICE_IP, "--send",
                            "--format", "json", "--evidence", str(tmp / "evidence"), "--db",
                            f"sqlite:///{tmp}/pg.db", "--rate", "50")
    out = probe_json(r)
    assert Path(out["evidence"]).is_file()
    return out


def _nmap(pair, args: list[str]) -> str:
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed")
    r = subprocess.run(["ip", "netns", "exec", pair.probe, "nmap", "-Pn", "-n", *args, DEVICE_IP],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _nse_fields(text: str) -> dict:
    return {m[1].strip(): m[2].strip() for m in re.finditer(r"^\|[_ ]\s+([^:\n]+): (.*)$", text, re.M)}


def _s7_server(pair, *extra: str):
    return pair.start(pair.device, [sys.executable, str(FIXTURES / "probe_s7_server.py"), json.dumps(S7_IDENTITY),
                                    *extra], ready=3)


@pytest.mark.slow
def test_s7_identity_from_snap7(tmp_path):
    with namespace_pair() as pair:
        srv = _s7_server(pair)
        try:
            out = _probe(pair, tmp_path, "s7")
            (rec,) = out["targets"]
            (q,) = rec["queries"]
            assert q["status"] == "answered" and q["frames_sent"] == q["frames_answered"] == 4
            ident = rec["identity"]
            assert {k: ident.get(k) for k in S7_IDENTITY} == S7_IDENTITY
            assert ident == passive_identity(tmp_path / "capture.pcap", DEVICE_IP)
            nse = _nse_fields(_nmap(pair, ["-sT", "-p", "102", "--script", "s7-info"]))
        finally:
            stop(srv)
    assert nse["Module"] == ident["order_number"]
    assert "V" + nse["Version"] == ident["firmware"]
    assert nse["System Name"] == ident["name"]
    assert nse["Module Type"] == ident["module"]
    assert nse["Serial Number"] == ident["serial"]
    assert nse["Plant Identification"] == ident["plant_id"]
    assert nse["Copyright"] == ident["copyright"]


def _tcp_events(pcap: Path) -> list[tuple[int, str]]:
    """(our source port, 'S' or 'F') of our SYNs and FINs towards port 102, in order."""
    r = subprocess.run(["tcpdump", "-nn", "-r", str(pcap), "tcp dst port 102 and (tcp[13] & 3 != 0)"],
                       capture_output=True, text=True, timeout=30, check=True)
    return [(int(m[1]), "F" if "F" in m[2] else "S")
            for m in re.finditer(r"\.(\d+) > [\d.]+\.102: Flags \[([^\]]*)\]", r.stdout)]


@pytest.mark.slow
def test_s7_slot_1_after_a_disconnect_on_a_new_connection(tmp_path):
    with namespace_pair() as pair:
        srv = _s7_server(pair, "--called-tsap", "0101")
        try:
            out = _probe(pair, tmp_path, "s7")
            nmap_out = _nmap(pair, ["-sT", "-p", "102", "--script", "s7-info"])
        finally:
            stop(srv)
    (rec,) = out["targets"]
    assert rec["queries"][0]["frames_sent"] == 5           # two connection requests, setup, two SZL reads
    assert {k: rec["identity"].get(k) for k in S7_IDENTITY} == S7_IDENTITY
    events = _tcp_events(tmp_path / "capture.pcap")
    (first, _), (second, _) = [e for e in events if e[1] == "S"]
    assert first != second
    assert events.index((first, "F")) < events.index((second, "S"))    # never two connections open
    # nmap's s7-info falls back to called TSAP 0x0200, not slot 1: it learns nothing here
    assert "s7-info" not in nmap_out


@pytest.mark.slow
def test_bacnet_identity_from_bacpypes3(tmp_path):
    with namespace_pair() as pair:
        srv = pair.start(pair.device, [sys.executable, str(FIXTURES / "probe_bacnet_device.py"), f"{DEVICE_IP}/24",
                                       json.dumps(BACNET_IDENTITY)], ready=4)
        try:
            out = _probe(pair, tmp_path, "bacnet")
            nmap_out = _nmap(pair, ["-sU", "-p", "47808", "--script", "bacnet-info"])
        finally:
            stop(srv)
    (rec,) = out["targets"]
    (q,) = rec["queries"]
    assert q["status"] == "answered" and q["frames_sent"] == q["frames_answered"] == 9
    ident = rec["identity"]
    expected = {"device_instance": BACNET_IDENTITY["instance"], **{k: v for k, v in BACNET_IDENTITY.items()
                                                                   if k != "instance"}}
    assert {k: ident.get(k) for k in expected} == expected
    assert ident == passive_identity(tmp_path / "capture.pcap", DEVICE_IP)
    if "BACNet ADPU Type: Error" in nmap_out:
        # nmap's bacnet-info reads the device object by the "this device" instance 4194303;
        # bacpypes3 0.0.110 answers that with Error (object, unknown-object), so the script
        # prints the error and no field to compare
        pytest.skip("nmap bacnet-info asks device 4194303, which bacpypes3 answers with unknown-object")
    nse = _nse_fields(nmap_out)
    assert nse["Object-name"] == ident["name"]
    assert nse["Firmware"] == ident["firmware"]
    assert nse["Model Name"] == ident["model"]


@pytest.mark.slow
def test_bacnet_an_error_for_one_property_goes_on_to_the_next(tmp_path):
    configured = {k: v for k, v in BACNET_IDENTITY.items() if k != "description"}
    with namespace_pair() as pair:
        srv = pair.start(pair.device, [sys.executable, str(FIXTURES / "probe_bacnet_device.py"), f"{DEVICE_IP}/24",
                                       json.dumps(configured)], ready=4)
        try:
            out = _probe(pair, tmp_path, "bacnet")
        finally:
            stop(srv)
    (rec,) = out["targets"]
    assert rec["queries"][0]["frames_answered"] == 9
    ident = rec["identity"]
    assert "description" not in ident
    assert ident["location"] == configured["location"]           # read after the refused description
    errors = [o for o in _observations(tmp_path / "capture.pcap") if o.kind == "error" and o.proto == "bacnet"]
    assert len(errors) == 1 and "unknown-property" in errors[0].data["name"]
    assert ident == passive_identity(tmp_path / "capture.pcap", DEVICE_IP)


def _observations(pcap: Path):
    from plantguard.capture.engine import analyze
    return analyze([str(pcap)]).observations
