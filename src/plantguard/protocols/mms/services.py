"""ISO 9506 (MMS) numbers: the confirmed services by their context tag in ConfirmedServiceRequest
/ Response (the numbers tshark's mms dissector uses), the operation category each falls in
(model.OP_CATEGORIES), the PDU choices of MMSpdu, and the error classes and codes of ServiceError
and RejectPDU.

Categories, from a defender's view: services that read data, names, attributes, status,
identity or upload a domain are reads; writing variables and defining or deleting variable lists
are writes; domain download, load and delete and file writes are program changes; program
invocation start / stop / resume / reset / kill / create / delete and taking or giving up control
are control (the change timeline's mode changes); event and journal definitions are config."""
from __future__ import annotations

R, W, P, C, CFG, F = "read", "write", "program", "control", "config", "file"

# ConfirmedServiceRequest choice [n] -> (name, category)
SERVICES: dict[int, tuple[str, str]] = {
    0: ("status", R), 1: ("getNameList", R), 2: ("identify", R), 3: ("rename", W), 4: ("read", R),
    5: ("write", W), 6: ("getVariableAccessAttributes", R), 7: ("defineNamedVariable", W),
    8: ("defineScatteredAccess", W), 9: ("getScatteredAccessAttributes", R), 10: ("deleteVariableAccess", W),
    11: ("defineNamedVariableList", W), 12: ("getNamedVariableListAttributes", R),
    13: ("deleteNamedVariableList", W), 14: ("defineNamedType", W), 15: ("getNamedTypeAttributes", R),
    16: ("deleteNamedType", W), 17: ("input", R), 18: ("output", W), 19: ("takeControl", C),
    20: ("relinquishControl", C), 21: ("defineSemaphore", CFG), 22: ("deleteSemaphore", CFG),
    23: ("reportSemaphoreStatus", R), 24: ("reportPoolSemaphoreStatus", R), 25: ("reportSemaphoreEntryStatus", R),
    26: ("initiateDownloadSequence", P), 27: ("downloadSegment", P), 28: ("terminateDownloadSequence", P),
    29: ("initiateUploadSequence", R), 30: ("uploadSegment", R), 31: ("terminateUploadSequence", R),
    32: ("requestDomainDownload", P), 33: ("requestDomainUpload", R), 34: ("loadDomainContent", P),
    35: ("storeDomainContent", R), 36: ("deleteDomain", P), 37: ("getDomainAttributes", R),
    38: ("createProgramInvocation", C), 39: ("deleteProgramInvocation", C), 40: ("start", C), 41: ("stop", C),
    42: ("resume", C), 43: ("reset", C), 44: ("kill", C), 45: ("getProgramInvocationAttributes", R),
    46: ("obtainFile", P), 47: ("defineEventCondition", CFG), 48: ("deleteEventCondition", CFG),
    49: ("getEventConditionAttributes", R), 50: ("reportEventConditionStatus", R),
    51: ("alterEventConditionMonitoring", CFG), 52: ("triggerEvent", W), 53: ("defineEventAction", CFG),
    54: ("deleteEventAction", CFG), 55: ("getEventActionAttributes", R), 56: ("reportEventActionStatus", R),
    57: ("defineEventEnrollment", CFG), 58: ("deleteEventEnrollment", CFG), 59: ("alterEventEnrollment", CFG),
    60: ("reportEventEnrollmentStatus", R), 61: ("getEventEnrollmentAttributes", R),
    62: ("acknowledgeEventNotification", W), 63: ("getAlarmSummary", R), 64: ("getAlarmEnrollmentSummary", R),
    65: ("readJournal", R), 66: ("writeJournal", W), 67: ("initializeJournal", W), 68: ("reportJournalStatus", R),
    69: ("createJournal", CFG), 70: ("deleteJournal", CFG), 71: ("getCapabilityList", R), 72: ("fileOpen", F),
    73: ("fileRead", F), 74: ("fileClose", F), 75: ("fileRename", P), 76: ("fileDelete", P),
    77: ("fileDirectory", F),
}
WRITE, READ, IDENTIFY = 5, 4, 2

# MMSpdu choice [n] -> name (as tshark names them)
PDUS = {0: "confirmed-RequestPDU", 1: "confirmed-ResponsePDU", 2: "confirmed-ErrorPDU", 3: "unconfirmed-PDU",
        4: "rejectPDU", 5: "cancel-RequestPDU", 6: "cancel-ResponsePDU", 7: "cancel-ErrorPDU",
        8: "initiate-RequestPDU", 9: "initiate-ResponsePDU", 10: "initiate-ErrorPDU", 11: "conclude-RequestPDU",
        12: "conclude-ResponsePDU", 13: "conclude-ErrorPDU"}
CONFIRMED_REQUEST, CONFIRMED_RESPONSE, CONFIRMED_ERROR, UNCONFIRMED, REJECT = 0, 1, 2, 3, 4
CANCEL_REQUEST, CANCEL_RESPONSE, CANCEL_ERROR = 5, 6, 7
INITIATE_REQUEST, INITIATE_RESPONSE, INITIATE_ERROR = 8, 9, 10
CONCLUDE_REQUEST, CONCLUDE_RESPONSE, CONCLUDE_ERROR = 11, 12, 13
ERROR_PDUS = frozenset({CONFIRMED_ERROR, CANCEL_ERROR, INITIATE_ERROR, CONCLUDE_ERROR})

