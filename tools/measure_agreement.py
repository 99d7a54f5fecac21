#!/usr/bin/env python3
"""Agreement of plantguard with tshark and the Zeek/ICSNPP peer baselines over the whole shared
corpus (../shared/data/pcaps/**), on five dimensions: hosts, flows, applications, operations and
identity. The method and the normalisation of each dimension are in docs/agreement.md (written by
--write); in short:

* hosts        set of unicast IP addresses seen as a packet's source or destination
* flows        set of (l4, client, server, server port) for TCP/UDP: plantguard folds a flow per
               (l4, client, server, server port, VLAN) and keeps the first client port only, so a
               tshark packet (src, sport, dst, dport) is projected on that key (the orientation
               plantguard chose when it has that flow, else the lower port is the server)
* applications per flow present on both sides: plantguard's app against the tshark dissectors seen
               on that flow, mapped to plantguard's protocol names (others count as "none")
* operations   set of (flow, family, code) for the request-side function/service codes
* identity     each device identity value tshark decoded (baselines/tshark-derived/
               identity_evidence.json) must appear among the capture's plantguard asset values

Usage: python tools/measure_agreement.py [--data DIR] [--only SUBSTR ...] [--write docs/agreement.md]
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("PLANTGUARD_SHARED_DATA", ROOT.parent / "shared" / "data"))
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz")
DIMENSIONS = ("hosts", "flows", "applications", "operations", "identity")

# ---------------------------------------------------------------------------------------------
# tshark

TSHARK_FIELDS = (
    "frame.number", "frame.protocols", "eth.src", "eth.dst", "ip.src", "ip.dst", "ipv6.src",
    "ipv6.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
    "modbus.func_code", "s7comm.header.rosctr", "s7comm.param.func", "s7comm.param.userdata.type",
    "s7comm.param.userdata.funcgroup", "s7comm.param.userdata.subfunc", "cip.sc", "cip.rr",
    "enip.command", "enip.cpf.typeid", "dnp3.al.func", "bacapp.type", "bacapp.confirmed_service",
    "bacapp.unconfirmed_service", "iec60870_asdu.typeid", "iec60870_asdu.causetx", "mqtt.msgtype",
    "opcua.servicenodeid.numeric", "snmp.data", "dns.flags.response", "dns.qry.type",
    "http.request.method", "ftp.request.command", "pn_dcp.service_id", "pn_dcp.service_type",
    "dcerpc.pkt_type", "dcerpc.opnum", "dcerpc.dg_if_id", "nbns.flags.response", "nbns.flags.opcode",
    "tls.record.content_type", "hart_ip.message_type", "hart_ip.message_id", "hart_ip.pt.command",
)
F = {name: i for i, name in enumerate(TSHARK_FIELDS)}

# tshark dissector name -> plantguard protocol module NAME (the application vocabulary compared)
TSHARK_APP = {
    "mbtcp": "modbus", "modbus": "modbus",
    "enip": "enip", "cip": "enip", "cipio": "enip", "cipcm": "enip", "cipcls": "enip",
    "s7comm": "s7comm", "s7comm-plus": "s7comm", "s7comm_plus": "s7comm",
    "dnp3": "dnp3",
    "bvlc": "bacnet", "bacnet": "bacnet", "bacapp": "bacnet",
    "iec60870_104": "iec104", "iec60870_asdu": "iec104",
    "mqtt": "mqtt", "opcua": "opcua", "http": "http", "tls": "tls", "ssl": "tls", "ssh": "ssh",
    "dns": "dns", "ftp": "ftp", "telnet": "telnet", "snmp": "snmp", "dhcp": "dhcp", "bootp": "dhcp",
    "pn_io": "profinet", "pn_dcp": "profinet",
    # same wire format, decoded by plantguard's dns / http modules
    "mdns": "dns", "llmnr": "dns", "ssdp": "http",
    "nbns": "nbns",
    "hart_ip": "hart-ip",
}
# PROFINET IO device/controller/supervisor DCE/RPC interfaces (dea00001/2/3-6c97-11d1-8271-00a02442df7d):
# tshark 4.0 often stops at `dcerpc` for them, the interface UUID still says PNIO-CM
PNIO_UUID_PREFIX = ("dea00001-6c97-11d1-8271-00a02442df7d", "dea00002-6c97-11d1-8271-00a02442df7d",
                    "dea00003-6c97-11d1-8271-00a02442df7d", "dea00004-6c97-11d1-8271-00a02442df7d")
WEAK = {"cotp", "tpkt"}   # ISO-on-TCP alone: s7comm unless the flow carries something else (MMS)
# dissectors that sit on COTP/DCE-RPC but are not what plantguard's module for that carrier means
TSHARK_NOT_PLANTGUARD = {"mms", "ses", "pres", "acse", "goose", "sv"}
GENERIC = {"eth", "ethertype", "vlan", "ip", "ipv6", "tcp", "udp", "data", "frame", "sll", "null",
           "ppp", "gre", "ipv6.hopopts", "ipv6.routing", "ipv6.fraghdr", "vxlan", "mpls", "erspan",
           "llc", "raw", "radiotap", "wlan", "wlan_radio", "loop", "linux_sll", "sll2", "_ws.malformed",
           "_ws.short", "_ws.expert", "tcp.segments", "ip.reassembled", "pkt_comment", "etherip"}

ENIP_CARRIERS = {0x0000, 0x006F, 0x0070}   # NOP, SendRRData, SendUnitData: carry CIP, not operations
CIP_WRAPPERS = {0x0A, 0x52}                # Multiple Service Packet, Unconnected Send
SNMP_REQUESTS = {0, 1, 3, 5}               # get, get-next, set, get-bulk (PDU choice index)
IEC104_COMMAND_TYPES = set(range(45, 70)) | set(range(100, 108)) | set(range(110, 114))
IEC104_FILE_TYPES = set(range(120, 128))
IEC104_CONTROL_CAUSES = {5, 6, 8}          # request, activation, deactivation
FTP_FILE_COMMANDS = {"RETR", "STOR", "STOU", "APPE", "DELE", "RNFR", "RNTO", "MKD", "RMD", "SITE"}
BACNET_ANSWERS = {0, 1}                    # I-Am, I-Have: answers to Who-Is / Who-Has, not requests
DCP_SERVICES = {3: "dcp-get", 4: "dcp-set", 5: "dcp-identify"}

# Zeek conn.log service -> plantguard protocol NAME
ZEEK_APP = {"modbus": "modbus", "dnp3": "dnp3", "ssl": "tls", "http": "http", "ftp": "ftp", "dns": "dns",
            "snmp": "snmp", "dhcp": "dhcp", "mqtt": "mqtt", "ssh": "ssh", "enip": "enip", "cip": "enip",
            "s7comm": "s7comm", "cotp": "s7comm", "bacnet": "bacnet", "opcua_binary": "opcua",
            "profinet_io_cm": "profinet", "spicy_profinet_io_cm": "profinet", "telnet": "telnet",
            "iec104": "iec104", "dnp3_tcp": "dnp3", "dnp3_udp": "dnp3", "opcua-binary": "opcua",
            "s7comm-plus": "s7comm", "spicy_hart_ip_tcp": "hart-ip", "spicy_hart_ip_udp": "hart-ip"}

# identity_evidence.json: which (kind, key) are device identity (the rest are listed as not compared)
IDENTITY_KEYS = {
    ("bacnet_object_name", "object_name"), ("bacnet_vendor", "vendor_identifier"),
    ("cdp_platform", "platform"), ("cdp_platform", "software_version"),
    ("cip_identity", "major_rev"), ("cip_identity", "minor_rev"), ("cip_identity", "product_name"),
    ("cip_identity", "vendor_id"), ("enip_listidentity", "name"), ("enip_listidentity", "prodcode"),
    ("enip_listidentity", "revision"), ("enip_listidentity", "vendor"),
    ("http_server", "server"), ("lldp_sysname", "desc"), ("lldp_sysname", "name"),
    ("mqtt_client", "clientid"), ("opcua_app", "ApplicationUri"), ("opcua_app", "ProductUri"),
    ("pn_dcp_station", "suboption_device_devicevendorvalue"),
    ("pn_dcp_station", "suboption_device_nameofstation"), ("s7_szl_component_id", "cputypname"),
    ("s7_szl_component_id", "name"), ("s7_szl_component_id", "serialn"),
}
# Evidence values checked by hand that are not a device's identity, or that tshark decoded wrong:
# (capture file name, "kind/key=value") -> why. Listed under the table, never counted as agreed.
IDENTITY_ADJUDICATED = {
    ("bacnet_error_reject_abort.pcap", "bacnet_vendor/vendor_identifier=7"):
        "the vendor id of a ConfirmedPrivateTransfer request (frame 18): whose proprietary service is called, "
        "not a device's vendor",
    ("bacnet_error_reject_abort.pcap", "bacnet_vendor/vendor_identifier=0"):
        "the vendor id of an UnconfirmedPrivateTransfer request (frame 33), not a device's vendor",
    ("bacnet_segmented_data.pcap", "bacnet_object_name/object_name=\ufffd\ufffd\ufffdx\ufffdQ"):
        "tshark cannot decode character set 1 (JIS X 0208, code page 932) and prints replacement characters; "
        "plantguard reads the name as \u6e29\u5ea6\uff12 (temperature 2)",
    ("profinet_io_cm_mixed_1.pcap", "pn_dcp_station/suboption_device_nameofstation=turck"):
        "a name the IO controller searched for with DCP Identify; no station answered to it",
    ("profinet_io_cm_mixed_2.pcapng", "pn_dcp_station/suboption_device_nameofstation=turck"):
        "a name the IO controller searched for with DCP Identify; no station answered to it",
}
IDENTITY_NOT_COMPARED = {
    "dnp3_addr": "DNP3 link addresses, not a device identity",
    "ftp_banner": "the text of every FTP reply ('Transfer complete.', 'USER OK'), not only the 220 greeting"
                  " (FTP server software is compared in baseline-differences/ftp.md)",
    "iec104_asdu": "ASDU type ids (covered by operations)",
    "tls_cert_cn": "names in every certificate of the chain, CAs included",
    "snmp_strings": "raw octet strings (hex), not decoded",
    "s7_szl_module_id": "raw SZL numbers (ausbg/ausbe/bgtyp need vendor decoding)",
    "http_server/user_agent": "client software, not the identity of a device",
    "mqtt_client/topic": "a topic, not an identity",
}


def _unicast(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        a = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return not (a.is_multicast or a.is_unspecified or (a.version == 4 and ip == "255.255.255.255"))


def _ints(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part, 0))
        except ValueError:
            pass
    return out


def _last(text: str) -> str:
    return text.rsplit(",", 1)[-1] if text else ""


# Captures whose server runs on a port tshark does not associate with the protocol: tshark is told
# what the capture's own name or documentation says (a decode-as option, as a tshark user would),
# so that the comparison is of decodings, not of tshark's port table.
DECODE_AS = {
    "open62541_client-server_mainloop-not-localhost-non-standard-port.pcap": ("tcp.port==48010,opcua",),
    "opc-ua-ap-method-wireshark-freeze.pcap": ("tcp.port==12001,opcua",),
    "dnp3_read_p20001.pcap": ("tcp.port==20001,dnp3",),
    # no SYN: tshark takes the wrong side for the server (baseline-differences/enip.md E2)
    "EIP-ControlProtocolChangeAttempt.pcap": ("tcp.port==1102,enip",),
}
# operation families a peer has no dissector for: counted apart ("not comparable"), never as agreed
PEER_CANNOT_DECODE = {"tshark": {"s7comm-plus": "tshark 4.0 has no S7comm-plus dissector (CATALOG.md); "
                                                "compared with icsnpp's s7comm_plus.log in baseline-differences/s7comm.md",
                                 "hart-ip-direct": "tshark 4.0's hart_ip knows message ids 0-3 only, no direct PDU; "
                                                   "compared with icsnpp's hart_ip_direct_pdu_command.log in "
                                                   "baseline-differences/hart-ip.md"}}
HART_IP_SESSION_OPS = {0: "session-initiate", 1: "session-close"}   # HART-IP message id -> plantguard op code


def run_tshark(path: Path, timeout: int = 600) -> tuple[list[list[str]] | None, str]:
    cmd = ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
           "-E", "aggregator=,"]
    for opt in DECODE_AS.get(path.name, ()):
        cmd += ["-d", opt]
    for name in TSHARK_FIELDS:
        cmd += ["-e", name]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace", check=False)
    except subprocess.TimeoutExpired:
        return None, "tshark timed out"
    rows = [line.split("\t") for line in proc.stdout.splitlines() if line]
    err = proc.stderr.strip().splitlines()
    if proc.returncode != 0 and not rows:
        return None, (err[-1] if err else f"tshark exit {proc.returncode}")
    return rows, (err[-1] if proc.returncode != 0 and err else "")


# ---------------------------------------------------------------------------------------------
# facts per capture

@dataclass
class Facts:
    hosts: set = field(default_factory=set)
    flows: set = field(default_factory=set)           # (l4, client, server, port)
    apps: dict = field(default_factory=dict)          # flow -> set of labels (tshark) / label (pg)
    ops: set = field(default_factory=set)             # (flow, family, code)
    other_apps: Counter = field(default_factory=Counter)  # tshark dissectors outside pg's vocabulary
    claimed: dict = field(default_factory=dict)       # flow -> the peer named some service (Zeek)
    only_other_ip: set = field(default_factory=set)   # hosts seen only in IGMP and other IP protocols


def project(l4: str, a: str, ap: int, b: str, bp: int, known: set) -> tuple:
    """The plantguard flow key for a packet between (a, ap) and (b, bp)."""
    k1, k2 = (l4, a, b, bp), (l4, b, a, ap)
    if k1 in known:
        return k1
    if k2 in known:
        return k2
    if ap < bp:
        return k2
    return k1


def l2key(m1: str | None, m2: str | None) -> tuple:
    x, y = sorted([m1 or "", m2 or ""])
    return ("eth", x, y, 0)


def plantguard_facts(path: Path):
    from plantguard.capture.engine import analyze
    from plantguard.inventory.build import build_assets
    result = analyze([str(path)])
    assets = build_assets(result)
    f = Facts()
    conn_logged = set()                          # hosts of what Zeek's conn.log can hold (TCP, UDP, ICMP)
    for fl in result.flows:                      # hosts: endpoints of any IP flow (ICMP too) ...
        f.hosts |= {ip for ip in (fl.client, fl.server) if _unicast(ip)}
        if fl.l4 in ("tcp", "udp", "icmp", "icmpv6"):
            conn_logged |= {fl.client, fl.server}
    for o in result.observations:                # ... and of any observed packet
        f.hosts |= {ip for ip in (o.src, o.dst) if _unicast(ip)}
        conn_logged |= {o.src, o.dst}
    f.only_other_ip = f.hosts - conn_logged
    for fl in result.flows:
        if fl.l4 not in ("tcp", "udp"):
            continue
        key = (fl.l4, fl.client, fl.server, fl.port)
        f.flows.add(key)
        if fl.app and f.apps.get(key) is None:
            f.apps[key] = fl.app
        else:
            f.apps.setdefault(key, fl.app)
    for o in result.observations:
        if o.kind != "operation":
            continue
        code = o.data.get("code")
        family = o.proto
        if o.proto == "enip":
            if o.data.get("name") == "Implicit I/O":
                family = "enip-io"
            elif str(o.data.get("detail") or "").startswith("encapsulation command"):
                family = "enip-cmd"
            else:
                family = "cip"
                if code in CIP_WRAPPERS:
                    continue
        if o.proto == "dnp3" and code == 0:
            continue
        if o.proto == "s7comm" and str(o.data.get("detail") or "").startswith("S7comm-plus"):
            family = "s7comm-plus"
        if o.proto == "hart-ip" and isinstance(code, int):
            # a token-passing command names its device in the detail, a direct PDU's does not;
            # tshark reports an extended command (16-bit) by its wire command, 31
            if not str(o.data.get("detail") or "").startswith(("polling address", "unique address")):
                family = "hart-ip-direct"
            elif code > 255:
                code = 31
        if o.proto == "hart-ip" and code == "read-audit-log":
            family = "hart-ip-direct"   # message id 5: tshark 4.0 does not decode it either
        if o.l4 in ("tcp", "udp"):
            key = project(o.l4, o.src, o.sport, o.dst, o.dport, f.flows)
        else:
            key = l2key(o.src_mac, o.dst_mac)
        if isinstance(code, str) and o.proto in ("http", "ftp"):
            code = code.upper()
        f.ops.add((key, family, code))
    warnings = []
    for cs in result.captures:
        for w in getattr(cs, "warnings", []) or []:
            warnings.append(str(w))
    texts = set()
    for a in assets:
        _flatten(a.as_dict(), texts)
    return f, texts, warnings, result


def _flatten(obj, out: set) -> None:
    if isinstance(obj, dict):
        for v in obj.values():
            _flatten(v, out)
    elif isinstance(obj, (list, tuple, set)):
        for v in obj:
            _flatten(v, out)
    elif obj is not None and not isinstance(obj, bool):
        out.add(_norm(str(obj)))


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def tshark_facts(rows: list[list[str]], pg_flows: set) -> Facts:
    f = Facts()
    conv_labels: dict = defaultdict(set)
    for r in rows:
        r = r + [""] * (len(TSHARK_FIELDS) - len(r))
        protos = r[F["frame.protocols"]].split(":")
        for col in ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst"):
            for ip in r[F[col]].split(","):
                if _unicast(ip):
                    f.hosts.add(ip)
        if "tcp" in protos:
            l4, sp, dp = "tcp", r[F["tcp.srcport"]], r[F["tcp.dstport"]]
        elif "udp" in protos:
            l4, sp, dp = "udp", r[F["udp.srcport"]], r[F["udp.dstport"]]
        else:
            l4 = ""
        key = None
        icmp = "icmp" in protos or "icmpv6" in protos
        if l4 and not icmp:
            src = _last(r[F["ipv6.src"]]) if "ipv6" in protos and protos.index("ipv6") > (
                protos.index("ip") if "ip" in protos else -1) else _last(r[F["ip.src"]])
            dst = _last(r[F["ipv6.dst"]]) if "ipv6" in protos and protos.index("ipv6") > (
                protos.index("ip") if "ip" in protos else -1) else _last(r[F["ip.dst"]])
            try:
                spi, dpi = int(_last(sp)), int(_last(dp))
            except ValueError:
                spi = dpi = None
            if src and dst and spi is not None:
                key = project(l4, src, spi, dst, dpi, pg_flows)
                f.flows.add(key)
                to_server = (dst, dpi) == (key[2], key[3])
                label = _app_label(protos, f, _pnio(r))
                if label == "tls" and not r[F["tls.record.content_type"]]:
                    label = None    # "Continuation Data": tshark labels by port, it decoded no record
                conv_labels[key].add(label)
                _ops_ip(r, protos, key, to_server, f)
        if "pn_dcp" in protos:
            k2 = l2key(_last(r[F["eth.src"]]), _last(r[F["eth.dst"]]))
            for sid, stype in zip(_ints(r[F["pn_dcp.service_id"]]), _ints(r[F["pn_dcp.service_type"]])):
                if stype == 0 and sid in DCP_SERVICES:
                    f.ops.add((k2, "profinet", DCP_SERVICES[sid]))
    for k, labels in conv_labels.items():
        strong = {x for x in labels if x and x not in ("<weak>", "<other>")}
        if strong:
            f.apps[k] = strong
        elif "<weak>" in labels and "<other>" not in labels:
            f.apps[k] = {"s7comm"}
        else:
            f.apps[k] = set()
    return f


def _pnio(r: list[str]) -> bool:
    return any(u.lower() in PNIO_UUID_PREFIX for u in r[F["dcerpc.dg_if_id"]].split(","))


def _app_label(protos: list[str], f: Facts, pnio_port: bool = False) -> str | None:
    above = protos[max(protos.index(p) for p in ("tcp", "udp") if p in protos) + 1:]
    if any(p in TSHARK_NOT_PLANTGUARD for p in above):
        name = next((p for p in above if p in ("mms", "goose", "sv")), "mms")
        f.other_apps[name] += 1
        return "<other>"
    for p in above:
        if p == "dcerpc":
            if "pn_io" in above or pnio_port:
                return "profinet"
            continue
        if p in TSHARK_APP:
            return TSHARK_APP[p]
    rest = [p for p in above if p not in GENERIC and p not in WEAK and not p.startswith("_ws")]
    if rest:
        f.other_apps[rest[0]] += 1
        return "<other>"
    if any(p in WEAK for p in above):
        return "<weak>"
    return None


def _modbus_query(r: list[str], protos: list[str], to_server: bool) -> bool:
    """tshark's own rule: a Modbus/TCP PDU sent to port 502 is a query (whatever side opened the
    connection); only when neither or both ports are 502 does plantguard's orientation decide."""
    sp, dp = (r[F["tcp.srcport"]], r[F["tcp.dstport"]]) if "tcp" in protos else (r[F["udp.srcport"]], r[F["udp.dstport"]])
    sp, dp = _last(sp), _last(dp)
    if (dp == "502") != (sp == "502"):
        return dp == "502"
    return to_server


