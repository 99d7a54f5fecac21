"""The site model: loading, lookups, and one-line error messages that name file, line and field."""
from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantguard.site import SiteError, inferred_site, load_site, parse_site

ROOT = Path(__file__).resolve().parents[1]

ARCH_EXAMPLE = """\
site: Plant A
organization_size: medium
zones:
  - {name: control, kind: ot-control, networks: [10.10.1.0/24], vlans: [110]}
  - {name: sensing, kind: ot-sensing, networks: [10.10.2.0/24], vlans: [120]}
  - {name: office,  kind: it,        networks: [10.20.0.0/24], vlans: [20]}
  - {name: guest-wifi, kind: guest,  networks: [10.30.0.0/24], vlans: [30]}
  - {name: dmz,     kind: dmz,       networks: [10.40.0.0/24], vlans: [40]}
conduits:
  - {from: sensing, to: dmz, allow: [tcp/8883]}
  - {from: control, to: sensing, allow: [snmp, tcp/23]}
egress:
  - {zone: sensing, allow: [10.40.0.10/32]}
engineering_workstations: [10.10.1.50]
assets: []
"""


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def error_of(tmp_path, text: str) -> str:
    p = write(tmp_path, text)
    with pytest.raises(SiteError) as exc:
        load_site(p)
    msg = str(exc.value)
    assert "\n" not in msg, msg
    assert msg.startswith(f"{p}:"), msg
    return msg[len(str(p)) + 1:]           # "LINE: field: problem"


# ---------------------------------------------------------------------------------------------
# the contract example and the lookups
# ---------------------------------------------------------------------------------------------

def test_architecture_example_loads(tmp_path):
    s = load_site(write(tmp_path, ARCH_EXAMPLE))
    assert s.name == "Plant A" and s.organization_size == "medium"
    assert [z.name for z in s.zones] == ["control", "sensing", "office", "guest-wifi", "dmz"]
    assert [z.kind for z in s.zones][:2] == ["ot-control", "ot-sensing"]
    assert s.zones[0].vlans == [110] and str(s.zones[0].networks[0]) == "10.10.1.0/24"
    assert (s.conduits[0].src, s.conduits[0].dst) == ("sensing", "dmz")
    assert [r.text for r in s.conduits[1].allow] == ["snmp", "tcp/23"]
    assert s.egress[0].zone == "sensing"
    assert s.engineering_workstations == ["10.10.1.50"]
    assert s.assets == [] and not s.inferred


def test_zone_of_by_network_then_vlan(tmp_path):
    s = load_site(write(tmp_path, ARCH_EXAMPLE))
    assert s.zone_of("10.10.1.7").name == "control"
    assert s.zone_of("10.10.2.200", 110).name == "sensing"     # the address wins over the tag
    assert s.zone_of("192.168.9.9", 120).name == "sensing"     # unknown address: the VLAN decides
    assert s.zone_of("192.168.9.9") is None
    assert s.zone_of("not-an-ip") is None
    assert s.zone_of(None) is None


def test_conduit_allows_ports_names_and_direction(tmp_path):
    s = load_site(write(tmp_path, ARCH_EXAMPLE))
    assert s.conduit_allows("sensing", "dmz", "tcp", 8883, None)
    assert not s.conduit_allows("sensing", "dmz", "tcp", 1883, "mqtt")
    assert not s.conduit_allows("dmz", "sensing", "tcp", 8883, None)          # one direction only
    assert s.conduit_allows("control", "sensing", "udp", 161, "snmp")
    assert s.conduit_allows("control", "sensing", "udp", 161, None)           # by the name's port
    assert not s.conduit_allows("control", "sensing", "udp", 161, "dns")      # the port is not the protocol
    assert s.conduit_allows("control", "sensing", "tcp", 23, "telnet")
    assert s.conduit_allows("office", "office", "tcp", 1, None)               # inside a zone
    z_control, z_sensing = s.zone("control"), s.zone("sensing")
    assert s.conduit_allows(z_control, z_sensing, "tcp", 23, None)            # Zone objects too


