"""PROFINET: DCP on layer 2 (ethertype 0x8892) and IO context management (IO-CM) over
connectionless DCE/RPC (UDP 34964 and the ports the RPC endpoints hand out).

DCP (frame ids 0xFEFC Hello, 0xFEFD Get/Set, 0xFEFE Identify request, 0xFEFF Identify
response): service id and type, transaction id, then option/suboption blocks (IP parameter,
NameOfStation, DeviceVendorValue, Device ID, Device Role, control). Responses carry a 2-byte
BlockInfo before each block's data, Set requests a 2-byte BlockQualifier.

IO-CM: the 80-byte connectionless DCE/RPC header (packet type, flags, data representation,
object / interface / activity UUIDs, sequence and operation numbers, fragments), then the
PNIO body: NDR array header and PROFINET blocks (always big-endian).

Observations: identity (DCP Identify and Get responses and Hello: name, product =
DeviceVendorValue, vendor_id, device_id, role_hint, ip/netmask/gateway; IO-CM: vendor and device
id of the RPC target from its object UUID, the controller's station name and ids from Connect;
I&M0 records: order number, serial, hardware and software revision), address (DCP IP <-> MAC),
role (io-controller / io-device / io-supervisor), operation (DCP Identify, with the
NameOfStation it asks for, and Set, with the NameOfStation it assigns: `name_of_station`; the
inventory names stations from them, see inventory/build.py; IO-CM Connect / Read / Write /
Control / Release), error (refusals) and service for the RPC server side.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from uuid import UUID

from plantguard.model import Observation, Packet
from plantguard.protocols._spec import ProtocolSpec
from plantguard.protocols.base import cstr, once, printable

NAME = "profinet"

MAX_BLOCKS = 64

# --- DCP ------------------------------------------------------------------------------------

DCP_FRAME_IDS = {0xFEFC: "Hello", 0xFEFD: "Get/Set", 0xFEFE: "Identify", 0xFEFF: "Identify"}
DCP_SERVICES = {3: "Get", 4: "Set", 5: "Identify", 6: "Hello"}
DEVICE_ROLES = ((0x01, "io-device"), (0x02, "io-controller"), (0x04, "io-multidevice"),
                (0x08, "io-supervisor"))
CONTROL_SUBOPTIONS = {1: "start transaction", 2: "end transaction", 3: "signal (flash LED)",
                      4: "response", 5: "reset factory settings", 6: "reset to factory"}


@dataclass
class DcpMessage:
    frame_id: int
    service: str
    response: bool
    status: int          # service type: 0 request, 1 success, 5 unsupported
    xid: int
    blocks: list         # (option, suboption, data bytes, info/qualifier or None)

    def fields(self) -> dict:
        """Identity-bearing block values by name."""
        f: dict = {}
        for opt, sub, data, _info in self.blocks:
            if opt == 1 and sub == 2 and len(data) >= 12:
                f["ip"] = ".".join(map(str, data[0:4]))
                f["netmask"] = ".".join(map(str, data[4:8]))
                f["gateway"] = ".".join(map(str, data[8:12]))
            elif opt == 1 and sub == 1 and len(data) >= 6:
                f["mac"] = data[:6].hex(":")
            elif opt == 2 and sub == 1:
                f["vendor_value"] = printable(cstr(bytes(data)).encode())
            elif opt == 2 and sub == 2:
                f["name"] = printable(cstr(bytes(data)).encode())
            elif opt == 2 and sub == 3 and len(data) >= 4:
                f["vendor_id"], f["device_id"] = struct.unpack_from(">HH", data, 0)
            elif opt == 2 and sub == 4 and data:
                f["roles"] = [name for bit, name in DEVICE_ROLES if data[0] & bit]
            elif opt == 2 and sub == 6:
                f["alias"] = printable(cstr(bytes(data)).encode())
            elif opt == 5:
                f.setdefault("control", []).append(CONTROL_SUBOPTIONS.get(sub, f"control {sub}"))
            elif opt == 0xFF:
                f["all"] = True
        return f


def parse_dcp(b: bytes) -> DcpMessage | None:
    """A DCP PDU (the Ethernet payload, starting with the frame id); None for other RT frames."""
    if len(b) < 12:
        return None
    frame_id = struct.unpack_from(">H", b, 0)[0]
    if frame_id not in DCP_FRAME_IDS:
        return None
    service_id, service_type = b[2], b[3]
    xid = struct.unpack_from(">I", b, 4)[0]
    length = struct.unpack_from(">H", b, 10)[0]
    end = min(len(b), 12 + length)
    response = frame_id == 0xFEFF or service_type != 0
    # Identify/Get responses and Hello carry a BlockInfo, Set requests a BlockQualifier; Set
    # responses (error blocks) and Identify requests (filters) have neither.
    if service_id == 4:
        prefixed = not response
    else:
        prefixed = response or service_id == 6
    blocks = []
    off = 12
    for _ in range(MAX_BLOCKS):
        if off + 4 > end:
            break
        opt, sub, blen = b[off], b[off + 1], struct.unpack_from(">H", b, off + 2)[0]
        data_start, data_end = off + 4, min(end, off + 4 + blen)
        info = None
        if prefixed and opt != 0xFF and blen >= 2:
            info = struct.unpack_from(">H", b, data_start)[0] if data_start + 2 <= data_end else None
            data_start += 2
        blocks.append((opt, sub, bytes(b[data_start:data_end]), info))
        off += 4 + blen + (blen & 1)       # blocks are padded to an even length
    return DcpMessage(frame_id, DCP_SERVICES.get(service_id, f"service {service_id}"), response,
                      service_type, xid, blocks)


def _decode_dcp(pkt: Packet) -> list[Observation]:
    msg = parse_dcp(pkt.payload)
    if msg is None:
        return []
    f = msg.fields()
    if msg.service in ("Identify", "Hello") and (msg.response or msg.service == "Hello"):
        return _dcp_announcement(pkt, msg, f)
    if msg.response:
        if msg.service == "Get":
            return _dcp_refusal(pkt, msg) or _dcp_get_answer(pkt, msg, f)
        if msg.service == "Set":
            return _dcp_refusal(pkt, msg)
        return []
    if msg.service == "Identify":
        what = "All" if f.get("all") else (f'NameOfStation="{f["name"]}"' if "name" in f else "filtered")
        extra = {"name_of_station": f["name"]} if f.get("name") and not f.get("all") else {}
        return [pkt.observe("operation", NAME, category="diagnostic", code="dcp-identify",
                            name="DCP Identify", detail=f"DCP Identify {what}, xid 0x{msg.xid:x}", **extra)]
    if msg.service == "Set":
        return [_dcp_set(pkt, msg, f)]
    if msg.service == "Get":
        return [pkt.observe("operation", NAME, category="diagnostic", code="dcp-get", name="DCP Get",
                            detail=f"DCP Get, xid 0x{msg.xid:x}")]
    return []


def _dcp_get_answer(pkt: Packet, msg: DcpMessage, f: dict) -> list[Observation]:
    """A Get response: the station's own blocks (name, vendor value, ids, IP)."""
    if msg.status != 1:
        return []
    data = _dcp_identity(f, f.get("roles") or [])
    return [pkt.observe("identity", NAME, subject="src", **data)] if data else []