def _ops_ip(r: list[str], protos: list[str], key: tuple, to_server: bool, f: Facts) -> None:
    add = f.ops.add
    if "modbus" in protos and _modbus_query(r, protos, to_server):
        for c in _ints(r[F["modbus.func_code"]]):
            add((key, "modbus", c & 0x7F))
    if "s7comm" in protos:
        rosctr = _ints(r[F["s7comm.header.rosctr"]])
        if 1 in rosctr:
            for c in _ints(r[F["s7comm.param.func"]]):
                add((key, "s7comm", c))
        if 7 in rosctr:
            for t, g, s in zip(_ints(r[F["s7comm.param.userdata.type"]]), _ints(r[F["s7comm.param.userdata.funcgroup"]]),
                               _ints(r[F["s7comm.param.userdata.subfunc"]])):
                if t == 4:
                    add((key, "s7comm", (g << 8) | s))
    if "enip" in protos and to_server:
        for c in _ints(r[F["enip.command"]]):
            if c not in ENIP_CARRIERS:
                add((key, "enip-cmd", c))
    if "cip" in protos:
        scs, rrs = _ints(r[F["cip.sc"]]), _ints(r[F["cip.rr"]])
        for i, c in enumerate(scs):
            rr = rrs[i] if i < len(rrs) else 0
            if not rr and c not in CIP_WRAPPERS:
                add((key, "cip", c & 0x7F))
    if key[0] == "udp" and ("cipio" in protos or ("enip" in protos and 0xB1 in _ints(r[F["enip.cpf.typeid"]]))):
        add((key, "enip-io", 0xB1))
    if "dnp3" in protos:
        for c in _ints(r[F["dnp3.al.func"]]):
            if c != 0:
                add((key, "dnp3", c))
    if "bacapp" in protos:
        types = _ints(r[F["bacapp.type"]])
        if 0 in types:
            for c in _ints(r[F["bacapp.confirmed_service"]]):
                add((key, "bacnet", c))
        if 1 in types:
            for c in _ints(r[F["bacapp.unconfirmed_service"]]):
                if c not in BACNET_ANSWERS:
                    add((key, "bacnet", c))
    if "iec60870_asdu" in protos:
        for t, c in zip(_ints(r[F["iec60870_asdu.typeid"]]), _ints(r[F["iec60870_asdu.causetx"]])):
            if (t in IEC104_COMMAND_TYPES and (c & 0x3F) in IEC104_CONTROL_CAUSES) or t in IEC104_FILE_TYPES:
                add((key, "iec104", t))
    if "mqtt" in protos and to_server:
        for c in _ints(r[F["mqtt.msgtype"]]):
            add((key, "mqtt", c))
    if "opcua" in protos and to_server:
        for c in _ints(r[F["opcua.servicenodeid.numeric"]]):
            add((key, "opcua", c))
    if "snmp" in protos:
        for c in _ints(r[F["snmp.data"]]):
            if c in SNMP_REQUESTS:
                add((key, "snmp", c))
    if "dns" in protos and "mdns" not in protos and r[F["dns.flags.response"]] in ("0", "False", "false"):
        for c in _ints(r[F["dns.qry.type"]]):
            add((key, "dns", c))
    if "nbns" in protos and r[F["nbns.flags.response"]] in ("0", "False", "false"):
        for c in _ints(r[F["nbns.flags.opcode"]]):
            add((key, "nbns", c))
    if "http" in protos:
        for m in filter(None, r[F["http.request.method"]].split(",")):
            add((key, "http", m.upper()))
    if "ftp" in protos:
        for m in filter(None, r[F["ftp.request.command"]].split(",")):
            if m.upper() in FTP_FILE_COMMANDS:
                add((key, "ftp", m.upper()))
    if "hart_ip" in protos:
        for t, i, c in zip(_ints(r[F["hart_ip.message_type"]]), _ints(r[F["hart_ip.message_id"]]),
                           _ints(r[F["hart_ip.pt.command"]]) or [None] * 16):
            if t == 0 and i == 3 and c is not None:
                add((key, "hart-ip", c))
            elif t == 0 and i in HART_IP_SESSION_OPS:
                add((key, "hart-ip", HART_IP_SESSION_OPS[i]))
    if "dcerpc" in protos and ("pn_io" in protos or _pnio(r)):
        for t, o in zip(_ints(r[F["dcerpc.pkt_type"]]), _ints(r[F["dcerpc.opnum"]])):
            if t == 0:
                add((key, "profinet", o))


