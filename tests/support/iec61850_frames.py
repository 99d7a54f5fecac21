"""IEC 61850 GOOSE and Sampled Values frames built from the standard's field list (IEC 61850-8-1
Annex A, 9-2 clause 8), for the tests of protocols/goose.py and sv.py: streams with heartbeats,
state changes and the anomalies the decoder reports, written as a pcap the engine reads."""
from __future__ import annotations

import struct
from pathlib import Path


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        head = bytes([n])
    elif n < 0x100:
        head = bytes([0x81, n])
    else:
        head = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + head + value


def uint(v: int) -> bytes:
    b = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big")     # BER INTEGER of an unsigned value
    return b


def goose_pdu(gocb: str = "IED1LD0/LLN0$GO$gcb1", *, st: int = 1, sq: int = 0, conf_rev: int = 1,
              tal: int = 2000, test: bool = False, nds: bool = False, go_id: str | None = "IED1_GO1",
              dataset: str = "IED1LD0/LLN0$DS1", t: bytes = b"\x5f\x00\x00\x00\x80\x00\x00\x0a",
              values: bytes = b"\x83\x01\x00\x84\x03\x03\x00\x00") -> bytes:
    body = tlv(0x80, gocb.encode("latin-1")) + tlv(0x81, uint(tal)) + tlv(0x82, dataset.encode())
    if go_id is not None:
        body += tlv(0x83, go_id.encode())
    body += tlv(0x84, t) + tlv(0x85, uint(st)) + tlv(0x86, uint(sq)) + tlv(0x87, bytes([test]))
    body += tlv(0x88, uint(conf_rev)) + tlv(0x89, bytes([nds])) + tlv(0x8A, uint(2)) + tlv(0xAB, values)
    return tlv(0x61, body)


def sv_pdu(sv_id: str = "MU01", *, smp_cnt: int = 0, conf_rev: int = 1, asdus: int = 1,
           dataset: str | None = None, smp_rate: int | None = None) -> bytes:
    seq = b""
    for k in range(asdus):
        a = tlv(0x80, sv_id.encode())
        if dataset:
            a += tlv(0x81, dataset.encode())
        a += tlv(0x82, ((smp_cnt + k) & 0xFFFF).to_bytes(2, "big")) + tlv(0x83, conf_rev.to_bytes(4, "big"))
        a += tlv(0x85, b"\x02")
        if smp_rate is not None:
            a += tlv(0x86, smp_rate.to_bytes(2, "big"))
        a += tlv(0x87, bytes((smp_cnt + k + i) & 0xFF for i in range(64)))
        seq += tlv(0x30, a)
    return tlv(0x60, tlv(0x80, uint(asdus)) + tlv(0xA2, seq))


def l2_payload(appid: int, pdu: bytes, *, simulation: bool = False) -> bytes:
    return struct.pack(">HHHH", appid, 8 + len(pdu), 0x8000 if simulation else 0, 0) + pdu


def ethernet(payload: bytes, ethertype: int, *, src: str = "00:30:a7:00:00:01",
             dst: str = "01:0c:cd:01:00:01", vlan: int | None = None) -> bytes:
    def mac(s):
        return bytes(int(x, 16) for x in s.split(":"))
    head = mac(dst) + mac(src)
    if vlan is not None:
        head += struct.pack(">HH", 0x8100, 0x8000 | vlan)
    frame = head + struct.pack(">H", ethertype) + payload
    return frame + b"\x00" * max(0, 60 - len(frame))


def write_pcap(path: Path, frames: list[bytes], t0: float = 1_700_000_000.0, step: float = 0.001) -> Path:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            t = t0 + i * step
            f.write(struct.pack("<IIII", int(t), int((t % 1) * 1e6), len(fr), len(fr)) + fr)
    return path
