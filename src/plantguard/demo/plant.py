"""The demo plant: who is on the network and what happens during five minutes of a Sunday
maintenance window. `build_capture()` returns the frames in time order and the frame numbers of
every deliberate fault and of the traffic that must pass ("marks").

Zones (see site.yaml): control 10.10.1.0/24 VLAN 110, sensing 10.10.2.0/24 VLAN 120,
office 10.20.0.0/24 VLAN 20, guest-wifi 10.30.0.0/24 VLAN 30, dmz 10.40.0.0/24 VLAN 40.
Capture model: see frames.py (each conversation once, on the opener's VLAN).
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

from plantguard.demo import certs, tls
from plantguard.demo import it_payloads as it
from plantguard.demo import ot_payloads as ot
from plantguard.demo.detrand import DetRandom
from plantguard.demo.frames import (
    BROADCAST_MAC,
    ETH_IPV4,
    ETH_LLDP,
    Host,
    Network,
    TcpConn,
    ipv4,
)
from plantguard.demo.frames import udp as udp_seg
from plantguard.demo.hosts import (BROKER, CLOUD, CLOUD_SNI, DNS_SRV, DURATION, ENBT, ENBT_NAME,
                                   ENBT_REVISION, ENBT_SERIAL, EWS, GATEWAY, GATEWAY_SYSDESCR,
                                   HMI, LAPTOP, LLDP_MAC, M340, M340_ID, MISPLACED,
                                   MQTT_DEFAULT_PASSWORD, MQTT_DEFAULT_USER, MS, ROGUE_PI,
                                   ROUTER, S7, S7_FIRMWARE, S7_MODULE, S7_ORDER, S7_PLC_NAME,
                                   S7_SERIAL, SENSOR_21, SENSOR_22, SENSOR_23, SENSOR_31,
                                   SNMP_COMMUNITY, START, SWITCH, SWITCH_SYSDESCR,
                                   TELNET_PASSWORD, TELNET_USER, VISITOR, S)


@dataclass
class DemoCapture:
    frames: list            # (timestamp µs, frame bytes), in capture order
    marks: dict             # label -> frame numbers (1-based)


def build_capture() -> DemoCapture:
    net = Network(ROUTER, DetRandom("plantguard-demo-v1"))
    _background_l2(net)
    _hmi_modbus_poll(net)
    _hmi_s7_poll(net)
    _hmi_enip_poll(net)
    _hmi_snmp_poll(net)
    for i, sensor in enumerate((SENSOR_21, SENSOR_22, SENSOR_23)):
        _sensor_mqtt_tls(net, sensor, START + (1500 + 700 * i) * MS)
    _sensor_mqtt_tls(net, MISPLACED, START + 3800 * MS, mark="fault:sensor-on-control-vlan")
    _sensor_mqtt_cleartext(net)
    _ews_telnet(net, START + 20 * S)
    _ews_http(net, START + 35 * S)
    _ews_modbus_writes(net, START + 60 * S)
    _ews_s7_write_and_download(net, START + 75 * S)
    _ews_cip_write(net, START + 95 * S)
    _office_laptop_modbus_write(net, START + 108 * S)
    _sensor_to_internet(net, START + 130 * S)
    _ews_hmi_weak_tls(net, START + 150 * S)
    _visitor_s7_stop(net, START + 178 * S)
    _ews_s7_restart(net, START + 205 * S)
    _rogue_pi(net, START + 240 * S)
    frames, marks = net.timeline.build()
    return DemoCapture(frames, marks)


# ------------------------------------------------------------------ layer 2 background

def _background_l2(net: Network) -> None:
    r = net.router
    # the switch's LLDP advertisements (untagged, every 30 s)
    lldp = it.lldpdu(SWITCH.mac, "P0.3", 120, "Siemens, SIMATIC NET, Ethernet Port, X1 P3",
                     SWITCH.name, SWITCH_SYSDESCR, SWITCH.ip, 3)
    for k in range(10):
        net.l2(START + 50 * MS + k * 30 * S, LLDP_MAC, SWITCH.mac, ETH_LLDP, lldp, None)
    # address resolution on every VLAN, as hosts come up or refresh their caches
    net.arp_exchange(START + 100 * MS, HMI, M340)
    net.arp_exchange(START + 110 * MS, HMI, S7)
    net.arp_exchange(START + 120 * MS, HMI, ENBT)
    net.arp_exchange(START + 130 * MS, HMI, r.host(110))
    net.arp_exchange(START + 900 * MS, SENSOR_21, r.host(120))
    net.arp_exchange(START + 1600 * MS, SENSOR_22, r.host(120))
    net.arp_exchange(START + 2300 * MS, SENSOR_23, r.host(120))
    net.arp_exchange(START + 6500 * MS, SENSOR_31, r.host(120))
    net.arp_exchange(START + 1200 * MS, r.host(40), BROKER)
    net.arp_exchange(START + 4 * S, r.host(120), GATEWAY)
    net.arp_exchange(START + 19 * S, EWS, r.host(110))
    net.arp_exchange(START + 59 * S, EWS, M340)
    net.arp_exchange(START + 74 * S, EWS, S7)
    net.arp_exchange(START + 94 * S, EWS, ENBT)
    net.arp_exchange(START + 149 * S, EWS, HMI)
    net.arp_exchange(START + 107 * S, LAPTOP, r.host(20))
    net.arp_exchange(START + 107 * S + 5 * MS, LAPTOP, DNS_SRV)
    net.arp_exchange(START + 108 * S + 300 * MS, r.host(110), M340)
    net.arp_exchange(START + 186 * S, r.host(110), S7)
    # the misplaced sensor: a sensing-subnet device cabled into a control-VLAN port. It works,
    # because the router still answers for the sensing gateway address on VLAN 110 (a leftover
    # secondary address), so nobody noticed; its telemetry to the broker runs on VLAN 110.
    stale_gateway = Host("router-vlan110-secondary", ROUTER.ips[120], ROUTER.mac, 110, 255)
    for k in range(5):
        t = START + 3 * S + k * 60 * S
        net.arp_request(t, MISPLACED, MISPLACED.ip, mark="fault:sensor-on-control-vlan")
    net.arp_exchange(START + 3 * S + 500 * MS, MISPLACED, stale_gateway,
                     mark="fault:sensor-on-control-vlan")


# ------------------------------------------------------------------ HMI polling (control zone)

def _hmi_modbus_poll(net: Network) -> None:
    rnd = net.rnd.child("hmi-modbus")
    c = TcpConn(net, HMI, M340, 502)
    t = c.open(START + 200 * MS)
    tid = 1
    t = c.exchange(t + 2 * MS, ot.mbap(tid, 1, ot.mb_read_device_id(1, 0)),
                   ot.mbap(tid, 1, ot.mb_read_device_id_resp(1, 0x01, M340_ID)),
                   mark="identity:m340")
    for k in range(1, 299):
        tid += 1
        t0 = START + k * S + 210 * MS
        regs = [1400 + rnd.below(50), 620 + rnd.below(10), 0, 1, 273 + rnd.below(4)] + [0] * 5
        c.exchange(t0, ot.mbap(tid, 1, ot.mb_read_holding(0, 10)),
                   ot.mbap(tid, 1, ot.mb_read_holding_resp(regs)), server_delay=1800,
                   client_ack=True)
        if k % 5 == 0:
            tid += 1
            bits = [rnd.below(2) == 1 for _ in range(16)]
            c.exchange(t0 + 300 * MS, ot.mbap(tid, 1, ot.mb_read_coils(0, 16)),
                       ot.mbap(tid, 1, ot.mb_read_coils_resp(bits)), server_delay=1500,
                       client_ack=True)


def _s7_connect(c: TcpConn, t: int, mark: str | None = None, src_ref: int = 0x0001) -> int:
    """COTP connection to rack 0 / slot 2 and S7 communication setup; returns the time."""
    t = c.open(t, mark=mark)
    t = c.exchange(t + MS, ot.cotp_connect(True, 0, src_ref, 0x0100, 0x0102),
                   ot.cotp_connect(False, src_ref, 0x4412, 0x0100, 0x0102), server_delay=1200,
                   mark=mark)
    return c.exchange(t + MS, ot.s7_job(0, ot.s7_setup_comm(480)),
                      ot.s7_ack(0, ot.s7_setup_comm(240)),
                      server_delay=2500, mark=mark)


def _s7_identity_records() -> tuple[list[bytes], list[bytes]]:
    major, minor, patch = S7_FIRMWARE
    r0011 = [ot.szl_0011_record(0x0001, S7_ORDER, 0x00C0, 0x0004, 0x0001),
             ot.szl_0011_record(0x0006, S7_ORDER, 0x00C0, 0x0004, 0x0001),
             ot.szl_0011_record(0x0007, "", 0x00C0, 0x5600 | major, (minor << 8) | patch)]
    r001c = [ot.szl_001c_record(0x0001, S7_PLC_NAME),
             ot.szl_001c_record(0x0002, S7_MODULE),
             ot.szl_001c_record(0x0003, "LINE1-PACKAGING"),
             ot.szl_001c_record(0x0004, "Original Siemens Equipment"),
             ot.szl_001c_record(0x0005, S7_SERIAL),
             ot.szl_001c_record(0x0007, S7_MODULE),
             ot.szl_001c_record(0x0008, "MMC 3A1F5C27"),
             ot.szl_001c_record(0x0009, struct.pack("!HHH", 0x002A, 0xF600, 0x0001)),
             ot.szl_001c_record(0x000A, b"\x00" * 26 + struct.pack("!HI", 0, 0)),
             ot.szl_001c_record(0x000B, "HALL 2 / CABINET 4")]
    return r0011, r001c


def _hmi_s7_poll(net: Network) -> None:
    rnd = net.rnd.child("hmi-s7")
    c = TcpConn(net, HMI, S7, 102)
    t = _s7_connect(c, START + 300 * MS)
    r0011, r001c = _s7_identity_records()
    ref = 0x0100
    for szl_id, recs, reclen in ((0x0011, r0011, 28), (0x001C, r001c, 34)):
        ref += 1
        p, d = ot.s7_szl_request(0, szl_id, 0)
        rp, rd = ot.s7_szl_response(0, szl_id, 0, reclen, recs)
        t = c.exchange(t + 3 * MS, ot.s7_userdata(ref, p, d),
                       ot.s7_userdata(ref, rp, rd), server_delay=4000,
                       mark="identity:s7")
    items = [ot.s7_any_item(1, 0, 4), ot.s7_any_item(1, 10, 2)]
    for k in range(1, 299):
        ref += 1
        t0 = START + k * S + 420 * MS
        vals = [struct.pack("!f", 55.0 + rnd.uniform(-0.5, 0.5)), struct.pack("!H", 1 + rnd.below(3))]
        c.exchange(t0, ot.s7_job(ref, ot.s7_read_var(items)),
                   ot.s7_ack(ref, bytes([0x04, len(items)]), ot.s7_read_var_resp_data(vals)),
                   server_delay=3500, client_ack=True)


def _enip_session(net: Network, client: Host, t: int,
                  mark: str | None = None) -> tuple[TcpConn, int, int]:
    c = TcpConn(net, client, ENBT, 44818)
    t = c.open(t, mark=mark)
    handle = 0x00010000 | net.rnd.child("enip-session/" + client.ip).bits(16)
    ctx = b"\x00" * 8
    t = c.exchange(t + MS, ot.enip(ot.ENIP_REGISTER_SESSION, ot.enip_register_session_data(), 0, ctx),
                   ot.enip(ot.ENIP_REGISTER_SESSION, ot.enip_register_session_data(), handle, ctx),
                   server_delay=1100, mark=mark)
    return c, t, handle


def _hmi_enip_poll(net: Network) -> None:
    rnd = net.rnd.child("hmi-enip")
    path = net.path(HMI, ENBT)
    sport = net.ephemeral_port(HMI)
    t = START + 400 * MS
    path.udp(t, True, sport, 44818, ot.enip(ot.ENIP_LIST_IDENTITY, b""), mark="identity:enbt")
    ident = ot.enip_list_identity_resp(ENBT.ip, 1, 12, 58, ENBT_REVISION, 0x0030, ENBT_SERIAL,
                                       ENBT_NAME, 3)
    path.udp(t + 2 * MS, False, 44818, sport, ot.enip(ot.ENIP_LIST_IDENTITY, ident),
             mark="identity:enbt")
    c, t, handle = _enip_session(net, HMI, t + 50 * MS)
    for k in range(1, 150):
        t0 = START + 2 * k * S + 630 * MS
        ctx = struct.pack("<Q", k)
        if k % 2:
            req = ot.cip_unconnected_send(ot.cip_read_tag("Line1_Speed"))
            rsp = ot.cip_reply(0x4C, struct.pack("<Hi", ot.CIP_DINT, 1400 + rnd.below(50)))
        else:
            req = ot.cip_unconnected_send(ot.cip_read_tag("Tank1_Level"))
            rsp = ot.cip_reply(0x4C, struct.pack("<Hf", ot.CIP_REAL, 62.0 + rnd.uniform(-1, 1)))
        c.exchange(t0, ot.enip(ot.ENIP_SEND_RR_DATA, ot.enip_send_rr(req), handle, ctx),
                   ot.enip(ot.ENIP_SEND_RR_DATA, ot.enip_send_rr(rsp, 0), handle, ctx),
                   server_delay=2200, client_ack=True)


def _hmi_snmp_poll(net: Network) -> None:
    """The HMI polls the sensing gateway over the control->sensing conduit (SNMPv2c, 'public')."""
    path = net.path(HMI, GATEWAY)
    sport = net.ephemeral_port(HMI)
    oids = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"]
    for k in range(5):
        t = START + (5 + 60 * k) * S
        rid = 0x3A10 + k
        req = it.snmp_message(SNMP_COMMUNITY, it.SNMP_GET, rid, [(o, it.BER_NULL) for o in oids])
        values = [it.ber_str(GATEWAY_SYSDESCR), it.ber_oid("1.3.6.1.4.1.8691.7.44"),
                  it.ber_uint(2_593_200 + 6000 * k + 500, it.TIMETICKS), it.ber_str(GATEWAY.name)]
        rsp = it.snmp_message(SNMP_COMMUNITY, it.SNMP_RESPONSE, rid, list(zip(oids, values)))
        path.udp(t, True, sport, 161, req, mark="fault:snmp-public")
        path.udp(t + 3 * MS, False, 161, sport, rsp, mark="fault:snmp-public")


# ------------------------------------------------------------------ sensors -> DMZ broker

def _tls12_handshake(c: TcpConn, t: int, seed: str, sni_host: str | None, chain: list[bytes],
                     key, mark: str | None) -> int:
    rnd = DetRandom("tls12/" + seed)
    crandom, srandom, sid = rnd.bytes(32), rnd.bytes(32), rnd.bytes(32)
    exts = ((tls.sni(sni_host) if sni_host else b"")
            + tls.ext(10, struct.pack("!HHH", 4, 23, 29))                  # groups: P-256, X25519
            + tls.ext(11, b"\x01\x00")                                     # point formats
            + tls.ext(13, struct.pack("!H5H", 10, 0x0401, 0x0501, 0x0601, 0x0403, 0x0804))
            + tls.ext(23, b"") + tls.ext(0xFF01, b"\x00"))
    hello = tls.client_hello(tls.TLS12, crandom, [0xC02B, tls.ECDHE_RSA_AES128_GCM_SHA256,
                                                  0xC030, 0x009C, tls.RSA_AES128_CBC_SHA], exts)
    t = c.send(t, True, tls.record(tls.CT_HANDSHAKE, 0x0301, hello), mark=mark)
    ske, cke = tls.ecdhe_key_exchange(seed, crandom, srandom, key)
    sexts = tls.ext(0xFF01, b"\x00") + tls.ext(11, b"\x01\x00") + tls.ext(23, b"")
    shello = tls.server_hello(tls.TLS12, srandom, sid, tls.ECDHE_RSA_AES128_GCM_SHA256, sexts)
    flight = (tls.record(tls.CT_HANDSHAKE, tls.TLS12, shello)
              + tls.record(tls.CT_HANDSHAKE, tls.TLS12, tls.certificate(chain))
              + tls.record(tls.CT_HANDSHAKE, tls.TLS12, ske)
              + tls.record(tls.CT_HANDSHAKE, tls.TLS12, tls.handshake(tls.HS_SERVER_HELLO_DONE, b"")))
    t = c.send(t + 3 * MS, False, flight, mark=mark)
    t = c.send(t + 25 * MS, True, tls.record(tls.CT_HANDSHAKE, tls.TLS12, cke)
               + tls.record(tls.CT_CCS, tls.TLS12, tls.CCS)
               + tls.gcm_record(rnd, tls.CT_HANDSHAKE, 16), mark=mark)
    return c.send(t + 2 * MS, False, tls.record(tls.CT_CCS, tls.TLS12, tls.CCS)
                  + tls.gcm_record(rnd, tls.CT_HANDSHAKE, 16), mark=mark)


def _telemetry(rnd: DetRandom, sensor: Host, t: int) -> bytes:
    ts = (t - START) // S
    doc = {"dev": sensor.name, "t": ts, "temp_c": round(21.0 + rnd.uniform(-0.8, 0.8), 2),
           "rh": round(41.0 + rnd.uniform(-2, 2), 1)}
    return json.dumps(doc, separators=(",", ":")).encode()


def _sensor_mqtt_tls(net: Network, sensor: Host, t: int,
                     mark: str = "pass:mqtt-tls-sensing-to-dmz") -> None:
    """Telemetry over the allowed conduit: MQTT over TLS 1.2 on 8883, properly issued cert."""
    rnd = net.rnd.child("mqtt-tls/" + sensor.ip)
    leaf, ca = certs.broker_chain()
    c = TcpConn(net, sensor, BROKER, 8883)
    t = c.open(t, mark=mark)
    t = _tls12_handshake(c, t + MS, "broker/" + sensor.ip, "mqtt.plant-a.local", [leaf, ca],
                         certs.rsa_key("dmz-broker", 2048), mark)
    connect = it.mqtt_connect(sensor.name, 60, sensor.name, "tls-protected-secret")
    t = c.send(t + 5 * MS, True, tls.gcm_record(rnd, tls.CT_APPDATA, len(connect)), mark=mark)
    t = c.send(t + 2 * MS, False, tls.gcm_record(rnd, tls.CT_APPDATA, 4), mark=mark)
    k = 1
    while True:
        tp = t + k * 5 * S
        if tp > START + DURATION - S:
            break
        msg = it.mqtt_publish(f"plant-a/sensing/{sensor.name}/climate", _telemetry(rnd, sensor, tp))
        c.send(tp, True, tls.gcm_record(rnd, tls.CT_APPDATA, len(msg)))
        c.ack(tp + 40 * MS, False)
        k += 1


def _sensor_mqtt_cleartext(net: Network) -> None:
    """A legacy vibration sensor on plain MQTT 1883, logging in with the factory default."""
    rnd = net.rnd.child("mqtt-plain")
    c = TcpConn(net, SENSOR_31, BROKER, 1883)
    t = c.open(START + 7 * S)
    t = c.send(t + 2 * MS, True, it.mqtt_connect("vs31-" + SENSOR_31.mac[-5:].replace(":", ""), 60,
                                                  MQTT_DEFAULT_USER, MQTT_DEFAULT_PASSWORD),
               mark="fault:mqtt-default-cleartext")
    t = c.send(t + 2 * MS, False, it.mqtt_connack(0))
    for k in range(1, 30):
        tp = t + k * 10 * S
        rms = round(2.0 + rnd.uniform(0, 1.5), 3)
        body = json.dumps({"dev": SENSOR_31.name, "t": (tp - START) // S, "rms_mm_s": rms},
                          separators=(",", ":")).encode()
        c.send(tp, True, it.mqtt_publish("plant-a/sensing/vib-31/rms", body),
               mark="fault:mqtt-cleartext-telemetry")
        c.ack(tp + 40 * MS, False)


# ------------------------------------------------------------------ engineering workstation

def _ews_telnet(net: Network, t: int) -> None:
    """An engineer logs in to the gateway's Telnet console (conduit control->sensing)."""
    c = TcpConn(net, EWS, GATEWAY, 23)
    t = c.open(t, mark="pass:conduit-control-to-sensing")
    neg = (it.telnet_cmd(it.WILL, it.OPT_ECHO) + it.telnet_cmd(it.WILL, it.OPT_SGA)
           + it.telnet_cmd(it.DO, it.OPT_TTYPE) + it.telnet_cmd(it.DO, it.OPT_NAWS))
    t = c.send(t + 20 * MS, False, neg)
    t = c.send(t + 5 * MS, True, it.telnet_cmd(it.DO, it.OPT_ECHO) + it.telnet_cmd(it.DO, it.OPT_SGA)
               + it.telnet_cmd(it.WILL, it.OPT_TTYPE) + it.telnet_cmd(it.WILL, it.OPT_NAWS))
    t = c.send(t + 3 * MS, False, bytes([it.IAC, it.SB, it.OPT_TTYPE, 1, it.IAC, it.SE]))
    t = c.send(t + 3 * MS, True, it.telnet_naws(80, 24) + it.telnet_ttype_is("ANSI"))
    banner = (b"\r\nModel name       : MGate MB3180\r\nMAC address      : 00:90:E8:6C:2D:11\r\n"
              b"Serial No.       : 4412\r\nFirmware version : 2.2 Build 18122811\r\n\r\nlogin: ")
    t = c.send(t + 30 * MS, False, banner)
    mark = "fault:telnet-login"
    for ch in TELNET_USER:                          # typed character by character, echoed
        t = c.send(t + 180 * MS, True, ch.encode(), mark=mark)
        t = c.send(t + 2 * MS, False, ch.encode())
    t = c.send(t + 200 * MS, True, b"\r\n", mark=mark)
    t = c.send(t + 3 * MS, False, b"\r\npassword: ")
    for ch in TELNET_PASSWORD:                      # not echoed
        t = c.send(t + 160 * MS, True, ch.encode(), mark=mark)
        c.ack(t + 40 * MS, False)
        t += 40 * MS
    t = c.send(t + 200 * MS, True, b"\r\n", mark=mark)
    t = c.send(t + 40 * MS, False, b"\r\n\r\nLogin successful.\r\nMGate MB3180> ")
    for ch in "exit":
        t = c.send(t + 150 * MS, True, ch.encode())
        t = c.send(t + 2 * MS, False, ch.encode())
    t = c.send(t + 150 * MS, True, b"\r\n")
    t = c.send(t + 3 * MS, False, b"\r\nBye.\r\n")
    c.close(t + 5 * MS, from_client=False)