# ---------------------------------------------------------------------------------------------
# Zeek / ICSNPP baselines (conn.log: hosts, flows, applications)

def zeek_conn_logs(data: Path) -> dict[str, list[tuple]]:
    """capture rel path -> (conn.log, columns or None) of baselines mapped to that capture alone;
    headerless logs (zeek-cut) take their columns from ORACLE_MAP's notes."""
    out: dict[str, list[Path]] = defaultdict(list)
    omap = data / "baselines" / "ORACLE_MAP.tsv"
    if not omap.exists():
        return out
    with omap.open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            traces = [t for t in (row.get("trace(s)") or "").split(";") if t and not t.startswith("(missing")]
            if len(traces) != 1:
                continue
            bdir = data / (row.get("baseline_dir") or "")
            m = re.search(r"conn\.log: headerless; columns = \[([^\]]*)\]", row.get("notes") or "")
            cols = m.group(1).split() if m else None
            for name in (row.get("baseline_files") or "").split(","):
                if name.strip() == "conn.log" and (bdir / "conn.log").exists():
                    out[traces[0]].append((bdir / "conn.log", cols))
    return out


def zeek_facts(logs: list[Path], pg_flows: set) -> Facts:
    f = Facts()
    for log, cols in logs:
        fields = cols
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("#fields"):
                fields = line.split("\t")[1:]
                continue
            if line.startswith("#") or not fields:
                continue
            rec = dict(zip(fields, line.split("\t")))
            a, b = rec.get("id.orig_h"), rec.get("id.resp_h")
            for ip in (a, b):
                if _unicast(ip):
                    f.hosts.add(ip)
            proto = rec.get("proto")
            if proto not in ("tcp", "udp"):
                continue
            try:
                ap, bp = int(rec["id.orig_p"]), int(rec["id.resp_p"])
            except (KeyError, ValueError):
                continue
            key = project(proto, a, ap, b, bp, pg_flows)
            f.flows.add(key)
            services = [x for x in (rec.get("service") or "-").split(",") if x not in ("-", "")]
            labels = {ZEEK_APP[x] for x in services if x in ZEEK_APP}
            if proto == "udp" and 137 in (ap, bp) and "dns" in labels:   # Zeek's dns analyzer parses NBNS
                labels = (labels - {"dns"}) | {"nbns"}
            if services:
                f.claimed[key] = True
            f.apps.setdefault(key, set()).update(labels)
    return f