def test_bidirectional_conduit_and_port_range(tmp_path):
    s = load_site(write(tmp_path, ARCH_EXAMPLE.replace(
        "  - {from: sensing, to: dmz, allow: [tcp/8883]}",
        "  - {from: sensing, to: dmz, allow: [tcp/8000-8999, any], bidirectional: yes}")))
    assert s.conduits[0].bidirectional
    assert s.conduit_allows("dmz", "sensing", "udp", 5, None)


def test_egress_and_stations(tmp_path):
    s = load_site(write(tmp_path, ARCH_EXAMPLE))
    assert s.egress_allows("sensing", "10.40.0.10") is True
    assert s.egress_allows("sensing", "10.40.0.11") is False
    assert s.egress_allows("sensing", "8.8.8.8") is False
    assert s.egress_allows("sensing", "10.10.2.99") is True          # inside its own zone
    assert s.egress_allows("control", "8.8.8.8") is None             # not restricted
    assert s.is_engineering_workstation("10.10.1.50")
    assert not s.is_engineering_workstation("10.10.1.51")
    assert not s.is_engineering_workstation(None)


def test_extensions_load(tmp_path):
    s = load_site(write(tmp_path, ARCH_EXAMPLE.replace("assets: []\n", "") + textwrap.dedent("""\
        timezone: UTC+02:00
        assets:
          - {ip: 10.10.1.10, name: PLC-1, role: plc, vendor: Siemens, product: CPU 315-2 PN/DP, criticality: high}
          - {mac: 00-80-F4-00-00-10, name: drive, role: drive}
        maintenance_windows:
          - {name: sunday-night, days: [sun], start: 02:00, hours: 4, zones: [control]}
          - {days: weekdays, start: "22:30", hours: 1.5}
        attestations:
          usb_ports_disabled: yes
          secure_boot: {status: partial, evidence: audit report 12, date: 2024-05-01}
          incident_response_plan: no
        sboms:
          - {file: sboms/plc1.cdx.json, asset: 10.10.1.10}
        remote_access:
          - {name: vendor-vpn, host: 10.40.0.20, peers: [203.0.113.0/24], mfa: false}
        """)))
    assert s.declared_asset(ip="10.10.1.10")["product"] == "CPU 315-2 PN/DP"
    assert s.declared_asset(mac="00:80:f4:00:00:10")["name"] == "drive"
    assert s.declared_asset(ip="10.10.1.11") is None
    w = s.maintenance_windows[0]
    assert (w.days, w.start, w.hours, w.zones) == (["sun"], "02:00", 4.0, ["control"])
    assert s.maintenance_windows[1].days == ["mon", "tue", "wed", "thu", "fri"]
    assert s.attestations["usb_ports_disabled"].status == "yes"
    assert s.attestations["secure_boot"].status == "partial"
    assert s.attestations["secure_boot"].date == "2024-05-01"
    assert s.attestations["incident_response_plan"].status == "no"
    assert s.sboms[0]["file"] == str(tmp_path / "sboms" / "plc1.cdx.json")
    assert s.remote_access[0].mfa is False
    # Sunday 00:30 UTC = 02:30 at UTC+2: inside the control zone's window
    ts = datetime(2024, 6, 2, 0, 30, tzinfo=timezone.utc).timestamp()
    assert s.maintenance_window_at(ts, "control").name == "sunday-night"
    assert s.maintenance_window_at(ts, "office") is None
    assert s.maintenance_window_at(ts + 6 * 3600, "control") is None
    # Monday 23:45 local (21:45 UTC): in the weekday window, which spans 22:30-24:00
    ts = datetime(2024, 6, 3, 21, 45, tzinfo=timezone.utc).timestamp()
    assert s.maintenance_window_at(ts, "office").name == "window 2"


def test_window_across_midnight(tmp_path):
    s = load_site(write(tmp_path, ARCH_EXAMPLE + "maintenance_windows:\n  - {days: [sat], start: '23:00', hours: 3}\n"))
    assert s.maintenance_window_at(datetime(2024, 6, 2, 1, 0, tzinfo=timezone.utc).timestamp())  # Sun 01:00
    assert not s.maintenance_window_at(datetime(2024, 6, 2, 2, 0, tzinfo=timezone.utc).timestamp())