def _dcp_announcement(pkt: Packet, msg: DcpMessage, f: dict) -> list[Observation]:
    """An Identify response or a Hello: who the sender is, its address and its device roles."""
    out: list[Observation] = []
    if msg.status not in (0, 1):
        return out
    roles = f.get("roles") or []
    data = _dcp_identity(f, roles)
    if data:
        out.append(pkt.observe("identity", NAME, subject="src", **data))
    if data.get("ip"):
        out.append(pkt.observe("address", NAME, subject="src", ip=data["ip"], mac=pkt.src_mac, source="dcp"))
    for role in roles:
        if role in ("io-device", "io-controller", "io-supervisor"):
            out.append(pkt.observe("role", NAME, subject="src", role=role,
                                   reason=f"announces the PROFINET device role {role} (DCP)"))
    return out


def _dcp_identity(f: dict, roles: list) -> dict:
    data: dict = {}
    if "name" in f:
        data["name"] = f["name"]
    if f.get("vendor_value"):
        data["product"] = f["vendor_value"]
    for key in ("vendor_id", "device_id"):
        if key in f:
            data[key] = f[key]
    for key in ("ip", "netmask", "gateway"):
        if f.get(key) and f[key] != "0.0.0.0":
            data[key] = f[key]
    if roles:
        data["role_hint"] = roles[0]
    return data


