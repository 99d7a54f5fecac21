"""Device-side servers for the probe's safety tests, one per command, run in the device
namespace:

    modbus ADDR IDENTITY_JSON   pymodbus's own Modbus/TCP server with a device identification table
    slow ADDR DELAYS            a Modbus/TCP device that answers each Read Device Identification
                                after the next delay of DELAYS (seconds, comma-separated), always
                                saying "more follows", so a probe that keeps asking meets a growing
                                delay; it logs each request's arrival as a JSON line
    reset ADDR PORT[,PORT...]   accepts connections and resets each one (RST) on its first request

ADDR is host:port (the port is ignored by reset)."""
from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time


def modbus(addr: str, identity_json: str) -> None:
    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.pdu.device import ModbusDeviceIdentification
    from pymodbus.server import StartTcpServer
    host, port = addr.rsplit(":", 1)
    ident = ModbusDeviceIdentification(info_name=json.loads(identity_json))
    block = ModbusSequentialDataBlock(1, [0] * 16)        # addresses start at 1 in pymodbus 3.16
    context = ModbusServerContext(devices=ModbusDeviceContext(di=block, co=block, hr=block, ir=block), single=True)
    StartTcpServer(context=context, identity=ident, address=(host, int(port)))


def _read_request(conn) -> bytes | None:
    head = b""
    while len(head) < 6:
        chunk = conn.recv(6 - len(head))
        if not chunk:
            return None
        head += chunk
    body = b""
    need = struct.unpack_from(">H", head, 4)[0]
    while len(body) < need:
        chunk = conn.recv(need - len(body))
        if not chunk:
            return None
        body += chunk
    return head + body


def _device_id_answer(req: bytes, object_id: int) -> bytes:
    value = f"object {object_id}".encode()
    pdu = bytes([0x2B, 0x0E, req[9], 0x83, 0xFF, object_id + 1, 1, object_id, len(value)]) + value
    return req[0:4] + struct.pack(">HB", len(pdu) + 1, req[6]) + pdu


def slow(addr: str, delays: str) -> None:
    host, port = addr.rsplit(":", 1)
    waits = [float(d) for d in delays.split(",")]
    srv = socket.create_server((host, int(port)), reuse_port=False)
    print(json.dumps({"ready": addr}), flush=True)
    n = 0
    while True:
        conn, _ = srv.accept()
        with conn:
            while (req := _read_request(conn)) is not None:
                print(json.dumps({"request": n, "at": time.time()}), flush=True)
                time.sleep(waits[min(n, len(waits) - 1)])
                conn.sendall(_device_id_answer(req, req[10] if len(req) > 10 else 0))
                n += 1


def _resetter(srv: socket.socket) -> None:
    while True:
        conn, _ = srv.accept()
        conn.recv(65536)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close = RST
        conn.close()


def reset(addr: str, ports: str) -> None:
    host = addr.rsplit(":", 1)[0]
    for p in ports.split(","):
        threading.Thread(target=_resetter, args=(socket.create_server((host, int(p))),), daemon=True).start()
    print(json.dumps({"ready": addr}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    {"modbus": modbus, "slow": slow, "reset": reset}[sys.argv[1]](*sys.argv[2:])