def _ews_http(net: Network, t: int) -> None:
    c = TcpConn(net, EWS, GATEWAY, 80)
    mark = "pass:conduit-control-to-sensing"
    t = c.open(t, mark=mark)
    req = it.http_request("GET", "/home.htm", [
        ("Host", GATEWAY.ip),
        ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) "
                       "Gecko/20100101 Firefox/115.0"),
        ("Accept", "text/html,application/xhtml+xml"), ("Connection", "close")])
    body = (b"<html><head><title>MGate MB3180</title></head><body><h1>MGate MB3180</h1>"
            b"<p>Firmware 2.2 Build 18122811</p><p>Modbus RTU master: 4 slaves online</p>"
            b"</body></html>")
    rsp = it.http_response(200, "OK", [("Server", "MoxaHttp/1.0"), ("Content-Type", "text/html"),
                                       ("Connection", "close")], body)
    t = c.exchange(t + MS, req, rsp, server_delay=12 * MS, mark="service:gateway-http")
    c.close(t + 2 * MS, from_client=False)


def _ews_modbus_writes(net: Network, t: int) -> None:
    c = TcpConn(net, EWS, M340, 502)
    t = c.open(t)
    mark = "pass:ews-write"
    t = c.exchange(t + MS, ot.mbap(1, 1, ot.mb_write_multiple(100, [1450, 1500, 30])),
                   ot.mbap(1, 1, ot.mb_write_multiple_resp(100, 3)), server_delay=2500, mark=mark)
    t = c.exchange(t + 400 * MS, ot.mbap(2, 1, ot.mb_write_single(110, 1)),
                   ot.mbap(2, 1, ot.mb_write_single(110, 1)), server_delay=2500, mark=mark)
    c.close(t + 300 * MS)