# ---------------------------------------------------------------------------------------------
# comparison

@dataclass
class Tally:
    items: int = 0
    agreed: int = 0
    causes: Counter = field(default_factory=Counter)
    per_capture: Counter = field(default_factory=Counter)   # (capture, cause) -> count
    examples: dict = field(default_factory=dict)             # (capture, cause) -> example text

    def add(self, capture: str, ok: bool, cause: str = "", example: str = "") -> None:
        self.items += 1
        if ok:
            self.agreed += 1
            return
        self.causes[cause] += 1
        self.per_capture[(capture, cause)] += 1
        self.examples.setdefault((capture, cause), example)

    @property
    def pct(self) -> float:
        return 100.0 * self.agreed / self.items if self.items else 100.0


def _fmt_flow(k: tuple) -> str:
    return f"{k[0]} {k[1]} -> {k[2]}:{k[3]}" if k[0] != "eth" else f"eth {k[1]} <-> {k[2]}"


def compare_sets(t: Tally, cap: str, pg: set, peer: set, peer_name: str, what: str, fmt=str) -> None:
    for item in sorted(pg | peer, key=str):
        if item in pg and item in peer:
            t.add(cap, True)
        elif item in pg:
            t.add(cap, False, f"{what} only plantguard", fmt(item))
        else:
            t.add(cap, False, f"{what} only {peer_name}", fmt(item))


