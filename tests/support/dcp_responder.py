"""A small PROFINET DCP responder for the probe's tests, run in the device namespace: a raw
socket on one interface that answers DCP Identify (All, or a NameOfStation filter equal to its
own) with a configured identity, and ignores everything else. Every DCP frame it receives is
logged as one JSON line on stdout (frame id, service, type, xid, source MAC) so a test can see
what reached the device.

    python dcp_responder.py IFACE --name NAME --vendor-id N --device-id N --role N --ip A/M/G --vendor TEXT
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
from pathlib import Path

ETHERTYPE = 0x8892
IDENTIFY_REQUEST, IDENTIFY_RESPONSE = 0xFEFE, 0xFEFF
SERVICE_IDENTIFY = 5


def block(option: int, suboption: int, data: bytes, info: int = 0) -> bytes:
    """A response block: option, suboption, length, BlockInfo, data, padded to an even length."""
    body = struct.pack(">H", info) + data
    out = struct.pack(">BBH", option, suboption, len(body)) + body
    return out + b"\x00" * (len(out) & 1)


def identity_blocks(a) -> bytes:
    ip, mask, gw = (socket.inet_aton(x) for x in a.ip.split("/"))
    return b"".join((
        block(2, 1, a.vendor.encode()),                                   # DeviceVendorValue
        block(2, 2, a.name.encode()),                                     # NameOfStation
        block(2, 3, struct.pack(">HH", a.vendor_id, a.device_id)),        # Device ID
        block(2, 4, bytes([a.role, 0])),                                  # Device Role
        block(1, 2, ip + mask + gw, info=1),                              # IP parameter (set by DCP)
    ))


def filters(pdu: bytes) -> list[tuple[int, int, bytes]]:
    length = struct.unpack_from(">H", pdu, 10)[0]
    out, off, end = [], 12, min(len(pdu), 12 + length)
    while off + 4 <= end:
        opt, sub, blen = pdu[off], pdu[off + 1], struct.unpack_from(">H", pdu, off + 2)[0]
        out.append((opt, sub, pdu[off + 4:off + 4 + blen]))
        off += 4 + blen + (blen & 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("--name", required=True)
    ap.add_argument("--vendor", required=True)
    ap.add_argument("--vendor-id", type=int, required=True)
    ap.add_argument("--device-id", type=int, required=True)
    ap.add_argument("--role", type=int, default=1)
    ap.add_argument("--ip", required=True, help="address/netmask/gateway")
    a = ap.parse_args()
    mac = bytes.fromhex(Path(f"/sys/class/net/{a.iface}/address").read_text().strip().replace(":", ""))
    blocks = identity_blocks(a)
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE))
    sock.bind((a.iface, ETHERTYPE))
    print(json.dumps({"ready": a.iface}), flush=True)
    while True:
        frame, addr = sock.recvfrom(65536)
        if addr[2] == socket.PACKET_OUTGOING or len(frame) < 26:
            continue
        pdu = frame[14:]
        frame_id, service, stype, xid = struct.unpack_from(">HBBI", pdu, 0)
        print(json.dumps({"frame_id": frame_id, "service": service, "type": stype, "xid": xid,
                          "src": frame[6:12].hex(":"), "dst": frame[0:6].hex(":")}), flush=True)
        if frame_id != IDENTIFY_REQUEST or service != SERVICE_IDENTIFY or stype != 0:
            continue
        wanted = filters(pdu)
        if not any(o == 0xFF or (o, s, d) == (2, 2, a.name.encode()) for o, s, d in wanted):
            continue
        head = struct.pack(">HBBIHH", IDENTIFY_RESPONSE, SERVICE_IDENTIFY, 1, xid, 0, len(blocks))
        answer = frame[6:12] + mac + struct.pack(">H", ETHERTYPE) + head + blocks
        sock.send(answer + b"\x00" * max(0, 60 - len(answer)))


if __name__ == "__main__":
    sys.exit(main())