def _ews_s7_write_and_download(net: Network, t: int) -> None:
    """The authorised station writes a setpoint, then downloads FC 12 and activates it."""
    c = TcpConn(net, EWS, S7, 102)
    t = _s7_connect(c, t, src_ref=0x0005)
    ref = 0x0500
    item = ot.s7_any_item(10, 4, 2)
    t = c.exchange(t + 50 * MS,
                   ot.s7_job(ref, ot.s7_write_var([item]),
                             ot.s7_write_var_data([struct.pack("!h", 1450)])),
                   ot.s7_ack(ref, *ot.s7_write_var_resp(1)),
                   server_delay=4000, mark="pass:ews-write")
    mark = "pass:ews-download"
    block = _mc7_block(net.rnd.child("mc7"), 12, 146)
    ref += 1
    t = c.exchange(t + 800 * MS,
                   ot.s7_job(ref, ot.s7_request_download("0C", 12, len(block), 146)),
                   ot.s7_ack(ref, b"\x1a"), server_delay=6000, mark=mark)
    # the PLC now pulls the block from the station, then reports the end of the download
    t = c.send(t + 3 * MS, False, ot.s7_job(0x0C00, ot.s7_download_block_job("0C", 12)),
               mark=mark)
    t = c.send(t + 2 * MS, True, ot.s7_ack(0x0C00, *ot.s7_download_block_ack(block)),
               mark=mark)
    t = c.send(t + 8 * MS, False, ot.s7_job(0x0C01, ot.s7_download_ended_job("0C", 12)),
               mark=mark)
    t = c.send(t + 2 * MS, True, ot.s7_ack(0x0C01, b"\x1c"), mark=mark)
    ref += 1
    inse = ot.s7_pi_service("_INSE", b"\x01\x00" + b"0C00012P")
    t = c.exchange(t + 20 * MS, ot.s7_job(ref, inse),
                   ot.s7_ack(ref, b"\x28"), server_delay=15 * MS,
                   mark=mark)
    c.close(t + 500 * MS)