def compare_hosts(t: Tally, cap: str, pg: set, peer: set, peer_name: str) -> None:
    for ip in sorted(pg | peer):
        if ip in pg and ip in peer:
            t.add(cap, True)
            continue
        side = "only plantguard" if ip in pg else f"only {peer_name}"
        kind = ""
        if ip.endswith(".255"):
            kind = " (x.x.x.255)"
        elif ip.lower().startswith("fe80"):
            kind = " (IPv6 link-local)"
        t.add(cap, False, f"host {side}{kind}", ip)


def compare_flows(t: Tally, cap: str, pg: set, peer: set, peer_name: str) -> None:
    for k in sorted(pg | peer, key=str):
        if k in pg and k in peer:
            t.add(cap, True)
            continue
        if k in pg:
            cause = "flow only plantguard"
        else:
            cause = f"flow only {peer_name}"
            if k[3] == 0 or k[1] == k[2]:
                cause += " (port 0 or same host)"
        t.add(cap, False, cause, _fmt_flow(k))


def compare_apps(t: Tally, cap: str, pg: Facts, peer: Facts, peer_name: str, claims_only: bool = False) -> int:
    """claims_only: compare only flows the peer names a service for (Zeek in bare mode, -b, loads
    one protocol's scripts, so no service there is no claim)."""
    both_none = 0
    for k in sorted(pg.flows & peer.flows, key=str):
        mine = pg.apps.get(k)
        theirs = peer.apps.get(k) or set()
        if claims_only and not peer.claimed.get(k):
            both_none += 1
            continue
        if mine is None and not theirs:
            both_none += 1
            continue
        ok = mine in theirs if mine else False
        if ok:
            t.add(cap, True)
        else:
            t.add(cap, False, f"app plantguard={mine or 'none'} {peer_name}={'/'.join(sorted(theirs)) or 'none'}",
                  _fmt_flow(k))
    return both_none


