"""Application payloads of the industrial protocols in the demo plant, built from the protocol
specifications: Modbus/TCP (MBAP + PDU), S7comm over ISO-on-TCP (TPKT, COTP, S7 PDUs including
SZL reads, variable access, PLC control and block download) and EtherNet/IP (encapsulation,
ListIdentity, RegisterSession, SendRRData carrying CIP Unconnected Send with Logix tag
services)."""
from __future__ import annotations

import struct

# ---------------------------------------------------------------- Modbus/TCP


def mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack("!HHHB", tid & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def mb_read_holding(start: int, qty: int) -> bytes:
    return struct.pack("!BHH", 3, start, qty)


def mb_read_holding_resp(values: list[int]) -> bytes:
    return struct.pack(f"!BB{len(values)}H", 3, 2 * len(values), *values)


def mb_read_coils(start: int, qty: int) -> bytes:
    return struct.pack("!BHH", 1, start, qty)


def mb_read_coils_resp(bits: list[bool]) -> bytes:
    packed = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        if b:
            packed[i // 8] |= 1 << (i % 8)
    return struct.pack("!BB", 1, len(packed)) + bytes(packed)


def mb_write_single(addr: int, value: int) -> bytes:
    """FC 6; the response echoes the request."""
    return struct.pack("!BHH", 6, addr, value)


def mb_write_multiple(start: int, values: list[int]) -> bytes:
    return struct.pack(f"!BHHB{len(values)}H", 16, start, len(values), 2 * len(values), *values)


def mb_write_multiple_resp(start: int, qty: int) -> bytes:
    return struct.pack("!BHH", 16, start, qty)


def mb_read_device_id(code: int = 1, object_id: int = 0) -> bytes:
    """FC 43 / MEI type 14 (Read Device Identification)."""
    return struct.pack("!BBBB", 43, 14, code, object_id)


def mb_read_device_id_resp(code: int, conformity: int, objects: list[tuple[int, str]]) -> bytes:
    body = struct.pack("!BBBBBBB", 43, 14, code, conformity, 0, 0, len(objects))
    for oid, text in objects:
        raw = text.encode("ascii")
        body += struct.pack("!BB", oid, len(raw)) + raw
    return body


# ---------------------------------------------------------------- ISO-on-TCP (RFC 1006) and COTP

S7_JOB, S7_ACK_DATA, S7_USERDATA = 1, 3, 7


def tpkt(payload: bytes) -> bytes:
    return struct.pack("!BBH", 3, 0, 4 + len(payload)) + payload


def cotp_connect(request: bool, dst_ref: int, src_ref: int, src_tsap: int, dst_tsap: int,
                 tpdu_size_code: int = 0x0A) -> bytes:
    """Connection Request (0xE0) / Connection Confirm (0xD0), class 0."""
    params = (struct.pack("!BBB", 0xC0, 1, tpdu_size_code) + struct.pack("!BBH", 0xC1, 2, src_tsap)
              + struct.pack("!BBH", 0xC2, 2, dst_tsap))
    body = struct.pack("!BHHB", 0xE0 if request else 0xD0, dst_ref, src_ref, 0) + params
    return tpkt(bytes([len(body)]) + body)


def cotp_data(s7pdu: bytes) -> bytes:
    """A DT TPDU, last data unit, carrying one S7 PDU."""
    return tpkt(b"\x02\xf0\x80" + s7pdu)


def s7_pdu(rosctr: int, pdu_ref: int, param: bytes, data: bytes = b"",
           error: tuple[int, int] | None = None) -> bytes:
    hdr = struct.pack("!BBHHHH", 0x32, rosctr, 0, pdu_ref & 0xFFFF, len(param), len(data))
    if rosctr in (2, S7_ACK_DATA):
        eclass, ecode = error or (0, 0)
        hdr += struct.pack("!BB", eclass, ecode)
    return hdr + param + data


def s7_job(pdu_ref: int, param: bytes, data: bytes = b"") -> bytes:
    """A Job PDU, ready for the wire (TPKT + COTP DT)."""
    return cotp_data(s7_pdu(S7_JOB, pdu_ref, param, data))


def s7_ack(pdu_ref: int, param: bytes, data: bytes = b"") -> bytes:
    """An Ack_Data PDU without error, ready for the wire."""
    return cotp_data(s7_pdu(S7_ACK_DATA, pdu_ref, param, data))


def s7_userdata(pdu_ref: int, param: bytes, data: bytes) -> bytes:
    return cotp_data(s7_pdu(S7_USERDATA, pdu_ref, param, data))


def s7_setup_comm(pdu_length: int) -> bytes:
    return struct.pack("!BBHHH", 0xF0, 0, 1, 1, pdu_length)


AREA_DB = 0x84
TS_BYTE, TS_WORD = 0x02, 0x04          # request transport sizes (S7ANY)
DATA_TS_BYTE_WORD_DWORD = 0x04         # response/write data transport size (length in bits)


def s7_any_item(db: int, byte_addr: int, count: int, tsize: int = TS_BYTE,
                area: int = AREA_DB) -> bytes:
    bit_addr = byte_addr * 8
    return (struct.pack("!BBBBHHB", 0x12, 0x0A, 0x10, tsize, count, db, area)
            + bit_addr.to_bytes(3, "big"))


def s7_read_var(items: list[bytes]) -> bytes:
    return bytes([0x04, len(items)]) + b"".join(items)


def _data_items(return_code: int, values: list[bytes]) -> bytes:
    out = b""
    for i, v in enumerate(values):
        out += struct.pack("!BBH", return_code, DATA_TS_BYTE_WORD_DWORD, 8 * len(v)) + v
        if len(v) % 2 and i < len(values) - 1:
            out += b"\x00"   # every item after the first starts on an even offset
    return out


def s7_read_var_resp_data(values: list[bytes]) -> bytes:
    return _data_items(0xFF, values)      # 0xFF: success


def s7_write_var(items: list[bytes]) -> bytes:
    return bytes([0x05, len(items)]) + b"".join(items)


def s7_write_var_data(values: list[bytes]) -> bytes:
    return _data_items(0x00, values)      # reserved (0) in requests


def s7_write_var_resp(count: int) -> tuple[bytes, bytes]:
    return bytes([0x05, count]), b"\xff" * count


def s7_szl_request(seq: int, szl_id: int, index: int) -> tuple[bytes, bytes]:
    """Userdata, CPU functions (group 4), Read SZL (subfunction 1): (param, data)."""
    param = b"\x00\x01\x12" + struct.pack("!BBBBB", 4, 0x11, 0x44, 0x01, seq)
    data = struct.pack("!BBHHH", 0xFF, 0x09, 4, szl_id, index)
    return param, data


def s7_szl_response(seq: int, szl_id: int, index: int, record_len: int,
                    records: list[bytes]) -> tuple[bytes, bytes]:
    param = b"\x00\x01\x12" + struct.pack("!BBBBBBBH", 8, 0x12, 0x84, 0x01, seq, 0, 0, 0)
    body = struct.pack("!HHHH", szl_id, index, record_len, len(records)) + b"".join(records)
    data = struct.pack("!BBH", 0xFF, 0x09, len(body)) + body
    return param, data


def szl_0011_record(index: int, mlfb: str, bgtyp: int, ausbg: int, ausbe: int) -> bytes:
    """Module identification record (28 bytes): index, order number (20 chars), module type,
    version fields."""
    return struct.pack("!H20sHHH", index, mlfb.encode("ascii").ljust(20), bgtyp, ausbg, ausbe)


def szl_001c_record(index: int, text: str | bytes) -> bytes:
    """Component identification record (34 bytes): index and a 32-byte field."""
    raw = text if isinstance(text, bytes) else text.encode("ascii")
    return struct.pack("!H", index) + raw.ljust(32, b"\x00")[:32]


def s7_plc_stop() -> bytes:
    return b"\x29" + b"\x00" * 5 + bytes([9]) + b"P_PROGRAM"


def s7_pi_service(service: str, block_param: bytes = b"") -> bytes:
    """PLC control (0x28): a PI service such as P_PROGRAM (warm restart) or _INSE (activate a
    downloaded block)."""
    name = service.encode("ascii")
    return (b"\x28" + b"\x00" * 6 + b"\xfd" + struct.pack("!H", len(block_param)) + block_param
            + bytes([len(name)]) + name)


def s7_block_file(block_type: str, number: int, dest: str = "P") -> bytes:
    """'_' + block type (two ASCII hex digits, e.g. 0C = FC) + 5-digit number + destination."""
    return f"_{block_type}{number:05d}{dest}".encode("ascii")


def s7_request_download(block_type: str, number: int, load_len: int, mc7_len: int) -> bytes:
    fname = s7_block_file(block_type, number)
    part2 = f"1{load_len:06d}{mc7_len:06d}".encode("ascii")
    return (b"\x1a\x00\x01\x00\x00\x00\x00\x00" + bytes([len(fname)]) + fname
            + bytes([len(part2)]) + part2)


def s7_download_block_job(block_type: str, number: int) -> bytes:
    fname = s7_block_file(block_type, number)
    return b"\x1b\x00\x01\x00\x00\x00\x00\x00" + bytes([len(fname)]) + fname


def s7_download_block_ack(block: bytes) -> tuple[bytes, bytes]:
    """The station's answer to the PLC's Download block job: the block bytes (last unit)."""
    return b"\x1b\x00", struct.pack("!HH", len(block), 0x00FB) + block


def s7_download_ended_job(block_type: str, number: int) -> bytes:
    fname = s7_block_file(block_type, number)
    return b"\x1c\x00\x00\x00\x00\x00\x00\x00" + bytes([len(fname)]) + fname   # error code 0


# ---------------------------------------------------------------- EtherNet/IP and CIP

ENIP_LIST_IDENTITY, ENIP_REGISTER_SESSION, ENIP_SEND_RR_DATA = 0x0063, 0x0065, 0x006F


def enip(command: int, data: bytes, session: int = 0, context: bytes = b"\x00" * 8,
         status: int = 0) -> bytes:
    return struct.pack("<HHII8sI", command, len(data), session, status, context, 0) + data


def enip_list_identity_resp(ip: str, vendor: int, device_type: int, product_code: int,
                            revision: tuple[int, int], status: int, serial: int,
                            product_name: str, state: int) -> bytes:
    name = product_name.encode("ascii")
    item = (struct.pack("<H", 1)                                              # protocol version
            + struct.pack(">HH4s8x", 2, 44818, bytes(int(o) for o in ip.split(".")))  # sockaddr
            + struct.pack("<HHHBBHI", vendor, device_type, product_code, revision[0],
                          revision[1], status, serial)
            + bytes([len(name)]) + name + bytes([state]))
    return struct.pack("<HHH", 1, 0x000C, len(item)) + item


def enip_register_session_data() -> bytes:
    return struct.pack("<HH", 1, 0)


def enip_send_rr(cip: bytes, timeout: int = 10) -> bytes:
    """SendRRData command data: interface handle, timeout, CPF with a null address item and an
    unconnected data item."""
    return (struct.pack("<IHH", 0, timeout, 2) + struct.pack("<HH", 0x0000, 0)
            + struct.pack("<HH", 0x00B2, len(cip)) + cip)


def cip_symbol_path(tag: str) -> bytes:
    raw = tag.encode("ascii")
    seg = bytes([0x91, len(raw)]) + raw
    return seg + (b"\x00" if len(raw) % 2 else b"")


def cip_request(service: int, path: bytes, data: bytes = b"") -> bytes:
    return bytes([service, len(path) // 2]) + path + data


def cip_read_tag(tag: str, elements: int = 1) -> bytes:
    return cip_request(0x4C, cip_symbol_path(tag), struct.pack("<H", elements))


def cip_write_tag(tag: str, data_type: int, value: bytes, elements: int = 1) -> bytes:
    return cip_request(0x4D, cip_symbol_path(tag), struct.pack("<HH", data_type, elements) + value)


def cip_unconnected_send(embedded: bytes, slot: int = 0) -> bytes:
    """Connection Manager (class 6, instance 1) Unconnected Send routing `embedded` to
    backplane port 1, slot `slot`."""
    path = bytes([0x20, 0x06, 0x24, 0x01])
    body = bytes([0x0A, 0x0E]) + struct.pack("<H", len(embedded)) + embedded
    if len(embedded) % 2:
        body += b"\x00"
    body += bytes([1, 0, 0x01, slot])   # route path: 1 word, reserved, port 1 / link slot
    return cip_request(0x52, path, body)


def cip_reply(service: int, data: bytes = b"", general_status: int = 0) -> bytes:
    return bytes([service | 0x80, 0, general_status, 0]) + data


CIP_DINT, CIP_REAL = 0x00C4, 0x00CA