def test_example_site_file_is_valid_and_documents_the_extensions():
    p = ROOT / "examples" / "site.yaml"
    s = load_site(p)
    assert s.zones and s.conduits and s.egress and s.engineering_workstations
    assert s.assets and s.maintenance_windows and s.attestations and s.sboms and s.remote_access
    assert all(Path(e["file"]).is_file() for e in s.sboms)
    assert all(Path(a["sbom"]).is_file() for a in s.assets if a.get("sbom"))
    text = p.read_text()
    for key in ("maintenance_windows", "attestations", "sboms", "assets", "remote_access", "timezone"):
        assert f"{key}:" in text


def test_inferred_site_names_match_inventory():
    s = inferred_site()
    assert s.inferred
    assert s.zone_of("8.8.8.8").name == "internet"
    assert s.zone_of("10.1.2.3", 7).name == "vlan-7"
    assert s.zone_of("10.1.2.3").name == "10.1.2.0/24"
    assert s.egress_allows("x", "8.8.8.8") is None
    assert not s.conduit_allows("a", "b", "tcp", 1, None)


def test_site_name_defaults_to_file_name(tmp_path):
    s = load_site(write(tmp_path, "zones:\n  - {name: a, kind: it, networks: [10.0.0.0/8]}\n"))
    assert s.name == "site" and s.organization_size == "medium"


# ---------------------------------------------------------------------------------------------
# one error, one line: file, line, field, problem
# ---------------------------------------------------------------------------------------------

ZONES = """\
site: X
zones:
  - {name: control, kind: ot-control, networks: [10.10.1.0/24], vlans: [110]}
  - name: sensing
    kind: ot-sensing
    networks:
      - 10.10.2.0/24
"""


class Starts(str):
    """An expected message given by its beginning only."""


def _network(text: str) -> str:
    return ZONES.replace("      - 10.10.2.0/24", f"      - {text}")


def _allow(entry: str) -> str:
    """A conduit whose second allow entry (line 13) is `entry`."""
    return ZONES + f"conduits:\n  - from: control\n    to: sensing\n    allow:\n      - snmp\n      - {entry}\n"


def _window(window: str) -> str:
    return ZONES + "maintenance_windows:\n  - " + window + "\n"


_BAD_PORT = "is not a valid port (1-65535, or a range LOW-HIGH)"