def _mc7_block(rnd: DetRandom, number: int, mc7_len: int) -> bytes:
    """A compiled block as loaded: header (magic 0x70 0x70, version, attributes, language,
    block type, number, length), MC7 code and trailing interface/segment data."""
    body_len = 36 + mc7_len + 24
    header = struct.pack("!BBBBBBHI", 0x70, 0x70, 0x01, 0x01, 0x05, 0x0C, number, body_len)
    header += b"\x00\x00\x00\x00" + b"\x02\x8b\x1f\x4c\x0a\x1b" + b"\x02\x8b\x1f\x4c\x0a\x1b"
    header += struct.pack("!HHHH", 2, 0, 0, mc7_len)
    return (header + rnd.bytes(mc7_len) + b"\x00" * 24)[:body_len]


def _ews_cip_write(net: Network, t: int) -> None:
    c, t, handle = _enip_session(net, EWS, t)
    mark = "pass:ews-write"
    req = ot.cip_unconnected_send(ot.cip_write_tag("Line1_SpeedSetpoint", ot.CIP_DINT,
                                                   struct.pack("<i", 1450)))
    ctx = b"EWS-0001"
    t = c.exchange(t + 200 * MS, ot.enip(ot.ENIP_SEND_RR_DATA, ot.enip_send_rr(req), handle, ctx),
                   ot.enip(ot.ENIP_SEND_RR_DATA, ot.enip_send_rr(ot.cip_reply(0x4D), 0), handle, ctx),
                   server_delay=2400, mark=mark)
    c.close(t + 300 * MS)


