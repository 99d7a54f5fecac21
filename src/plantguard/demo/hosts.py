"""Who is on the demo plant: the router, every host with its address, MAC, VLAN and TCP traits,
and the identities the devices disclose (the scenario in plant.py and the tests use them)."""
from __future__ import annotations

import calendar

from plantguard.demo.frames import Host, Router

S, MS = 1_000_000, 1_000
START = calendar.timegm((2024, 4, 14, 2, 30, 0)) * S     # Sunday 02:30 UTC, inside the window
DURATION = 300 * S
LLDP_MAC = "01:80:c2:00:00:0e"

ROUTER = Router("00:1b:54:3a:10:01", {110: "10.10.1.1", 120: "10.10.2.1", 20: "10.20.0.1",
                                      30: "10.30.0.1", 40: "10.40.0.1"})

# control (VLAN 110)
M340 = Host("plc-m340", "10.10.1.10", "00:80:f4:0b:3a:21", 110, 64, 4096)
S7 = Host("plc-s7-315", "10.10.1.11", "00:1b:1b:5c:8e:42", 110, 30, 8192)
ENBT = Host("plc-1756-enbt", "10.10.1.12", "00:00:bc:4d:7a:19", 110, 64, 4096)
HMI = Host("hmi-line1", "10.10.1.20", "00:d0:c9:e2:51:07", 110, 128, 64240)
EWS = Host("ews-01", "10.10.1.50", "d8:9e:f3:12:6b:55", 110, 128, 64240)
SWITCH = Host("sw-ctrl-01", "10.10.1.2", "00:0e:8c:a1:22:30", 110, 64)
ROGUE_PI = Host("unknown-raspberrypi", "10.10.1.77", "b8:27:eb:4f:19:c3", 110, 64, 64240)
# sensing (VLAN 120); one sensor is cabled into a control-VLAN port
GATEWAY = Host("gw-mgate", "10.10.2.5", "00:90:e8:6c:2d:11", 120, 64, 5840)
SENSOR_21 = Host("wise-4012-21", "10.10.2.21", "00:d0:c9:a1:00:21", 120, 64, 5840, 1460)
SENSOR_22 = Host("wise-4050-22", "10.10.2.22", "00:d0:c9:a1:00:22", 120, 64, 5840, 1460)
SENSOR_23 = Host("iothinx-23", "10.10.2.23", "00:90:e8:7e:00:23", 120, 64, 5840, 1460)
SENSOR_31 = Host("vib-sensor-31", "10.10.2.31", "24:0a:c4:3b:8e:31", 120, 64, 5744, 1436)
MISPLACED = Host("wise-4220-45", "10.10.2.45", "00:d0:c9:7a:13:45", 110, 64)
# office (VLAN 20), guest-wifi (VLAN 30), dmz (VLAN 40), the internet
LAPTOP = Host("office-lt-07", "10.20.0.77", "3c:d9:2b:71:0e:77", 20, 128, 64240)
DNS_SRV = Host("dc01", "10.20.0.53", "00:14:22:53:00:53", 20, 128, 64240)
VISITOR = Host("visitor-macbook", "10.30.0.66", "f0:18:98:2a:66:0c", 30, 64, 65535)
BROKER = Host("mqtt-broker", "10.40.0.10", "00:14:22:9c:40:10", 40, 64, 64240)
CLOUD = Host("vendor-cloud", "20.50.2.14", ROUTER.mac, 0, 112, 65535)

HOSTS = (M340, S7, ENBT, HMI, EWS, SWITCH, ROGUE_PI, GATEWAY, SENSOR_21, SENSOR_22, SENSOR_23,
         SENSOR_31, MISPLACED, LAPTOP, DNS_SRV, VISITOR, BROKER)

# Identities the devices disclose (tests compare tshark's decode with these).
M340_ID = [(0, "Schneider Electric"), (1, "BMX P34 2020"), (2, "v3.10")]
S7_ORDER, S7_FIRMWARE, S7_SERIAL = "6ES7 315-2EH14-0AB0", (3, 2, 6), "S C-D4TB71352918"
S7_MODULE, S7_PLC_NAME = "CPU 315-2 PN/DP", "PLANT-A-S7-300"
ENBT_NAME, ENBT_REVISION, ENBT_SERIAL = "1756-ENBT/A", (4, 3), 0x0061B3C2
MQTT_DEFAULT_USER, MQTT_DEFAULT_PASSWORD = "admin", "admin"
TELNET_USER, TELNET_PASSWORD = "maint", "Gw7!line3-mb"
SNMP_COMMUNITY = "public"
GATEWAY_SYSDESCR = "Moxa MGate MB3180 Series, Firmware V2.2 Build 18122811"
SWITCH_SYSDESCR = ("Siemens, SIMATIC NET, SCALANCE X208, 6GK5 208-0BA10-2AA3, HW: 6, "
                   "FW: V4.03, SVPL7146218")
CLOUD_SNI = "ingest.wise-paas.com"