# (site file, the message after "FILE:": "LINE: field: problem")
SITE_ERRORS = [
    pytest.param(_network("10.10.2.0/33"), "7: zones[1].networks[0]: '10.10.2.0/33' is not an IP network",
                 id="network-bad-prefix"),
    pytest.param(_network("10.10.2.5/24"),
                 "7: zones[1].networks[0]: '10.10.2.5/24' has host bits set (did you mean 10.10.2.0/24?)",
                 id="network-host-bits"),
    pytest.param(_network("10.10.0.0/16"),
                 "7: zones[1].networks[0]: 10.10.0.0/16 overlaps 10.10.1.0/24 of zone 'control' (line 3)",
                 id="network-overlaps-another-zone"),
    pytest.param(ZONES.replace("kind: ot-sensing", "kind: ot-sensor"),
                 Starts("5: zones[1].kind: 'ot-sensor' is not one of it, guest, dmz, ot-control"), id="zone-bad-kind"),
    pytest.param(ZONES.replace("    kind: ot-sensing", "    kind: ot-sensing\n    vlan: 120"),
                 "6: zones[1].vlan: unknown key (did you mean 'vlans'?)", id="zone-unknown-key"),
    pytest.param(ZONES + "engineering_stations: [10.10.1.50]\n",
                 "8: engineering_stations: unknown key (did you mean 'engineering_workstations'?)",
                 id="top-level-unknown-key"),
    pytest.param(ZONES + "site: Y\n", "8: site: duplicate key (first given on line 1)", id="duplicate-key"),
    pytest.param(ZONES + "  - {name: control, kind: it, networks: [10.20.0.0/24]}\n",
                 "8: zones[2].name: zone 'control' is already declared on line 3", id="zone-duplicate-name"),
    pytest.param(ZONES + "  - {name: empty, kind: it}\n",
                 "8: zones[2]: zone 'empty' needs at least one network or VLAN", id="zone-without-network-or-vlan"),
    pytest.param(ZONES + "  - {name: o, kind: it, vlans: [20, 5000]}\n",
                 "8: zones[2].vlans[1]: 5000 is not a VLAN ID between 0 and 4095", id="zone-bad-vlan"),
    pytest.param(ZONES + "conduits:\n  - {from: sensing, to: dmz, allow: [tcp/8883]}\n",
                 "9: conduits[0].to: 'dmz' is not a zone of this site (zones: control, sensing)",
                 id="conduit-unknown-zone"),
    pytest.param(ZONES + "conduits:\n  - {from: sensing, to: sensing, allow: [tcp/1]}\n",
                 Starts("9: conduits[0].to: a conduit joins two different zones"), id="conduit-within-one-zone"),
    pytest.param(_allow("tcp/70000"), f"13: conduits[0].allow[1]: 'tcp/70000' {_BAD_PORT}", id="allow-port-too-high"),
    pytest.param(_allow("tcp/0"), f"13: conduits[0].allow[1]: 'tcp/0' {_BAD_PORT}", id="allow-port-zero"),
    pytest.param(_allow("sctp/80"), "13: conduits[0].allow[1]: 'sctp/80' is not tcp/PORT or udp/PORT",
                 id="allow-unknown-transport"),
    pytest.param(_allow("tcp/http"), "13: conduits[0].allow[1]: 'tcp/http' is not tcp/PORT or udp/PORT",
                 id="allow-port-not-a-number"),
    pytest.param(_allow("modbuss"), "13: conduits[0].allow[1]: 'modbuss' is not tcp/PORT, udp/PORT, any or a known "
                                    "protocol name (did you mean 'modbus'?)", id="allow-misspelt-protocol"),
    pytest.param(_allow("gopher"),
                 "13: conduits[0].allow[1]: 'gopher' is not tcp/PORT, udp/PORT, any or a known protocol name",
                 id="allow-unknown-protocol"),
    pytest.param(ZONES + "egress:\n  - {zone: dmz, allow: [10.0.0.1]}\n",
                 "9: egress[0].zone: 'dmz' is not a zone of this site (zones: control, sensing)",
                 id="egress-unknown-zone"),
    pytest.param(ZONES + "egress:\n  - zone: sensing\n    allow: [10.40.0.300]\n",
                 "10: egress[0].allow[0]: '10.40.0.300' is not an IP network", id="egress-bad-network"),
    pytest.param(ZONES + "engineering_workstations:\n  - 10.10.1.50\n  - ews-01\n",
                 "10: engineering_workstations[1]: 'ews-01' is not an IP network",
                 id="engineering-workstation-not-an-address"),
    pytest.param(_window("{days: [sun, funday], start: '02:00', hours: 4}"),
                 Starts("9: maintenance_windows[0].days[1]: 'funday' is not a day"), id="window-bad-day"),
    pytest.param(_window("{days: [sun], start: '25:00', hours: 4}"),
                 Starts("9: maintenance_windows[0].start: '25:00' is not a time of day HH:MM"), id="window-bad-start"),
    pytest.param(_window("{days: [sun], start: '02:00', hours: 0}"),
                 Starts("9: maintenance_windows[0].hours: 0 is not between 0 and 168 hours"), id="window-no-hours"),
    pytest.param(_window("{days: [sun], start: '02:00', hours: four}"),
                 Starts("9: maintenance_windows[0].hours: 'four' is not a number of hours"),
                 id="window-hours-not-a-number"),
    pytest.param(_window("{days: [sun], start: '02:00'}"),
                 Starts("9: maintenance_windows[0]: missing required key 'hours'"), id="window-without-hours"),
    pytest.param(_window("{days: [sun], start: '02:00', hours: 2, zones: [office]}"),
                 Starts("9: maintenance_windows[0].zones[0]: 'office' is not a zone of this site"),
                 id="window-unknown-zone"),
    pytest.param(ZONES + "attestations:\n  usb_disabled: yes\n",
                 "9: attestations.usb_disabled: unknown key (did you mean 'usb_ports_disabled'?)",
                 id="attestation-unknown-key"),
    pytest.param(ZONES + "attestations:\n  secure_boot: maybe\n",
                 "9: attestations.secure_boot: 'maybe' is not one of yes, no, partial", id="attestation-bad-status"),
    pytest.param(ZONES + "attestations:\n  secure_boot: {status: yes, date: 2024-13-01}\n",
                 "9: attestations.secure_boot.date: '2024-13-01' is not a date YYYY-MM-DD", id="attestation-bad-date"),
    pytest.param(ZONES + "attestations:\n  secure_boot: {evidence: x}\n",
                 "9: attestations.secure_boot: missing required key 'status'", id="attestation-without-status"),
    pytest.param(ZONES + "assets:\n  - {name: plc}\n", "9: assets[0]: an asset needs an 'ip' or a 'mac'",
                 id="asset-without-address"),
    pytest.param(ZONES + "assets:\n  - {mac: 00:80:f4:00:10}\n",
                 "9: assets[0].mac: '00:80:f4:00:10' is not a MAC address (aa:bb:cc:dd:ee:ff)", id="asset-bad-mac"),
    pytest.param(ZONES + "assets:\n  - {ip: 10.10.1.300}\n", "9: assets[0].ip: '10.10.1.300' is not an IP address",
                 id="asset-bad-ip"),
    pytest.param(ZONES + "assets:\n  - {ip: 10.10.1.3, role: toaster}\n",
                 Starts("9: assets[0].role: 'toaster' is not one of plc, rtu, hmi"), id="asset-bad-role"),
    pytest.param(ZONES + "assets:\n  - {ip: 10.10.1.3, criticality: extreme}\n",
                 "9: assets[0].criticality: 'extreme' is not one of low, medium, high, critical",
                 id="asset-bad-criticality"),
    pytest.param(ZONES + "assets:\n  - {ip: 10.10.1.3}\n  - {ip: 10.10.1.3}\n",
                 "10: assets[1].ip: 10.10.1.3 is already declared on line 9", id="asset-declared-twice"),
    pytest.param(ZONES + "sboms:\n  - {file: a.json}\n",
                 "9: sboms[0]: an SBOM entry needs 'asset' (an IP or asset name) or 'product'",
                 id="sbom-without-asset-or-product"),
    pytest.param(ZONES + "remote_access:\n  - {name: v, host: 10.0.0.1, mfa: perhaps}\n",
                 "9: remote_access[0].mfa: 'perhaps' is not true or false", id="remote-access-bad-mfa"),
    pytest.param(ZONES + "organization_size: huge\n", "8: organization_size: 'huge' is not one of small, medium, large",
                 id="bad-organization-size"),
    pytest.param(ZONES + "timezone: Mars/Olympus\n", Starts("8: timezone: 'Mars/Olympus' is not a known time zone"),
                 id="unknown-timezone"),
    pytest.param("- a\n- b\n", "1: expected a mapping (key: value), found a list", id="list-not-mapping"),
    pytest.param("", "1: the site file is empty", id="empty-file"),
    pytest.param("zones: [\n  {name: a\n", Starts("3: invalid YAML"), id="invalid-yaml"),
    pytest.param("zones: {name: a}\n", "1: zones: expected a list, found a mapping", id="zones-not-a-list"),
    pytest.param("zones:\n  - {name: '', kind: it, vlans: [1]}\n", "2: zones[0].name: must not be empty",
                 id="zone-empty-name"),
]


