"""SSH (TCP 22, and any port by its "SSH-2.0-" / "SSH-1.x-" identification line).

The identification line is the only clear text: the server's becomes its `service`
(software and protocol version, e.g. OpenSSH_8.9p1 / 2.0) and its `identity` (the raw line as
banner, the software, and the vendor / OS where the line names them: "Cisco-1.25" is a Cisco
device, "OpenSSH_8.9p1 Ubuntu-3ubuntu0.1" an Ubuntu host), the client's an `identity`
description of the client. Everything after it is binary or encrypted and is ignored."""
from __future__ import annotations

import re

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import printable
from plantguard.protocols.ftp import identity_from_banner

NAME = "ssh"

MAX_PRE_LINES = 16      # a server may send text lines before its identification (RFC 4253)
_IDENT = re.compile(rb"SSH-(\d\.\d+)-([^\s\r\n]{1,200})(?: ([^\r\n]{0,200}))?\r?\n?")


_SOFTWARE_VERSION = re.compile(r"[_\-/ ]v?(\d[\w.\-]*)")


def software_version(software: str) -> str | None:
    """'OpenSSH_8.9p1' -> '8.9p1', 'dropbear_2019.78' -> '2019.78'."""
    m = _SOFTWARE_VERSION.search(software)
    return m.group(1) if m else None


# SSH implementations that belong to one maker's devices: software prefix -> (vendor, OS)
_MAKERS = (
    (re.compile(r"^Cisco-", re.I), "Cisco", None),
    (re.compile(r"^ROSSSH", re.I), "MikroTik", "RouterOS"),
    (re.compile(r"^HUAWEI-", re.I), "Huawei", None),
    (re.compile(r"^Comware-", re.I), "HPE", "Comware"),
    (re.compile(r"^NetScreen", re.I), "Juniper Networks", "ScreenOS"),
    (re.compile(r"^FortiSSH", re.I), "Fortinet", "FortiOS"),
)


def server_identity(ident: dict, banner: str) -> dict:
    """Identity keys of a server's identification line: the banner, the software, and the
    vendor / OS the software or its comment names."""
    out = identity_from_banner(ident.get("comment") or "", None)
    out.pop("banner", None)
    out["banner"] = banner
    software = ident["software"]
    out["software"] = software
    for pat, vendor, os_name in _MAKERS:
        if pat.search(software):
            out.setdefault("vendor", vendor)
            if os_name:
                out.setdefault("os", os_name)
            break
    return out


def signature(payload: bytes) -> bool:
    return payload[:8] == b"SSH-2.0-" or payload[:7] in (b"SSH-1.5", b"SSH-1.9", b"SSH-1.3")


def parse_ident(payload: bytes) -> dict | None:
    """{version, software, comment} from the identification line, skipping any text before it."""
    data = bytes(payload[:4096])
    for line in data.split(b"\n")[:MAX_PRE_LINES]:
        m = _IDENT.match(line.strip(b"\r") + b"\n")
        if m:
            out = {"version": m.group(1).decode(), "software": printable(m.group(2), 200)}
            if m.group(3):
                out["comment"] = printable(m.group(3), 200)
            return out
    return None


def decode(pkt: Packet) -> list[Observation]:
    st = pkt.state
    key = "ssh_c" if pkt.from_client else "ssh_s"
    if st.get(key):
        return []
    ident = parse_ident(pkt.payload)
    if ident is None:
        tries = st.get(key + "_tries", 0) + 1
        st[key + "_tries"] = tries
        if tries >= 3:
            st[key] = True   # binary packets now: the identification was missed
        return []
    st[key] = True
    banner = f"SSH-{ident['version']}-{ident['software']}" + (f" {ident['comment']}" if ident.get("comment") else "")
    if pkt.from_client:
        return [pkt.observe("identity", NAME, subject="src", description=banner,
                            ssh_client=ident["software"])]
    data = {"name": NAME, "banner": banner, "software": ident["software"],
            "protocol_version": ident["version"]}
    ver = software_version(ident["software"])
    if ver:
        data["version"] = ver
    return [pkt.observe("service", NAME, subject="src", **data),
            pkt.observe("identity", NAME, subject="src", **server_identity(ident, banner))]


SPEC = ProtocolSpec(
    name=NAME, title="SSH", layer="it",
    decode=decode, signature=signature,
    tcp_ports=(22, 2222, 830),
    any_port=True,
    observes=("identity", "service"),
)
