"""What an assessment of the demo plant must report, as data: each deliberate fault with the
mark naming its frames and the (check ID, assets) findings it must raise, the findings that
follow from the design by the check definitions, and what must pass. The exact-findings test
and the report table read this; frame numbers come from `build_capture().marks`."""
from __future__ import annotations

from dataclasses import dataclass

from plantguard.demo import hosts as P


@dataclass(frozen=True)
class Fault:
    name: str
    mark: str                                   # the frames that show it (DemoCapture.marks)
    findings: tuple[tuple[str, frozenset], ...]  # (check ID, the assets the finding names)
    needs: str = ""                             # a decoder the finding depends on


def _f(check: str, *ips: str) -> tuple[str, frozenset]:
    return check, frozenset(ips)


FAULTS = (
    Fault("office laptop writes a Modbus register on the M340", "fault:office-modbus-write-request", (
        _f("plc.unauthorized-write", P.M340.ip, P.LAPTOP.ip),
        _f("segmentation.it-ot-bridge", P.LAPTOP.ip, P.M340.ip),
        _f("segmentation.zone-violation", P.LAPTOP.ip, P.M340.ip),
        _f("zerotrust.unauthenticated-control", P.M340.ip, P.LAPTOP.ip))),
    Fault("guest-wifi host sends S7 PLC STOP", "fault:guest-s7-stop-request", (
        _f("plc.unauthorized-program-change", P.S7.ip, P.VISITOR.ip),
        _f("zerotrust.unauthenticated-control", P.S7.ip, P.VISITOR.ip)), needs="s7comm"),
    Fault("guest-wifi host reaches the control zone", "fault:guest-s7-stop", (
        _f("segmentation.it-ot-bridge", P.VISITOR.ip, P.S7.ip),
        _f("segmentation.zone-violation", P.VISITOR.ip, P.S7.ip))),
    Fault(f"MQTT CONNECT {P.MQTT_DEFAULT_USER}/{P.MQTT_DEFAULT_PASSWORD} in clear on 1883",
          "fault:mqtt-default-cleartext", (
              _f("credentials.default", P.BROKER.ip, P.SENSOR_31.ip),
              _f("credentials.cleartext", P.BROKER.ip, P.SENSOR_31.ip),
              _f("crypto.cleartext-telemetry", P.SENSOR_31.ip, P.BROKER.ip))),
    Fault("Telnet login on the gateway", "fault:telnet-login", (
        _f("credentials.cleartext", P.GATEWAY.ip, P.EWS.ip),
        _f("services.insecure", P.GATEWAY.ip))),
    Fault("sensing-zone sensor reaches a public address", "fault:sensor-internet", (
        _f("egress.internet", P.SENSOR_22.ip, P.CLOUD.ip),
        _f("egress.not-allowlisted", P.SENSOR_22.ip, P.CLOUD.ip))),
    Fault("HMI web page: TLS 1.0, expired self-signed certificate", "fault:hmi-weak-tls", (
        _f("crypto.weak-tls", P.HMI.ip),)),
    Fault(f"SNMPv2c community '{P.SNMP_COMMUNITY}'", "fault:snmp-public", (
        _f("credentials.default", P.GATEWAY.ip, P.HMI.ip),
        _f("credentials.cleartext", P.GATEWAY.ip, P.HMI.ip),
        _f("services.insecure", P.GATEWAY.ip))),
    Fault("sensor on the control VLAN", "fault:sensor-on-control-vlan", (
        _f("segmentation.vlan-mixing", P.MISPLACED.ip),)),       # the finding names it (and more)
    Fault("device not in the declared inventory", "fault:unknown-device", (
        _f("inventory.unknown-asset", P.ROGUE_PI.ip),)),
)

# Findings that follow from the design by the check definitions (not deliberate faults).
BY_DEFINITION = (
    _f("services.insecure", P.GATEWAY.ip),                       # its HTTP status page (tcp/80)
    _f("crypto.cleartext-telemetry", P.EWS.ip, P.GATEWAY.ip),    # that page is gateway data over HTTP
    # the site file declares no SBOMs (and attests no SBOM clause in procurement)
    _f("sbom.missing", P.M340.ip), _f("sbom.missing", P.S7.ip), _f("sbom.missing", P.ENBT.ip),
    _f("sbom.missing", P.GATEWAY.ip),
)
# With vulnerability intelligence loaded (CSAF + KEV), vuln.advisory is expected for the M340
# (BMX P34 2020 v3.10), the S7-300 (6ES7 315-2EH14-0AB0 V3.2.6), the 1756-ENBT/A (4.3) and
# possibly the SCALANCE X208 (FW 4.03) and the MGate MB3180 (2.2); which ones depends on the
# advisories imported, so they are not listed here.

# (check ID, an asset that no failing finding of that check may name): the traffic that must pass.
MUST_NOT_FAIL = (
    ("plc.unauthorized-write", P.EWS.ip),                 # Modbus FC16/FC6, S7 write, CIP Write Tag
    ("plc.unauthorized-program-change", P.EWS.ip),        # S7 download of FC 12, warm restart
    ("plc.unauthorized-write", P.HMI.ip),                 # the HMI only reads
    ("crypto.weak-tls", P.BROKER.ip),                     # TLS 1.2, ECDHE, CA-issued, valid
    ("egress.not-allowlisted", P.BROKER.ip),              # the sensing zone's one allowed destination
    ("segmentation.zone-violation", P.BROKER.ip),         # sensing -> dmz tcp/8883, tcp/1883 conduit
    ("segmentation.zone-violation", P.GATEWAY.ip),        # control -> sensing snmp, tcp/23, tcp/80
    ("segmentation.it-ot-bridge", P.BROKER.ip),
    ("zerotrust.unauthenticated-control", P.EWS.ip),      # inside the control zone
    ("zerotrust.unauthenticated-control", P.HMI.ip),
    ("inventory.unknown-asset", P.CLOUD.ip),              # external addresses are not assets
    ("plc.change-outside-window", P.EWS.ip),              # Sunday 02:30, inside the window
)