UNCONFIRMED_SERVICES = {0: "informationReport", 1: "unsolicitedStatus", 2: "eventNotification"}

# ServiceError errorClass [n] -> (name, {code: meaning})
ERROR_CLASSES: dict[int, tuple[str, dict[int, str]]] = {
    0: ("vmd-state", {0: "other", 1: "vmd-state-conflict", 2: "vmd-operational-problem",
                      3: "domain-transfer-problem", 4: "state-machine-id-invalid"}),
    1: ("application-reference", {0: "other", 1: "application-unreachable", 2: "connection-lost",
                                  3: "application-reference-invalid", 4: "context-unsupported"}),
    2: ("definition", {0: "other", 1: "object-undefined", 2: "invalid-address", 3: "type-unsupported",
                       4: "type-inconsistent", 5: "object-exists", 6: "object-attribute-inconsistent"}),
    3: ("resource", {0: "other", 1: "memory-unavailable", 2: "processor-resource-unavailable",
                     3: "mass-storage-unavailable", 4: "capability-unavailable", 5: "capability-unknown"}),
    4: ("service", {0: "other", 1: "primitives-out-of-sequence", 2: "object-state-conflict", 3: "pdu-size",
                    4: "continuation-invalid", 5: "object-constraint-conflict"}),
    5: ("service-preempt", {0: "other", 1: "timeout", 2: "deadlock", 3: "cancel"}),
    6: ("time-resolution", {0: "other", 1: "unsupportable-time-resolution"}),
    7: ("access", {0: "other", 1: "object-access-unsupported", 2: "object-non-existent",
                   3: "object-access-denied", 4: "object-invalidated"}),
    8: ("initiate", {0: "other", 1: "version-incompatible", 2: "max-segment-insufficient",
                     3: "max-services-outstanding-calling-insufficient",
                     4: "max-services-outstanding-called-insufficient", 5: "service-CBB-insufficient",
                     6: "parameter-CBB-insufficient", 7: "nesting-level-insufficient"}),
    9: ("conclude", {0: "other", 1: "further-communication-required"}),
    10: ("cancel", {0: "other", 1: "invoke-id-unknown", 2: "cancel-not-possible"}),
    11: ("file", {0: "other", 1: "filename-ambiguous", 2: "file-busy", 3: "filename-syntax-error",
                  4: "content-type-invalid", 5: "position-invalid", 6: "file-access-denied",
                  7: "file-non-existent", 8: "duplicate-filename", 9: "insufficient-space-in-filestore"}),
    12: ("others", {}),
}

# RejectPDU rejectReason [n] -> (what was rejected, {code: meaning})
REJECT_REASONS: dict[int, tuple[str, dict[int, str]]] = {
    1: ("confirmed-requestPDU", {0: "other", 1: "unrecognized-service", 2: "unrecognized-modifier",
                                 3: "invalid-invokeID", 4: "invalid-argument", 5: "invalid-modifier",
                                 6: "max-serv-outstanding-exceeded", 8: "max-recursion-exceeded",
                                 9: "value-out-of-range"}),
    2: ("confirmed-responsePDU", {0: "other", 1: "unrecognized-service", 2: "invalid-invokeID",
                                  3: "invalid-result", 5: "max-recursion-exceeded", 6: "value-out-of-range"}),
    3: ("confirmed-errorPDU", {0: "other", 1: "unrecognized-service", 2: "invalid-invokeID",
                               3: "invalid-serviceError", 4: "value-out-of-range"}),
    4: ("unconfirmedPDU", {0: "other", 1: "unrecognized-service", 2: "invalid-argument",
                           3: "max-recursion-exceeded", 4: "value-out-of-range"}),
    5: ("pdu-error", {0: "unknown-pdu-type", 1: "invalid-pdu", 2: "illegal-acse-mapping"}),
    6: ("cancel-requestPDU", {0: "other", 1: "invalid-invokeID"}),
    7: ("cancel-responsePDU", {0: "other", 1: "invalid-invokeID"}),
    8: ("cancel-errorPDU", {0: "other", 1: "invalid-invokeID", 2: "invalid-serviceError",
                            3: "value-out-of-range"}),
    9: ("conclude-requestPDU", {0: "other", 1: "invalid-argument"}),
    10: ("conclude-responsePDU", {0: "other", 1: "invalid-result"}),
    11: ("conclude-errorPDU", {0: "other", 1: "invalid-serviceError", 2: "value-out-of-range"}),
}

# IEC 61850-8-1 maps a control (Operate, Select-before-operate, Cancel) to a write of the
# control object's CO functional constraint structure: "CSWI1$CO$Pos$Oper"
CONTROL_SUFFIXES = ("$Oper", "$SBOw", "$SBO", "$Cancel")


def service_name(code: int) -> str:
    entry = SERVICES.get(code)
    return entry[0] if entry else f"service {code}"


def is_control_variable(item: str) -> bool:
    return "$CO$" in item or item.endswith(CONTROL_SUFFIXES) or item in ("Oper", "SBOw", "Cancel")