def _dcp_refusal(pkt: Packet, msg: DcpMessage) -> list[Observation]:
    """A Set or Get response: an error when the service failed or a block reports an error."""
    errors = [data[2] for opt, sub, data, _i in msg.blocks if opt == 5 and sub == 4 and len(data) >= 3 and data[2]]
    if msg.status != 1 or errors:
        code = errors[0] if errors else msg.status
        return [pkt.observe("error", NAME, code=code, name=f"DCP {msg.service} refused (error {code})")]
    return []


def _dcp_set(pkt: Packet, msg: DcpMessage, f: dict) -> Observation:
    parts, category = [], "config"
    if "ip" in f:
        parts.append(f"IP {f['ip']} mask {f['netmask']} gateway {f['gateway']}")
    if "name" in f:
        parts.append(f'NameOfStation="{f["name"]}"')
    controls = [c for c in f.get("control", []) if c not in ("start transaction", "end transaction")]
    parts.extend(controls)
    if controls and not ("ip" in f or "name" in f) and all(c.startswith("signal") for c in controls):
        category = "diagnostic"           # only "flash the LED"
    detail = "DCP Set " + (", ".join(parts) if parts else "(no settable block)")
    extra = {"name_of_station": f["name"]} if f.get("name") else {}
    return pkt.observe("operation", NAME, category=category, code="dcp-set", name="DCP Set", detail=detail,
                       **extra)


# --- IO-CM over DCE/RPC ---------------------------------------------------------------------

PACKET_TYPES = ["Request", "Ping", "Response", "Fault", "Working", "No call Response to Ping",
                "Reject", "Acknowledge", "Connectionless Cancel", "Fragment Acknowledge",
                "Cancel Acknowledge"]
PNIO_INTERFACES = {UUID("dea00001-6c97-11d1-8271-00a02442df7d"): "device",
                   UUID("dea00002-6c97-11d1-8271-00a02442df7d"): "controller",
                   UUID("dea00003-6c97-11d1-8271-00a02442df7d"): "supervisor",
                   UUID("dea00004-6c97-11d1-8271-00a02442df7d"): "parameter server"}
PNIO_OBJECT_PREFIX = bytes.fromhex("dea000006c9711d18271")  # + instance, device id, vendor id
OPERATIONS = {0: ("Connect", "other"), 1: ("Release", "other"), 2: ("Read", "read"),
              3: ("Write", "write"), 4: ("Control", "control"), 5: ("Read Implicit", "read")}
RECORD_INDICES = {0xAFF0: "I&M0", 0xAFF1: "I&M1", 0xAFF2: "I&M2", 0xAFF3: "I&M3", 0xAFF4: "I&M4",
                  0xF840: "I&M0FilterData", 0x802A: "PDPortDataReal", 0x8028: "RecordInputDataObjectElement",
                  0x8029: "RecordOutputDataObjectElement", 0xF841: "PDRealData", 0xF842: "PDExpectedData",
                  0xE040: "WriteMultiple", 0x800C: "Diagnosis"}
CONTROL_COMMANDS = ((0x0001, "PrmEnd"), (0x0002, "ApplicationReady"), (0x0004, "Release"),
                    (0x0008, "Done"), (0x0010, "ReadyForCompanion"), (0x0020, "ReadyForRT_CLASS_3"),
                    (0x0040, "PrmBegin"))


@dataclass
class RpcPdu:
    packet_type: str
    ptype: int
    flags1: int
    little_endian: bool
    object_uuid: UUID
    interface_uuid: UUID
    activity_uuid: UUID
    server_boot_time: int
    interface_version: int
    sequence: int
    opnum: int
    body_length: int
    fragment: int
    body: bytes

    @property
    def interface(self) -> str | None:
        return PNIO_INTERFACES.get(self.interface_uuid)

    @property
    def operation(self) -> str:
        return OPERATIONS.get(self.opnum, (f"opnum {self.opnum}", "other"))[0]

    @property
    def fragmented(self) -> bool:
        return bool(self.flags1 & 0x04)


def _uuid(b: bytes, little: bool) -> UUID:
    return UUID(bytes_le=bytes(b)) if little else UUID(bytes=bytes(b))


