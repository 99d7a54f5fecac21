"""The site's probe allow-list (`probe:` in site.yaml): who answers for the probing, which zones
may be asked in which protocols, the rate cap, and whether the maintenance windows bind. Without
it, `plantguard probe --send` sends nothing."""
from __future__ import annotations

import ipaddress
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

MAX_RATE = 100.0


class AllowEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    zones: list[str] = Field(min_length=1, max_length=200, description="the zones whose devices may be asked")
    protocols: list[str] = Field(min_length=1, max_length=20,
                                 description="probe protocols (enip, modbus, s7, bacnet, snmp, dcp, opcua, http)")
    hosts: list[str] = Field(default_factory=list, max_length=10000,
                             description="only these addresses or networks of those zones (default: all)")

    @field_validator("zones", "protocols", "hosts", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("protocols")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from plantguard.probe.queries import ALIASES, CONTRACT_PROTOCOLS
        names = [p.strip().lower() for p in v]
        unknown = [p for p in names if p not in CONTRACT_PROTOCOLS and p not in ALIASES.values()]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a probe protocol (choose from {', '.join(CONTRACT_PROTOCOLS)})")
        return [ALIASES.get(p, p) for p in names]

    @field_validator("hosts")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for h in v:
            try:
                ipaddress.ip_network(h, strict=False)
            except ValueError:
                raise ValueError(f"{h!r} is not an address or network") from None
        return v


class ProbePolicy(BaseModel):
    """The `probe:` section of a site file."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    owner: str = Field(min_length=1, max_length=200, description="who answers for probing this site")
    rate: float = Field(default=10.0, gt=0, le=MAX_RATE,
                        description="packets per second at most, all devices together (--rate may lower it)")
    windows: Literal["required", "ignored"] = Field(
        default="required", description="required: send only inside a maintenance window of the device's zone "
                                         "(when the site declares windows); ignored: at any time")
    allow: list[AllowEntry] = Field(min_length=1, max_length=1000, description="what may be asked, zone by zone")


class PolicyError(ValueError):
    """A `probe:` section that cannot be used: 'FILE:LINE: probe: field: problem'."""


def load_policy(node, filename: str) -> ProbePolicy:
    """The probe policy of a composed YAML mapping (the site file's `probe:` value)."""
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        raise PolicyError(f"{filename}:{line}: probe: expected a mapping (owner, allow, ...)")
    values = yaml.SafeLoader("").construct_object(node, deep=True)
    try:
        return ProbePolicy.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise PolicyError(f"{filename}:{line}: probe: {where or '?'}: {err['msg']}") from None