def _ews_hmi_weak_tls(net: Network, t: int) -> None:
    """The HMI's built-in web server: TLS 1.0, RSA key exchange, expired self-signed cert."""
    rnd = DetRandom("tls10/hmi")
    c = TcpConn(net, EWS, HMI, 443)
    mark = "fault:hmi-weak-tls"
    t = c.open(t, mark=mark)
    crandom, srandom, sid = rnd.bytes(32), rnd.bytes(32), rnd.bytes(32)
    hello = tls.client_hello(tls.TLS10, crandom, [tls.RSA_AES128_CBC_SHA, tls.RSA_AES256_CBC_SHA,
                                                  tls.RSA_3DES_EDE_CBC_SHA], tls.ext(0xFF01, b"\x00"))
    t = c.send(t + MS, True, tls.record(tls.CT_HANDSHAKE, tls.TLS10, hello), mark=mark)
    flight = (tls.record(tls.CT_HANDSHAKE, tls.TLS10,
                         tls.server_hello(tls.TLS10, srandom, sid, tls.RSA_AES128_CBC_SHA,
                                          tls.ext(0xFF01, b"\x00")))
              + tls.record(tls.CT_HANDSHAKE, tls.TLS10, tls.certificate([certs.hmi_self_signed()]))
              + tls.record(tls.CT_HANDSHAKE, tls.TLS10, tls.handshake(tls.HS_SERVER_HELLO_DONE, b"")))
    t = c.send(t + 4 * MS, False, flight, mark=mark)
    cke = tls.rsa_client_key_exchange(rnd, 128)          # 1024-bit key: 128-byte pre-master
    t = c.send(t + 20 * MS, True, tls.record(tls.CT_HANDSHAKE, tls.TLS10, cke)
               + tls.record(tls.CT_CCS, tls.TLS10, tls.CCS)
               + tls.cbc_sha1_record(rnd, tls.CT_HANDSHAKE, 16), mark=mark)
    t = c.send(t + 6 * MS, False, tls.record(tls.CT_CCS, tls.TLS10, tls.CCS)
               + tls.cbc_sha1_record(rnd, tls.CT_HANDSHAKE, 16), mark=mark)
    t = c.send(t + 3 * MS, True, tls.cbc_sha1_record(rnd, tls.CT_APPDATA, 1))       # 1/n-1 split
    t = c.send(t + 1 * MS, True, tls.cbc_sha1_record(rnd, tls.CT_APPDATA, 340))
    t = c.send(t + 30 * MS, False, tls.cbc_sha1_record(rnd, tls.CT_APPDATA, 2900))
    c.ack(t + 40 * MS, True)
    c.close(t + 15 * S)