def parse_rpc(b: bytes) -> RpcPdu | None:
    """The connectionless DCE/RPC header and body; None when b is not one."""
    if len(b) < 80 or b[0] != 4 or b[1] > 10:
        return None
    little = bool(b[4] & 0x10)
    e = "<" if little else ">"
    boot, ver, seq = struct.unpack_from(e + "III", b, 56)
    opnum, _ihint, _ahint, blen, frag = struct.unpack_from(e + "HHHHH", b, 68)
    return RpcPdu(PACKET_TYPES[b[1]], b[1], b[2], little, _uuid(b[8:24], little), _uuid(b[24:40], little),
                  _uuid(b[40:56], little), boot, ver, seq, opnum, blen, frag, bytes(b[80:80 + blen]))


def signature(payload: bytes) -> bool:
    if len(payload) < 80 or payload[0] != 4 or payload[1] > 10:
        return False
    little = bool(payload[4] & 0x10)
    return _uuid(payload[24:40], little) in PNIO_INTERFACES


def object_ids(obj: UUID) -> dict:
    """Instance, device id and vendor id carried in a PNIO object UUID."""
    raw = obj.bytes
    if raw[:10] != PNIO_OBJECT_PREFIX:
        return {}
    instance, device_id, vendor_id = struct.unpack(">HHH", raw[10:16])
    return {"instance": instance, "device_id": device_id, "vendor_id": vendor_id}


def _blocks(body: bytes, start: int):
    """(block type, block bytes incl. header) for the PNIO blocks from `start`."""
    off = start
    for _ in range(MAX_BLOCKS):
        if off + 6 > len(body):
            return
        btype, blen = struct.unpack_from(">HH", body, off)
        if blen < 2:
            return
        yield btype, body[off:off + 4 + blen]
        off += 4 + blen


def parse_ar_block(block: bytes) -> dict:
    """ARBlockReq (0x0101): AR UUID, controller MAC, object UUID and station name."""
    if len(block) < 58:
        return {}
    ar_uuid = UUID(bytes=bytes(block[8:24]))
    mac = block[26:32].hex(":")
    init_obj = UUID(bytes=bytes(block[32:48]))
    # then ARProperties (4), activity timeout factor (2), UDP RT port (2), name length (2)
    name_len = struct.unpack_from(">H", block, 56)[0]
    name = printable(bytes(block[58:58 + name_len]))
    return {"ar_uuid": ar_uuid, "controller_mac": mac, "initiator": object_ids(init_obj), "station": name}


def parse_im0(block: bytes) -> dict:
    """I&M0 record (block type 0x0020): vendor id, order id, serial, hardware and software revision."""
    d = block[6:]
    if len(d) < 54:
        return {}
    sw = f"{chr(d[40]) if 32 < d[40] < 127 else 'V'}{d[41]}.{d[42]}.{d[43]}"
    return {"vendor_id": struct.unpack_from(">H", d, 0)[0], "order_number": printable(cstr(bytes(d[2:22])).encode()),
            "serial": printable(cstr(bytes(d[22:38])).encode()), "hardware": str(struct.unpack_from(">H", d, 38)[0]),
            "firmware": sw}


def _record_header(body: bytes) -> dict:
    for btype, blk in _blocks(body, 20):
        if btype in (0x0008, 0x0009, 0x8008, 0x8009) and len(blk) >= 50:
            api, slot, subslot = struct.unpack_from(">IHH", blk, 24)
            index = struct.unpack_from(">H", blk, 34)[0]
            return {"api": api, "slot": slot, "subslot": subslot, "index": index}
    return {}


def describe(pdu: RpcPdu) -> str:
    parts = [pdu.operation, f"(opnum {pdu.opnum})", f"interface={pdu.interface or pdu.interface_uuid}",
             f"seq={pdu.sequence}"]
    if pdu.opnum in (2, 3, 5):
        rec = _record_header(pdu.body)
        if rec:
            idx = rec["index"]
            parts.append(f"index=0x{idx:04x}" + (f" ({RECORD_INDICES[idx]})" if idx in RECORD_INDICES else "")
                         + f" slot={rec['slot']}/{rec['subslot']}")
    elif pdu.opnum == 0:
        for btype, blk in _blocks(pdu.body, 20):
            if btype == 0x0101:
                ar = parse_ar_block(blk)
                if ar:
                    parts.append(f"ar={ar['ar_uuid']}")
                    if ar["station"]:
                        parts.append(f'controller="{ar["station"]}"')
                break
    elif pdu.opnum == 4:
        for btype, blk in _blocks(pdu.body, 20):
            if btype in (0x0110, 0x0112, 0x0114, 0x0116, 0x0118) and len(blk) >= 30:
                cmd = struct.unpack_from(">H", blk, 28)[0]
                parts.append("command=" + ",".join(n for bit, n in CONTROL_COMMANDS if cmd & bit))
                break
    parts.append(f"object={pdu.object_uuid} activity={pdu.activity_uuid}")
    return " ".join(parts)



