"""BACnet code tables: BVLC functions, network-layer messages, PDU types, confirmed and
unconfirmed services with the category plantguard gives them, enumerations of the services it
reads, the device-object properties that describe a device, and the name tables shipped as data
(vendors; object types, properties, error, reject and abort codes)."""
from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

BVLC_FUNCTIONS = {0x00: "BVLC_Result", 0x01: "Write_Broadcast_Distribution_Table",
                  0x02: "Read_Broadcast_Distribution_Table", 0x03: "Read_Broadcast_Distribution_Table_Ack",
                  0x04: "Forwarded_NPDU", 0x05: "Register_Foreign_Device",
                  0x06: "Read_Foreign_Device_Table", 0x07: "Read_Foreign_Device_Table_Ack",
                  0x08: "Delete_Foreign_Device_Table_Entry", 0x09: "Distribute_Broadcast_to_Network",
                  0x0A: "Original_Unicast_NPDU", 0x0B: "Original_Broadcast_NPDU", 0x0C: "Secure_BVLL"}
NPDU_FUNCTIONS = (0x04, 0x09, 0x0A, 0x0B)
NETWORK_MESSAGES = ["who_is_router_to_network", "i_am_router_to_network", "i_could_be_router_to_network",
                    "reject_message_to_network", "router_busy_to_network", "router_available_to_network",
                    "initialize_routing_table", "initialize_routing_table_ack",
                    "establish_connection_to_network", "disconnect_connection_to_network",
                    "challenge_request", "security_payload", "security_response", "request_key_update",
                    "update_key_set", "update_distribution_key", "request_master_key", "set_master_key",
                    "what_is_network_number", "network_number_is"]
PDU_TYPES = ["CONFIRMED_REQUEST", "UNCONFIRMED_REQUEST", "SIMPLE_ACK", "COMPLEX_ACK",
             "SEGMENT_ACK", "ERROR_PDU", "REJECT_PDU", "ABORT_PDU"]

# Confirmed services: code -> (name, category)
CONFIRMED = {
    0: ("acknowledge_alarm", "write"), 1: ("confirmed_cov_notification", "other"),
    2: ("confirmed_event_notification", "other"), 3: ("get_alarm_summary", "read"),
    4: ("get_enrollment_summary", "read"), 5: ("subscribe_cov", "read"),
    6: ("atomic_read_file", "file"), 7: ("atomic_write_file", "program"),
    8: ("add_list_element", "write"), 9: ("remove_list_element", "write"),
    10: ("create_object", "config"), 11: ("delete_object", "config"),
    12: ("read_property", "read"), 13: ("read_property_conditional", "read"),
    14: ("read_property_multiple", "read"), 15: ("write_property", "write"),
    16: ("write_property_multiple", "write"), 17: ("device_communication_control", "config"),
    18: ("confirmed_private_transfer", "other"), 19: ("confirmed_text_message", "other"),
    20: ("reinitialize_device", "control"), 21: ("vt_open", "other"), 22: ("vt_close", "other"),
    23: ("vt_data", "other"), 24: ("authenticate", "auth"), 25: ("request_key", "auth"),
    26: ("read_range", "read"), 27: ("life_safety_operation", "control"),
    28: ("subscribe_cov_property", "read"), 29: ("get_event_information", "read"),
    30: ("subscribe_cov_property_multiple", "read"), 31: ("confirmed_cov_notification_multiple", "other"),
    32: ("confirmed_audit_notification", "other"), 33: ("audit_log_query", "read"),
}
# Unconfirmed services: code -> (name, category or None when it is an announcement, not a request)
UNCONFIRMED = {
    0: ("i_am", None), 1: ("i_have", None), 2: ("unconfirmed_cov_notification", None),
    3: ("unconfirmed_event_notification", None), 4: ("unconfirmed_private_transfer", "other"),
    5: ("unconfirmed_text_message", "other"), 6: ("time_synchronization", "config"),
    7: ("who_has", "diagnostic"), 8: ("who_is", "diagnostic"), 9: ("utc_time_synchronization", "config"),
    10: ("write_group", "write"), 11: ("unconfirmed_cov_notification_multiple", None),
    12: ("unconfirmed_audit_notification", None), 13: ("who_am_i", "diagnostic"), 14: ("you_are", "config"),
}
SEGMENTATION = {0: "segmented-both", 1: "segmented-transmit", 2: "segmented-receive", 3: "no-segmentation"}
DCC_STATES = {0: "enable", 1: "disable", 2: "disable-initiation"}
REINIT_STATES = {0: "coldstart", 1: "warmstart", 2: "start-backup", 3: "end-backup", 4: "start-restore",
                 5: "end-restore", 6: "abort-restore", 7: "activate-changes"}
MAX_APDU = {0: 50, 1: 128, 2: 206, 3: 480, 4: 1024, 5: 1476}

DEVICE = 8
OBJECT_NAME = 77          # the object-name property
# Device-object property -> identity key
IDENTITY_PROPERTIES = {121: "vendor", 70: "model", 44: "firmware", 12: "software", 77: "name",
                       28: "description", 120: "vendor_id", 372: "serial", 58: "location"}


# --- name tables shipped as data -----------------------------------------------------------

@lru_cache(maxsize=1)
def vendor_names() -> dict[int, str]:
    return {int(r["vendor_id"]): r["name"] for r in _data_rows("bacnet_vendors.csv")}


@lru_cache(maxsize=1)
def _names() -> dict[str, dict[int, str]]:
    out: dict[str, dict[int, str]] = {}
    for r in _data_rows("bacnet_names.csv"):
        out.setdefault(r["kind"], {})[int(r["code"])] = r["name"]
    return out


def name_of(kind: str, code: int | None) -> str:
    if code is None:
        return "-"
    name = _names().get(kind, {}).get(code)
    if name:
        return name
    if kind == "property" and code >= 512:
        return f"Vendor Specific ({code})"
    return f"{kind.replace('_', '-')} {code}"


def _data_rows(filename: str) -> list[dict[str, str]]:
    text = resources.files("plantguard.data").joinpath(filename).read_text(encoding="utf-8")
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("#")))