def _ews_s7_restart(net: Network, t: int) -> None:
    """After the rogue STOP the engineer warm-restarts the CPU: authorised control."""
    c = TcpConn(net, EWS, S7, 102)
    t = _s7_connect(c, t, src_ref=0x0006)
    t = c.exchange(t + 300 * MS, ot.s7_job(0x0600, ot.s7_pi_service("P_PROGRAM")),
                   ot.s7_ack(0x0600, b"\x28"), server_delay=40 * MS,
                   mark="pass:ews-plc-restart")
    c.close(t + 400 * MS)


# ------------------------------------------------------------------ the faults from outside OT

def _office_laptop_modbus_write(net: Network, t: int) -> None:
    """An office laptop resolves the PLC's name and writes a holding register on it."""
    dns = net.path(LAPTOP, DNS_SRV)
    sport = net.ephemeral_port(LAPTOP, 50000)
    dns.udp(t, True, sport, 53, it.dns_query(0x6E21, "plc-m340.plant-a.local"))
    dns.udp(t + 800, False, 53, sport, it.dns_response(0x6E21, "plc-m340.plant-a.local", [M340.ip]))
    sport2 = net.ephemeral_port(LAPTOP, 50000)
    dns.udp(t + 30 * S, True, sport2, 53, it.dns_query(0x6E22, "fileserver.plant-a.local"))
    dns.udp(t + 30 * S + 700, False, 53, sport2,
            it.dns_response(0x6E22, "fileserver.plant-a.local", ["10.20.0.20"]))
    c = TcpConn(net, LAPTOP, M340, 502)
    mark = "fault:office-modbus-write"
    t = c.open(t + 400 * MS, rtt=1400, mark=mark)
    t = c.exchange(t + 300 * MS, ot.mbap(1, 1, ot.mb_read_holding(110, 1)),
                   ot.mbap(1, 1, ot.mb_read_holding_resp([1])), server_delay=2400, mark=mark)
    t = c.exchange(t + 2 * S, ot.mbap(2, 1, ot.mb_write_single(110, 0)),
                   ot.mbap(2, 1, ot.mb_write_single(110, 0)), server_delay=2400,
                   mark="fault:office-modbus-write-request", response_mark=mark)
    c.close(t + S)