def _decode_rpc(pkt: Packet) -> list[Observation]:
    pdu = parse_rpc(pkt.payload)
    if pdu is None or pdu.interface is None:
        return []
    out: list[Observation] = []
    if pdu.ptype == 0:                        # request
        if once(pkt, ("service", pkt.dst, pkt.dport)):
            out.append(pkt.observe("service", NAME, subject="dst", name=NAME))
        out.extend(_roles(pkt, pdu))
        ids = object_ids(pdu.object_uuid)
        if ids and once(pkt, ("target", pkt.dst, ids["vendor_id"], ids["device_id"])):
            out.append(pkt.observe("identity", NAME, subject="dst", vendor_id=ids["vendor_id"],
                                   device_id=ids["device_id"]))
        if pdu.fragment != 0:
            return out                        # one operation per call, on its first fragment
        name, category = OPERATIONS.get(pdu.opnum, (f"opnum {pdu.opnum}", "other"))
        if pdu.opnum == 4 and pdu.interface == "controller":
            category = "other"                # a device telling its controller it is ready
        out.append(pkt.observe("operation", NAME, category=category, code=pdu.opnum, name=name,
                               detail=describe(pdu)))
        if pdu.opnum == 0:
            out.extend(_controller_identity(pkt, pdu))
    elif pdu.ptype == 2 and pdu.fragment == 0:  # response: PNIO status, I&M0 records
        if len(pdu.body) >= 4:
            status = struct.unpack_from(">I", pdu.body, 0)[0]
            if status:
                out.append(pkt.observe("error", NAME, code=f"0x{status:08x}",
                                       name=f"{pdu.operation} refused, PNIO status 0x{status:08x}"))
            elif pdu.opnum in (2, 5):
                for btype, blk in _blocks(pdu.body, 20):
                    if btype == 0x0020:
                        im0 = parse_im0(blk)
                        if im0:
                            out.append(pkt.observe("identity", NAME, subject="src", **im0))
    elif pdu.ptype in (3, 6):                 # fault, reject
        out.append(pkt.observe("error", NAME, code=pdu.packet_type, name=f"RPC {pdu.packet_type} ({pdu.operation})"))
    return out


def _roles(pkt: Packet, pdu: RpcPdu) -> list[Observation]:
    if pdu.interface == "device":
        pair = ("io-controller", "io-device")
    elif pdu.interface == "controller":
        pair = ("io-device", "io-controller")
    elif pdu.interface == "supervisor":
        pair = ("io-supervisor", "io-device")
    else:
        return []
    out = []
    for subject, role in zip(("src", "dst"), pair):
        ip = pkt.src if subject == "src" else pkt.dst
        if once(pkt, ("role", ip, role)):
            out.append(pkt.observe("role", NAME, subject=subject, role=role,
                                   reason=f"PROFINET IO-CM {pdu.operation} on the {pdu.interface} interface"))
    return out


def _controller_identity(pkt: Packet, pdu: RpcPdu) -> list[Observation]:
    for btype, blk in _blocks(pdu.body, 20):
        if btype == 0x0101:
            ar = parse_ar_block(blk)
            data = {}
            if ar.get("station"):
                data["name"] = ar["station"]
            if ar.get("initiator"):
                data["vendor_id"] = ar["initiator"]["vendor_id"]
                data["device_id"] = ar["initiator"]["device_id"]
            return [pkt.observe("identity", NAME, subject="src", **data)] if data else []
    return []


def decode(pkt: Packet) -> list[Observation]:
    if not pkt.l4:
        return _decode_dcp(pkt)
    return _decode_rpc(pkt)


SPEC = ProtocolSpec(
    name=NAME, title="PROFINET DCP and IO-CM", layer="industrial",
    decode=decode, signature=signature,
    udp_ports=(34964,),
    ethertypes=(0x8892,),
    # a DCE/RPC v4 header naming a PNIO interface UUID is unmistakable
    any_port=True,
    traits=frozenset({"industrial", "unauthenticated-control"}),
    server_role="io-device",
    observes=("address", "error", "identity", "operation", "role", "service"),
)