def compare_ops(t: Tally, cap: str, pg: set, peer: set, peer_name: str, apart: Counter) -> None:
    # every item counts and the cause says which side missed it, except families the peer has no
    # dissector for: those are counted apart (PEER_CANNOT_DECODE), shown beside the table
    cannot = PEER_CANNOT_DECODE.get(peer_name, {})
    for item in sorted(pg | peer, key=str):
        key, family, code = item
        if family in cannot:
            apart[(peer_name, family)] += 1
            continue
        if item in pg and item in peer:
            t.add(cap, True)
        elif item in pg:
            t.add(cap, False, f"{family} op only plantguard", f"{_fmt_flow(key)} code {code}")
        else:
            t.add(cap, False, f"{family} op only {peer_name}", f"{_fmt_flow(key)} code {code}")


def _identity_match(kind: str, key: str, value: str, texts: set) -> bool:
    v = _norm(value)
    if not v:
        return True
    blob = "\n".join(texts)
    cands = {v, v.strip("()")}
    num = None
    try:
        num = int(value, 0)
    except ValueError:
        pass
    if num is not None:
        if key == "revision":
            cands = {f"{num >> 8}.{num & 0xFF}"}
        elif key in ("major_rev", "minor_rev"):
            pat = rf"(^|[^\d.])v?{num}\." if key == "major_rev" else rf"\d\.0*{num}($|[^\d])"
            return any(re.search(pat, x) for x in texts)
        else:
            return bool({str(num), f"0x{num:04x}", f"0x{num:x}"} & texts)
    return any(c and c in blob for c in cands)


def compare_identity(t: Tally, cap: str, evidence: dict, texts: set, skipped: Counter,
                     adjudicated: list | None = None) -> None:
    for kind, values in sorted(evidence.items()):
        for raw in values:
            key, _, value = raw.partition("=")
            if (kind, key) not in IDENTITY_KEYS:
                skipped[f"{kind}/{key}"] += 1
                continue
            why = IDENTITY_ADJUDICATED.get((Path(cap).name, f"{kind}/{raw}"))
            if why is not None and adjudicated is not None:
                adjudicated.append((cap, f"{kind}/{raw}", why, _identity_match(kind, key, value, texts)))
                continue
            ok = _identity_match(kind, key, value, texts)
            t.add(cap, ok, f"identity {kind}/{key} not in plantguard's assets", raw)


# ---------------------------------------------------------------------------------------------
# driver

@dataclass
class Report:
    tallies: dict = field(default_factory=dict)      # (dimension, peer) -> Tally
    captures: int = 0
    unreadable: list = field(default_factory=list)  # (capture, who, why)
    warnings: list = field(default_factory=list)    # (capture, text)
    other_apps: Counter = field(default_factory=Counter)
    other_app_flows: Counter = field(default_factory=Counter)
    both_none: Counter = field(default_factory=Counter)
    identity_skipped: Counter = field(default_factory=Counter)
    not_comparable: Counter = field(default_factory=Counter)   # (peer, family) -> operations
    identity_adjudicated: list = field(default_factory=list)  # (capture, evidence, why, found anyway)
    zeek_captures: int = 0
    seconds: float = 0.0

    def tally(self, dim: str, peer: str) -> Tally:
        return self.tallies.setdefault((dim, peer), Tally())


def list_captures(data: Path) -> list[Path]:
    root = data / "pcaps"
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES))


def measure(data: Path = DEFAULT_DATA, only: list[str] | None = None, progress=None) -> Report:
    t0 = time.monotonic()
    rep = Report()
    evid_path = data / "baselines" / "tshark-derived" / "identity_evidence.json"
    evidence = json.loads(evid_path.read_text())["files"] if evid_path.exists() else {}
    zeek = zeek_conn_logs(data)
    caps = list_captures(data)
    if only:
        caps = [c for c in caps if any(s in str(c.relative_to(data)) for s in only)]
    with ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1)) as pool:
        # tshark runs on the other cores while plantguard reads the capture before
        for path, (rows, err) in zip(caps, _ahead(pool, run_tshark, caps, TSHARK_AHEAD)):
            _measure_one(rep, data, path, rows, err, evidence, zeek, progress)
    rep.seconds = time.monotonic() - t0
    return rep


TSHARK_AHEAD = 4   # tshark outputs held at most, waiting for their capture's turn


def _ahead(pool, fn, items, depth):
    """fn(item) for every item, in order, at most `depth` computed ahead of the consumer."""
    pending = deque()
    it = iter(items)
    for item in it:
        pending.append(pool.submit(fn, item))
        if len(pending) >= depth:
            break
    while pending:
        yield pending.popleft().result()
        for item in it:
            pending.append(pool.submit(fn, item))
            break


def _measure_one(rep: Report, data: Path, path: Path, rows, err, evidence, zeek, progress) -> None:
    """One capture: plantguard's facts, compared with tshark's (rows, err) and Zeek's."""
    rel = str(path.relative_to(data))
    if progress:
        progress(rel)
    rep.captures += 1
    try:
        pg, texts, warns, _ = plantguard_facts(path)
    except Exception as exc:  # noqa: BLE001 - any failure is listed, never dropped silently
        rep.unreadable.append((rel, "plantguard", f"{type(exc).__name__}: {exc}"))
        return
    for w in warns:
        rep.warnings.append((rel, w))
    if rows is None:
        rep.unreadable.append((rel, "tshark", err))
    else:
        if err:
            rep.warnings.append((rel, f"tshark: {err}"))
        ts = tshark_facts(rows, pg.flows)
        compare_hosts(rep.tally("hosts", "tshark"), rel, pg.hosts, ts.hosts, "tshark")
        compare_flows(rep.tally("flows", "tshark"), rel, pg.flows, ts.flows, "tshark")
        rep.both_none["tshark"] += compare_apps(rep.tally("applications", "tshark"), rel, pg, ts, "tshark")
        compare_ops(rep.tally("operations", "tshark"), rel, pg.ops, ts.ops, "tshark", rep.not_comparable)
        rep.other_apps.update(ts.other_apps)
        if rel in evidence:
            compare_identity(rep.tally("identity", "tshark"), rel, evidence[rel], texts, rep.identity_skipped,
                             rep.identity_adjudicated)
    if rel in zeek:
        rep.zeek_captures += 1
        zk = zeek_facts(zeek[rel], pg.flows)
        # conn.log logs TCP, UDP and ICMP only: hosts that only sent IGMP (or OSPF, ...) are not Zeek's
        compare_hosts(rep.tally("hosts", "zeek"), rel, pg.hosts - pg.only_other_ip, zk.hosts, "zeek")
        compare_flows(rep.tally("flows", "zeek"), rel, pg.flows, zk.flows, "zeek")
        rep.both_none["zeek"] += compare_apps(rep.tally("applications", "zeek"), rel, pg, zk, "zeek",
                                             claims_only=True)