def _visitor_s7_stop(net: Network, t: int) -> None:
    """A visitor's laptop joins the guest Wi-Fi (DHCP) and sends an S7 PLC STOP."""
    rnd = net.rnd.child("dhcp")
    r30 = net.router.host(30)
    xid = rnd.bits(32)
    params = it.dhcp_option(55, bytes([1, 121, 3, 6, 15, 119, 252, 95, 44, 46]))
    cid = it.dhcp_option(61, b"\x01" + bytes.fromhex(VISITOR.mac.replace(":", "")))
    name = it.dhcp_option(12, b"Visitors-MacBook")
    def bcast(tt: int, msg: bytes) -> None:
        seg = udp_seg("0.0.0.0", "255.255.255.255", 68, 67, msg)
        pkt = ipv4("0.0.0.0", "255.255.255.255", 17, seg, net.ip_id(VISITOR), 255, False, 0x10)
        net.l2(tt, BROADCAST_MAC, VISITOR.mac, ETH_IPV4, pkt, VISITOR.vlan, "context:visitor-dhcp")

    def reply(tt: int, msg: bytes) -> None:
        seg = udp_seg(r30.ip, VISITOR.ip, 67, 68, msg)
        pkt = ipv4(r30.ip, VISITOR.ip, 17, seg, net.ip_id(r30), 255, False)
        net.l2(tt, VISITOR.mac, r30.mac, ETH_IPV4, pkt, VISITOR.vlan, "context:visitor-dhcp")

    opt = it.dhcp_option
    client_opts = [params, opt(57, b"\x05\xdc"), cid]            # max message size 1500
    server_opts = [opt(54, it.ip4(r30.ip)), opt(51, struct.pack("!I", 3600)),
                   opt(1, it.ip4("255.255.255.0")), opt(3, it.ip4(r30.ip)), opt(6, it.ip4(r30.ip))]
    lease = dict(yiaddr=VISITOR.ip, siaddr=r30.ip)
    bcast(t, it.dhcp_message(1, xid, VISITOR.mac, [opt(53, b"\x01"), *client_opts,
                                                   opt(51, struct.pack("!I", 7776000)), name]))
    reply(t + 4 * MS, it.dhcp_message(2, xid, VISITOR.mac, [opt(53, b"\x02"), *server_opts], **lease))
    bcast(t + S, it.dhcp_message(1, xid, VISITOR.mac, [opt(53, b"\x03"), *client_opts,
                                                       opt(50, it.ip4(VISITOR.ip)),
                                                       opt(54, it.ip4(r30.ip)), name], secs=1))
    reply(t + S + 3 * MS, it.dhcp_message(2, xid, VISITOR.mac, [opt(53, b"\x05"), *server_opts],
                                          **lease))
    net.arp_exchange(t + 2 * S, VISITOR, r30)
    c = TcpConn(net, VISITOR, S7, 102)
    mark = "fault:guest-s7-stop"
    t = _s7_connect(c, t + 12 * S, mark=mark, src_ref=0x0014)
    t = c.exchange(t + 400 * MS, ot.s7_job(0x1400, ot.s7_plc_stop()),
                   ot.s7_ack(0x1400, b"\x29"), server_delay=30 * MS,
                   mark="fault:guest-s7-stop-request", response_mark=mark)
    c.close(t + S)


