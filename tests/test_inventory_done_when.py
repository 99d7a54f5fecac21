"""The inventory's acceptance cases, through the command line on the real captures: the Rockwell
1756-ENBT/A with its revision and serial, the S7-300 CPU with module name and serial, and the
PROFINET station names."""
import json
import subprocess
import sys

from conftest import shared_path


def inventory(*rels):
    paths = [str(shared_path(r)) for r in rels]
    p = subprocess.run([sys.executable, "-m", "plantguard", "inventory", *paths, "--no-store", "-f", "json", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["assets"]


def test_rockwell_enbt_with_revision_and_serial():
    enbt = [a for a in inventory("pcaps/icsnpp-enip/enip_cip_example.pcap")
            if a["identity"].get("product") == "1756-ENBT/A"]
    assert len(enbt) == 1
    ident = enbt[0]["identity"]
    assert ident["firmware"] == "4.3" and ident["serial"] == "0x00524d8e"
    assert "Rockwell" in ident["vendor"] and enbt[0]["role"] == "plc"


def test_s7_300_cpu_with_module_name_and_serial():
    cpus = {a["identity"]["serial"]: a for a in inventory("pcaps/icsnpp-s7comm")
            if a["identity"].get("product") == "CPU 315-2 PN/DP"}
    assert set(cpus) == {"S C-C2UR28922012", "S C-B1U393142011"}
    ident = cpus["S C-C2UR28922012"]["identity"]
    assert ident["name"] == "SNAP7-SERVER" and ident["order_number"] == "6ES7 315-2EH14-0AB0"
    assert ident["vendor"] == "Siemens" and cpus["S C-C2UR28922012"]["role"] == "plc"


def test_profinet_station_names():
    names = {a["identity"].get("name") for a in inventory("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap",
                                                          "pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_2.pcapng")}
    assert {"siemens-x208-switch", "versamax-pns11"} <= names


def test_profinet_names_only_searched_for_are_not_devices():
    """'turck' and 'flm-pn-bk-2tx4' appear only in the controller's DCP Identify requests (a search
    by name that nobody answers): they are operations of the controller, not station names."""
    from conftest import analyze_shared
    result = analyze_shared("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap")
    searched = [o for o in result.observations if o.kind == "operation" and o.proto == "profinet"
                and 'NameOfStation="turck"' in o.data.get("detail", "")]
    assert searched and searched[0].src_mac == "00:a0:45:6d:d3:43"
    names = {a["identity"].get("name") for a in inventory("pcaps/icsnpp-profinet-io-cm/profinet_io_cm_mixed_1.pcap")}
    assert "turck" not in names