def overall(rep: Report, dim: str) -> Tally:
    t = Tally()
    for (d, _), x in rep.tallies.items():
        if d == dim:
            t.items += x.items
            t.agreed += x.agreed
            t.causes.update(x.causes)
    return t


def table(rep: Report) -> str:
    lines = ["| dimension | peer | items compared | agreed | agreement | top disagreement causes |",
             "|---|---|---:|---:|---:|---|"]
    for dim in DIMENSIONS:
        for peer in ("tshark", "zeek"):
            t = rep.tallies.get((dim, peer))
            if t is None:
                continue
            top = "; ".join(f"{c} ({n})" for c, n in t.causes.most_common(3)) or "—"
            lines.append(f"| {dim} | {peer} | {t.items} | {t.agreed} | {t.pct:.2f} % | {top} |")
    return "\n".join(lines)


def disagreements(rep: Report, limit: int = 50) -> str:
    rows = []
    for (dim, peer), t in rep.tallies.items():
        for (cap, cause), n in t.per_capture.items():
            rows.append((n, dim, peer, cap, cause, t.examples.get((cap, cause), "")))
    rows.sort(key=lambda r: (-r[0], r[1], r[3], r[4]))
    out = [f"{len(rows)} (capture, cause) groups in all; the {min(limit, len(rows))} largest:", "",
           "| count | dimension | peer | capture | cause | example |", "|---:|---|---|---|---|---|"]
    for n, dim, peer, cap, cause, ex in rows[:limit]:
        out.append(f"| {n} | {dim} | {peer} | `{cap}` | {cause} | `{ex}` |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--only", nargs="*", help="only captures whose path contains one of these")
    ap.add_argument("--write", type=Path, help="write the Markdown report here (docs/agreement.md)")
    ap.add_argument("--limit", type=int, default=50)
    ap.add_argument("--json", type=Path, help="also dump every disagreement as JSON here")
    args = ap.parse_args(argv)
    rep = measure(args.data, args.only, progress=lambda rel: print(rel, file=sys.stderr, flush=True))
    print(table(rep))
    print()
    print(f"{rep.captures} captures, {len(rep.unreadable)} unreadable, {rep.seconds:.1f} s")
    for cap, who, why in rep.unreadable:
        print(f"  unreadable by {who}: {cap}: {why}")
    if args.json:
        dump = {f"{d}/{p}": [{"capture": c, "cause": cause, "count": n, "example": t.examples[(c, cause)]}
                             for (c, cause), n in t.per_capture.most_common()] for (d, p), t in rep.tallies.items()}
        args.json.write_text(json.dumps(dump, indent=1))
    if args.write:
        previous = args.write.read_text() if args.write.exists() else ""
        args.write.write_text(render_doc(rep, args.limit, previous))
    return 0


def _git_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _src_changes() -> str:
    """Say so when the measured plantguard is not exactly the commit named (uncommitted src/ edits)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""
    n = len([line for line in out.splitlines() if line.strip()])
    return f" (working tree: {n} uncommitted file(s) under src/ were measured too)" if n else ""


def _tshark_version() -> str:
    try:
        return subprocess.run(["tshark", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()[0].rstrip(".")
    except (OSError, IndexError):
        return "tshark (version unknown)"


def _apart(rep: Report) -> str:
    """The operations of families a peer cannot decode, and the decode-as options given to tshark."""
    lines = [f"Not in the table: {n} plantguard operations of family `{fam}` ({PEER_CANNOT_DECODE[peer][fam]})."
             for (peer, fam), n in sorted(rep.not_comparable.items())]
    if rep.identity_adjudicated:
        lines.append(f"Not in the table: {len(rep.identity_adjudicated)} identity evidence values checked by hand "
                     "(`IDENTITY_ADJUDICATED` in the script), each with the reason:")
        lines += [f"- `{c}` `{e}`: {why}" + (" (found among plantguard's assets anyway)" if found else "")
                  for c, e, why, found in rep.identity_adjudicated]
        lines.append("")
    opts = "; ".join(f"`{name}`: `-d {' -d '.join(o)}`" for name, o in sorted(DECODE_AS.items()))
    lines.append(f"tshark was given decode-as options where the capture's server port is not the protocol's "
                 f"registered one: {opts}.")
    return "\n" + "\n".join(lines) + "\n"


ANALYSIS_BEGIN, ANALYSIS_END = "<!-- analysis: hand-written, kept by --write -->", "<!-- /analysis -->"


def render_doc(rep: Report, limit: int = 50, previous: str = "") -> str:
    """docs/agreement.md: the generated table, method and disagreement list; the hand-written
    analysis between ANALYSIS_BEGIN and ANALYSIS_END in `previous` is kept as it is."""
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    analysis = f"{ANALYSIS_BEGIN}\n(to be written after a run)\n{ANALYSIS_END}"
    if ANALYSIS_BEGIN in previous and ANALYSIS_END in previous:
        analysis = previous[previous.index(ANALYSIS_BEGIN):previous.index(ANALYSIS_END) + len(ANALYSIS_END)]
    unreadable = "\n".join(f"- `{c}` ({who}): {why}" for c, who, why in rep.unreadable) or "- none"
    other = ", ".join(f"{c} ({n} packets)" for c, n in rep.other_apps.most_common(20)) or "none"
    skipped = ", ".join(f"{k} ({n})" for k, n in sorted(rep.identity_skipped.items())) or "none"
    why_skipped = "; ".join(f"{k}: {v}" for k, v in IDENTITY_NOT_COMPARED.items())
    warned = sorted({c for c, _ in rep.warnings})
    return f"""# Agreement with tshark and the peer baselines, whole shared corpus

Generated by `tools/measure_agreement.py --write docs/agreement.md` on {date}, commit `{_git_commit()}`{_src_changes()},
with {_tshark_version()}. {rep.captures} captures under `shared/data/pcaps/**` (every `.pcap`/`.pcapng`,
the byte-identical conformance copies included), {rep.zeek_captures} of them with a Zeek/ICSNPP `conn.log`
mapped to that capture alone in `baselines/ORACLE_MAP.tsv`. Run time {rep.seconds:.0f} s.
The per-protocol, field-level comparisons are in [baseline-differences](baseline-differences/README.md);
this page is the corpus-wide cross-check the issue asks for (target ≥ 99 %).