@pytest.mark.parametrize("text, expected", SITE_ERRORS)
def test_a_bad_site_file_is_one_error_naming_line_field_and_problem(tmp_path, text, expected):
    msg = error_of(tmp_path, text)
    if isinstance(expected, Starts):
        assert msg.startswith(expected), msg
    else:
        assert msg == expected


@pytest.mark.parametrize("name", ["modbus", "s7comm", "enip", "mqtt", "dnp3", "http", "https", "ssh",
                                  "snmp", "dns", "ntp", "telnet", "ftp", "TCP/502", "udp/47808"])
def test_good_allow_entries(tmp_path, name):
    s = load_site(write(tmp_path, ZONES + f"conduits:\n  - {{from: control, to: sensing, allow: [{name}]}}\n"))
    assert s.conduits[0].allow[0].text == name.lower()


def test_unquoted_time_is_read_as_written(tmp_path):
    # YAML 1.1 reads 02:00 as the base-60 number 120; the site model reads the text
    s = load_site(write(tmp_path, ZONES + "maintenance_windows:\n  - {days: [sun], start: 02:00, hours: 4}\n"))
    assert s.maintenance_windows[0].start == "02:00"


def test_not_utf8(tmp_path):
    p = tmp_path / "site.yaml"
    p.write_bytes(b"site: A\nzones: \xff\xfe\n")
    with pytest.raises(SiteError, match=r":2: file is not UTF-8 text$"):
        load_site(p)