def _sensor_to_internet(net: Network, t: int) -> None:
    """A sensing-zone sensor phones home to its vendor's cloud (TLS 1.3 to a public address)."""
    rnd = DetRandom("tls13/cloud")
    c = TcpConn(net, SENSOR_22, CLOUD, 443)
    mark = "fault:sensor-internet"
    t = c.open(t, rtt=24 * MS, mark=mark)
    crandom, sid = rnd.bytes(32), rnd.bytes(32)
    exts = (tls.sni(CLOUD_SNI) + tls.ext(10, struct.pack("!HHH", 4, 29, 23))
            + tls.ext(13, struct.pack("!H4H", 8, 0x0403, 0x0804, 0x0401, 0x0503))
            + tls.ext(43, b"\x02\x03\x04")                                   # supported_versions
            + tls.ext(45, b"\x01\x01")                                       # psk_dhe_ke
            + tls.ext(51, struct.pack("!HHH", 36, 29, 32) + tls.x25519_share("cloud-client")))
    hello = tls.client_hello(tls.TLS12, crandom, [tls.TLS_AES_128_GCM_SHA256, 0x1302, 0x1303], exts, sid)
    t = c.send(t + MS, True, tls.record(tls.CT_HANDSHAKE, 0x0301, hello), mark=mark)
    sexts = (tls.ext(43, b"\x03\x04")
             + tls.ext(51, struct.pack("!HH", 29, 32) + tls.x25519_share("cloud-server")))
    flight = (tls.record(tls.CT_HANDSHAKE, tls.TLS12,
                         tls.server_hello(tls.TLS12, rnd.bytes(32), sid,
                                          tls.TLS_AES_128_GCM_SHA256, sexts))
              + tls.record(tls.CT_CCS, tls.TLS12, tls.CCS)
              + tls.gcm_record(rnd, tls.CT_APPDATA, 2950, explicit_nonce=False))
    t = c.send(t + 12 * MS, False, flight, mark=mark)
    t = c.send(t + 10 * MS, True, tls.record(tls.CT_CCS, tls.TLS12, tls.CCS)
               + tls.gcm_record(rnd, tls.CT_APPDATA, 37, explicit_nonce=False), mark=mark)
    for delay, from_sensor, size in ((2, True, 412), (12, False, 180), (40, True, 2)):
        t = c.send(t + delay * MS, from_sensor,
                   tls.gcm_record(rnd, tls.CT_APPDATA, size, explicit_nonce=False), mark=mark)
    c.close(t + 5 * MS, rtt=24 * MS)


def _rogue_pi(net: Network, t: int) -> None:
    """An undeclared Raspberry Pi on the control VLAN pings the HMI and the controllers."""
    mark = "fault:unknown-device"
    net.arp_request(t - 2 * S, ROGUE_PI, ROGUE_PI.ip, mark=mark)          # gratuitous ARP
    for i, target in enumerate((HMI, M340, S7, ENBT)):
        tt = t + i * S
        net.arp_exchange(tt, ROGUE_PI, target, mark=mark)
        path = net.path(ROGUE_PI, target)
        for seq in range(1, 4):
            tp = tt + 5 * MS + (seq - 1) * S // 4
            data = struct.pack("<QQ", tp // S, tp % S) + bytes(range(0x10, 0x38))  # Linux ping
            path.icmp_echo(tp, 0x0B17 + i, seq, data, mark=mark)
