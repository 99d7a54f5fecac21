"""EtherCAT frames built from the specification (IEC 61158-4-12 / ETG.1000): a master bringing
three slaves up and running them cyclically, for the tests (no real capture is available)."""
from __future__ import annotations

import struct

from support.packets import eth, udp_frame

MASTER = "00:01:05:10:20:30"
RETURNED = "02:01:05:10:20:30"      # the first slave sets the locally administered bit
BROADCAST = "ff:ff:ff:ff:ff:ff"
ETHERTYPE = 0x88A4
APRD, APWR, FPRD, FPWR, BRD, LRW, FRMW = 1, 2, 4, 5, 7, 12, 14
STATIONS = (0x1001, 0x1002, 0x1003)
VENDOR, PRODUCT, REVISION, SERIAL = 0x00000002, 0x044C2C52, 0x00110000, 12345


def datagram(cmd: int, adp: int, ado: int, data: bytes, wkc: int = 0, idx: int = 0, irq: int = 0) -> tuple:
    return (cmd, idx, adp, ado, data, irq, wkc)


def ecat(*dgrams) -> bytes:
    """An EtherCAT frame (type 1) of these datagrams, more-follows set on all but the last."""
    body = b""
    for i, (cmd, idx, adp, ado, data, irq, wkc) in enumerate(dgrams):
        ln = len(data) | (0x8000 if i < len(dgrams) - 1 else 0)
        body += struct.pack("<BBHHHH", cmd, idx, adp, ado, ln, irq) + data + struct.pack("<H", wkc)
    return struct.pack("<H", len(body) | 0x1000) + body


def mailbox(mtype: int, body: bytes, counter: int = 1, size: int = 32) -> bytes:
    """A mailbox message padded to the sync manager's size."""
    msg = struct.pack("<HHBB", len(body), 0, 0, mtype | counter << 4) + body
    return msg.ljust(size, b"\x00")


def sdo_upload_request(index: int, sub: int) -> bytes:
    return mailbox(3, struct.pack("<HBHB4x", 2 << 12, 0x40, index, sub))


def sdo_upload_response(index: int, sub: int, value: int) -> bytes:
    return mailbox(3, struct.pack("<HBHBI", 3 << 12, 0x43, index, sub, value))


def sdo_download_request(index: int, sub: int, value: int) -> bytes:
    return mailbox(3, struct.pack("<HBHBI", 2 << 12, 0x23, index, sub, value))


def foe_write_request(name: str, password: int = 0) -> bytes:
    return mailbox(4, struct.pack("<BBI", 2, 0, password) + name.encode(), size=64)


def both(dgrams_out, dgrams_back) -> list[bytes]:
    """The frame the master sends and the same frame back from the slaves."""
    return [eth(MASTER, BROADCAST, ETHERTYPE, ecat(*dgrams_out)),
            eth(RETURNED, BROADCAST, ETHERTYPE, ecat(*dgrams_back))]


def startup() -> list[bytes]:
    """Scan, station addresses, state changes, SII and CoE identity reads, an FoE download."""
    frames = both([datagram(BRD, 0, 0x0000, b"\0\0")], [datagram(BRD, 3, 0x0000, b"\x11\x00", wkc=3)])
    for pos, station in enumerate(STATIONS):
        adp = (-pos) & 0xFFFF
        st = struct.pack("<H", station)
        back = (adp + 1) & 0xFFFF              # each slave increments the position it passes
        frames += both([datagram(APWR, adp, 0x0010, st, idx=pos)], [datagram(APWR, back, 0x0010, st, 1, pos)])
    for state in (1, 2, 4, 8):
        for station in STATIONS:
            ctl = struct.pack("<H", state)
            frames += both([datagram(FPWR, station, 0x0120, ctl)], [datagram(FPWR, station, 0x0120, ctl, wkc=1)])
        if state == 2:
            frames += _identity_reads()
    frames += both([datagram(FPRD, STATIONS[0], 0x0130, b"\0\0")],
                   [datagram(FPRD, STATIONS[0], 0x0130, b"\x08\x00", wkc=1)])
    fw = foe_write_request("ecat_fw.efw")
    frames += both([datagram(FPWR, STATIONS[2], 0x1000, fw)], [datagram(FPWR, STATIONS[2], 0x1000, fw, wkc=1)])
    sii_w = struct.pack("<HI", 0x0201, 0x0040)     # write command, word 0x40
    frames += both([datagram(FPWR, STATIONS[2], 0x0502, sii_w)], [datagram(FPWR, STATIONS[2], 0x0502, sii_w, wkc=1)])
    return frames


def _identity_reads() -> list[bytes]:
    s = STATIONS[0]
    # EEPROM word 0x0008: write the address, read the data back in the same frame
    ctl = struct.pack("<HI", 0x0100, 0x0008)
    frames = both([datagram(FPWR, s, 0x0502, ctl), datagram(FPRD, s, 0x0508, bytes(8))],
                  [datagram(FPWR, s, 0x0502, ctl, wkc=1),
                   datagram(FPRD, s, 0x0508, struct.pack("<II", VENDOR, PRODUCT), wkc=1)])
    # word 0x000C: one read of control, address and data
    frames += both([datagram(FPRD, s, 0x0502, bytes(14))],
                   [datagram(FPRD, s, 0x0502, struct.pack("<HIII", 0x0100, 0x000C, REVISION, SERIAL), wkc=1)])
    # CoE: object 0x1018 of the second slave, subindex 1..4
    s2 = STATIONS[1]
    for sub, value in ((1, VENDOR), (2, PRODUCT + 1), (3, REVISION), (4, SERIAL + 1)):
        req = sdo_upload_request(0x1018, sub)
        frames += both([datagram(FPWR, s2, 0x1000, req)], [datagram(FPWR, s2, 0x1000, req, wkc=1)])
        frames += both([datagram(FPRD, s2, 0x1080, bytes(32))],
                       [datagram(FPRD, s2, 0x1080, sdo_upload_response(0x1018, sub, value), wkc=1)])
    dl = sdo_download_request(0x1c12, 0, 0)
    frames += both([datagram(FPWR, s2, 0x1000, dl)], [datagram(FPWR, s2, 0x1000, dl, wkc=1)])
    return frames


def cyclic(n: int) -> list[bytes]:
    """Process data (LRW), the distributed-clock time (FRMW 0x0910) and the broadcast AL Status."""
    frames = []
    for i in range(n):
        out = struct.pack("<Q", i * 0x01010101)
        frames += both([datagram(LRW, 0, 0x0001, out, idx=i & 0xFF),
                        datagram(FRMW, STATIONS[0], 0x0910, bytes(8), idx=i & 0xFF),
                        datagram(BRD, 0, 0x0130, b"\0\0", idx=i & 0xFF)],
                       [datagram(LRW, 0, 0x0001, out[::-1], wkc=9, idx=i & 0xFF),
                        datagram(FRMW, STATIONS[0], 0x0910, struct.pack("<Q", 10**9 + i * 1000), wkc=3, idx=i & 0xFF),
                        datagram(BRD, 0, 0x0130, b"\x08\x00", wkc=3, idx=i & 0xFF)])
    return frames


def over_udp(frame: bytes, reply: bool = False) -> bytes:
    """An EtherCAT frame (the Ethernet payload) over UDP port 34980."""
    if reply:
        return udp_frame("192.168.10.20", "192.168.10.5", 34980, 34980, frame)
    return udp_frame("192.168.10.5", "192.168.10.20", 34980, 34980, frame)
