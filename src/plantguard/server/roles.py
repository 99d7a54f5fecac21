"""Roles and permissions of the central server, declared once. Human roles are ordered (each
includes the ones before it); the sensor role stands apart: it pushes and renews, never reads.
Every route names one permission of PERMISSIONS, or is in PUBLIC with the reason it needs none."""
from __future__ import annotations

from dataclasses import dataclass

ROLES = ("viewer", "analyst", "engineer", "admin")
SENSOR = "sensor"
ALL_ROLES = (*ROLES, SENSOR)


@dataclass(frozen=True)
class Permission:
    name: str
    role: str            # the least role that holds it
    description: str


def _declare(*perms: Permission) -> dict[str, Permission]:
    return {p.name: p for p in perms}


PERMISSIONS: dict[str, Permission] = _declare(
    Permission("session:self", "viewer", "see who the credential is, end one's own session"),
    Permission("sites:read", "viewer", "list the sites and their summaries"),
    Permission("sensors:read", "viewer", "list the sensors, their health and last contact"),
    Permission("assets:read", "viewer", "read assets and their history"),
    Permission("flows:read", "viewer", "read flow summaries"),
    Permission("findings:read", "viewer", "read findings"),
    Permission("alerts:read", "viewer", "read alerts"),
    Permission("baselines:read", "viewer", "read baselines and their changes"),
    Permission("runs:read", "viewer", "read the runs sensors pushed"),
    Permission("changes:read", "viewer", "read the PLC change timeline and the change tickets"),
    Permission("alerts:ack", "analyst", "acknowledge an alert"),
    Permission("alerts:state", "analyst", "change an alert's state (open, acknowledged, closed, risk-accepted with a reason), assign it"),
    Permission("baselines:accept", "engineer", "accept a baseline change as the new normal"),
    Permission("changes:write", "engineer", "record planned changes"),
    Permission("sensors:manage", "admin", "revoke, rename or re-site sensors"),
    Permission("tokens:manage", "admin", "create and revoke API and enrolment tokens"),
    Permission("users:manage", "admin", "create, disable and re-role users"),
    Permission("audit:read", "admin", "read and verify the audit log"),
    Permission("ingest:push", SENSOR, "push envelopes from a sensor"),
    Permission("sensor:renew", SENSOR, "renew the sensor's own client certificate"),
)

PUBLIC: dict[str, str] = {
    "/api/v1/health": "liveness probe: says only that the server answers",
    "/api/v1/enrol": "a sensor has no credential yet: the one-time enrolment token is in the body",
    "/api/v1/bootstrap": "the first admin has no credential yet: the one-time secret is in the body",
    "/api/v1/login": "the password in the body is the credential",
    "/openapi.json": "the published API description holds no data",
    "/login": "the console's log-in form: the password in the body is the credential",
    "/static/console.css": "the console's stylesheet holds no data",
}


def allows(role: str, permission: str) -> bool:
    """Whether `role` holds `permission`: a sensor only its own permissions, a human role those
    of its rank and below (admin every human one). Unknown roles and permissions hold nothing."""
    perm = PERMISSIONS.get(permission)
    if perm is None:
        return False
    if role == SENSOR or perm.role == SENSOR:
        return role == perm.role
    if role not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(perm.role)