def test_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append("zones: [*a8]")
    with pytest.raises(SiteError):
        parse_site("\n".join(lines) + "\n")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_garbage_only_raises_site_error(text):
    try:
        parse_site(text)
    except SiteError as exc:
        assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(ARCH_EXAMPLE.splitlines()), max_size=20))
def test_shuffled_lines_only_raise_site_error(lines):
    try:
        parse_site("\n".join(lines) + "\n")
    except SiteError as exc:
        assert "\n" not in str(exc)


def _yaml12ish(text: str):
    """YAML as editors read it (no timestamps: dates stay text)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass
    Loader.yaml_implicit_resolvers = {k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
                                      for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return yaml.load(text, Loader=Loader)


def test_shipped_json_schema_is_current_and_accepts_the_examples():
    import json

    from plantguard.site import site_schema
    jsonschema = pytest.importorskip("jsonschema")
    shipped = json.loads((ROOT / "src/plantguard/data/site.schema.json").read_text())
    assert shipped == site_schema()
    for text in ((ROOT / "examples/site.yaml").read_text(), ARCH_EXAMPLE):
        jsonschema.validate(_yaml12ish(text), shipped)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_yaml12ish(ZONES.replace("kind: ot-sensing", "kind: ot-sensor")), shipped)


def test_declared_name_role_and_owner_show_in_every_report(tmp_path):
    """A device's name, role and owner from the site file's assets: reach the JSON contract
    (declared), the Markdown and the HTML device tables."""
    import json

    from conftest import shared_path
    from typer.testing import CliRunner

    from plantguard.cli import app
    cap = shared_path("pcaps/zeek/modbus/modbusSmall.pcap")
    site = tmp_path / "site.yaml"
    site.write_text("site: test\nassets:\n  - ip: 118.189.96.132\n    name: Press line PLC\n    role: plc\n"
                    "    owner: Line 3 maintenance <ot@example>\n")
    out = {}
    for fmt in ("json", "md", "html"):
        target = tmp_path / f"report.{fmt}"
        r = CliRunner().invoke(app, ["assess", str(cap), "--site", str(site), "-f", fmt, "-o", str(target), "-q"])
        assert r.exit_code == 0, r.output
        out[fmt] = target.read_text()
    asset = next(a for a in json.loads(out["json"])["assets"] if a["ip"] == "118.189.96.132")
    assert asset["declared"]["owner"] == "Line 3 maintenance <ot@example>" and asset["role"] == "plc"
    row = next(line for line in out["md"].splitlines() if line.startswith("| 118.189.96.132"))
    assert "Press line PLC" in row and "Line 3 maintenance" in row
    assert "Line 3 maintenance &lt;ot@example&gt;" in out["html"] and "Press line PLC" in out["html"]