{table(rep)}

"items compared" is the size of the union of both sides' sets (applications: flows both sides have,
see below), "agreed" the size of their intersection, so every item only one side has is a disagreement.
{_apart(rep)}

{analysis}

## Method and normalisation

plantguard runs in-process (`plantguard.capture.engine.analyze` on one capture at a time,
`plantguard.inventory.build.build_assets`); tshark runs once per capture
(`tshark -n -T fields -E occurrence=a`, the fields are `TSHARK_FIELDS` in the script).
All sets are per capture; nothing is compared across captures.

- **hosts**: set of unicast IP addresses (IPv4 and IPv6; multicast, 0.0.0.0/::, 255.255.255.255
  left out on both sides) that are a packet's source or destination. plantguard: the endpoints of
  every flow it keeps (ICMP and other IP protocols included) and of every observation. tshark: every
  `ip.src/ip.dst/ipv6.src/ipv6.dst` occurrence (outer and inner headers of tunnels and of ICMP errors).
  Zeek: `id.orig_h`/`id.resp_h` of `conn.log`. Subnet broadcasts (x.x.x.255) stay in: they are
  destinations on the wire.
- **flows**: TCP/UDP only, **set** of `(l4, client, server, server port)`. plantguard folds a flow per
  (l4, client, server, server port, VLAN) and keeps only the first client port, so finer keys
  cannot be compared; VLAN is not part of the compared key. A tshark packet (or a Zeek `conn.log`
  record) between (a, pa) and (b, pb) is projected on that key: the orientation plantguard chose when
  plantguard has that flow, otherwise the endpoint with the lower port is the server. ICMP packets are
  not flows (their embedded UDP/TCP headers would otherwise count).
- **applications**: for each flow both sides have, plantguard's `flow.app` against the set of labels
  the peer gives the packets of that flow; they agree when plantguard's app is in that set. Labels are
  plantguard's module names: tshark `mbtcp/modbus`→modbus, `enip/cip/cipio`→enip, `tpkt/cotp/s7comm`→s7comm
  (but COTP carrying `mms` is not s7comm), `dnp3`, `bvlc/bacnet/bacapp`→bacnet, `iec60870_104/asdu`→iec104,
  `mqtt`, `opcua`, `http` (and `ssdp`: HTTP over UDP), `tls/ssl`→tls, `ssh`, `dns` (and `mdns`, `llmnr`: the
  same message format, decoded by plantguard's dns module), `ftp`, `telnet`, `snmp`, `dhcp/bootp`→dhcp,
  `pn_io`, `pn_dcp` and DCE/RPC on udp/34964 (PNIO-CM; tshark 4.0 often stops at `dcerpc` there)→profinet.
  Dissectors outside that vocabulary count as "none": plantguard has no module for them, so they
  measure coverage, not agreement; they are listed below. Flows where both sides say "none" are not
  counted (tshark {rep.both_none.get("tshark", 0)}, Zeek {rep.both_none.get("zeek", 0)}). Zeek ran in bare mode (`-b`)
  for most tests, with only that test's protocol scripts, so a Zeek record without a `service` is no
  claim: only flows Zeek names a service for are compared.
- **operations**: **set** of `(flow, family, code)` (set semantics: a code repeated on a flow counts
  once; counts per packet are not compared). An operation is a request ("src asks dst to do
  something", docs/observations.md), so the tshark side takes request-side codes only:
  Modbus `modbus.func_code` towards the server (exception bit cleared); S7 `s7comm.param.func` of Job
  PDUs (ROSCTR 1) and `(funcgroup << 8) | subfunc` of userdata requests (type 4); ENIP `enip.command`
  towards the server except the carriers NOP/SendRRData/SendUnitData; CIP `cip.sc` of requests
  (`cip.rr` = 0) except the Multiple Service Packet / Unconnected Send wrappers (plantguard reports the
  services inside, and the wrappers are dropped on both sides); implicit I/O as code 0xB1 per UDP flow;
  DNP3 `dnp3.al.func` in both directions (plantguard reports responses 129/130 too) except
  confirms (0, dropped on both sides); BACnet confirmed services of Confirmed-Request PDUs and unconfirmed
  services except I-Am/I-Have (answers); IEC 104 command type ids (45–69, 100–107, 110–113) with cause
  request/activation/deactivation, and file-transfer types 120–127; MQTT `mqtt.msgtype` towards the
  server; OPC UA `opcua.servicenodeid.numeric` towards the server; SNMP get/get-next/set/get-bulk;
  DNS `dns.qry.type` of queries (mDNS left out); HTTP `http.request.method`; FTP file commands
  (RETR, STOR, STOU, APPE, DELE, RNFR, RNTO, MKD, RMD, SITE: what plantguard's FTP operations are);
  PROFINET DCP Get/Set/Identify requests (keyed by the MAC pair: layer 2) and PNIO-CM DCE/RPC request
  opnums. plantguard's `enip` operations are split into `enip-cmd` (encapsulation), `cip` and
  `enip-io` by their data. No Zeek operations are compared (Zeek logs names, not codes; the
  per-protocol tests do that mapping).
- **identity**: each value tshark decoded in `baselines/tshark-derived/identity_evidence.json` for a
  device identity key must appear, case- and whitespace-insensitively, as a substring of some value of
  the capture's plantguard assets (`Asset.as_dict()`, flattened). Numbers match as decimal or hex;
  ENIP `revision` 1027 must read `4.3`; CIP `major_rev`/`minor_rev` must be the major/minor of a version.
  Only tshark's values are checked (recall): the evidence file is a sample, not a full decode.
  Not compared: {why_skipped}. Counts left out: {skipped}.

## Captures a tool could not read

{unreadable}

{len(warned)} captures gave plantguard read warnings (truncated records and the like; they are still
compared): {", ".join(f"`{c}`" for c in warned[:30])}{" …" if len(warned) > 30 else ""}

## Application protocols tshark saw that plantguard has no module for (coverage, not agreement)

{other}

## Disagreements per capture

{disagreements(rep, limit)}

Every disagreement, not only these, is in the JSON `--json FILE` writes.
"""


if __name__ == "__main__":
    sys.exit(main())
