"""An asset's identity and where each part of it came from (the identity rules of
inventory/build.py):
- the first non-empty value of each identity key wins (the earliest, most direct statement); an
  identity read through the device (a CIP route to a module in its chassis, an EtherCAT slave
  behind its master) is one of its modules, and what is read of one route a field at a time
  completes that module's entry;
- every identity key records where it came from (`identity_sources`): the protocol, capture and
  frame of the observation that first stated it, or what it was derived from (a product from a
  model, ...), the fingerprint that concluded it, or the site file;
- besides the first value of each identity key, an asset keeps every distinct User-Agent it sent,
  server banner it gave, TLS server name it was asked for and certificate it presented, MQTT
  client id it connected with, HTTP Host name and OPC UA endpoint URL it was reached by: up to
  SEEN_CAP of each with how often and where first (`Asset.seen`, `tally`); likewise every
  distinct OPC UA application (URI, product URI, name, client / server and port) at its
  address, and the named BACnet objects it serves (up to BACNET_OBJECTS_CAP);
- what a BACnet router forwarded from a device behind it is that device's identity, kept in the
  router's identity["remote_devices"] (one entry per network and MAC), not the router's own."""
from __future__ import annotations

from plantguard.inventory.asset import Asset
from plantguard.knowledge.families import identity_family

# identity keys that say how the identity was put together, not what the device is
META_KEYS = frozenset({"sources", "fingerprints", "field_sources"})
# identity keys of an observation that are lists kept elsewhere (Asset.seen), not identity values
LISTED_KEYS = frozenset({"objects"})
MAX_REMOTE_DEVICES = 64    # devices behind a BACnet router kept per router


def merge_identity(a: Asset, proto: str, data: dict, obs=None) -> None:
    """First non-empty value wins per key (the earliest, most direct statement); record sources
    (the protocol in identity["sources"]; per key, the protocol, capture and frame of `obs`, the
    observation that stated it, in identity_sources). An identity read through the device (a
    CIP route to a module in its chassis) describes that module, not the device: it is kept in
    the device's list of modules."""
    if data.get("route"):
        mods = a.identity.setdefault("modules", [])
        entry = {k: v for k, v in data.items() if v not in (None, "", [], {}) and k != "role_hint"}
        same = _module_to_complete(mods, entry)
        if same is not None:
            for k, v in entry.items():
                same.setdefault(k, v)
        elif entry not in mods and len(mods) < 64:
            mods.append(entry)
            a.identity_sources.setdefault("modules", stated(proto, obs))
        return
    for key, val in data.items():
        if key == "role_hint" or key in META_KEYS or key in LISTED_KEYS or val in (None, "", [], {}):
            continue
        if key not in a.identity:
            a.identity[key] = val
            a.identity_sources[key] = stated(proto, obs)
    _note_source(a, proto)


def _module_to_complete(mods: list, entry: dict) -> dict | None:
    """The module entry `entry` completes: the one of the same route (a route names one module;
    an EtherCAT master reads a slave's vendor id, product code, revision and serial in separate
    datagrams, one observation each). Its first value of each key wins."""
    for m in mods:
        if m.get("route") == entry["route"]:
            return m
    return None


def inferred(a: Asset, key: str, value, obs, reason: str) -> None:
    """identity[key] is `value`, inferred from what the device did in `obs` (not what it said),
    with the reason kept in identity_sources."""
    a.identity[key] = value
    a.identity_sources[key] = {**stated(obs.proto, obs), "via": "inferred", "reason": reason}
    _note_source(a, obs.proto)


def _note_source(a: Asset, proto: str) -> None:
    srcs = a.identity.setdefault("sources", [])
    if proto not in srcs:
        srcs.append(proto)


def tally(a: Asset, name: str, value: str, o, port: int | None = None) -> None:
    """One more sighting of `value` in the asset's list `name` (bounded, counted)."""
    entry = {"value": value, "proto": o.proto, "capture": o.capture, "frame": o.frame}
    if port is not None:
        entry["port"] = port
    a.seen[name].add(value if port is None else (value, port), entry, o.count)


def stated(proto: str, obs) -> dict:
    return {"via": "observation", "proto": proto, "capture": getattr(obs, "capture", None),
            "frame": getattr(obs, "frame", None)}


def derived(a: Asset, key: str, source_key: str) -> None:
    """identity[key] was derived from identity[source_key]: its source is that key's, so marked."""
    src = a.identity_sources.get(source_key) or {}
    a.identity_sources[key] = {"via": "derived", "derived_from": source_key,
                               **{k: src[k] for k in ("proto", "capture", "frame") if src.get(k) is not None}}


def lend_field_sources(a: Asset) -> bool:
    """The fingerprints read which protocol stated each identity field from
    identity["field_sources"] (docs/inventory-accuracy.md, "field provenance"); the contract
    carries it as Asset.identity_sources, so it is only lent to them, for infer_role."""
    if "field_sources" in a.identity:
        return False
    a.identity["field_sources"] = {k: v["proto"] for k, v in a.identity_sources.items() if v.get("proto")}
    return True


def return_field_sources(a: Asset, lent: bool) -> None:
    """Take the lent field_sources back, and record the source of what the fingerprints added
    (identity["fingerprints"]: key -> fingerprint id)."""
    if lent:
        a.identity.pop("field_sources", None)
    for key, fp in (a.identity.get("fingerprints") or {}).items():
        if key in a.identity and key not in a.identity_sources:
            a.identity_sources[key] = {"via": "fingerprint", "fingerprint": str(fp)}


def name_the_product(a: Asset) -> None:
    """Some protocols only give a model or a textual product code (Modbus 43/14 object 1): use it
    as the product name, so reports and advisory matching have one."""
    ident = a.identity
    if ident.get("product"):
        return
    for key in ("model", "product_code"):
        val = ident.get(key)
        if isinstance(val, str) and val.strip() and not val.strip().isdigit():
            ident["product"] = val.strip()
            derived(a, "product", key)
            return


def name_the_family(a: Asset) -> None:
    """The product line, from the order / catalogue number or the product name the device gave
    ("SIMATIC S7-300" from 6ES7 315-..., "CompactLogix 5370" from 1769-L33ER)."""
    if a.identity.get("family"):
        return
    found = identity_family(a.identity)
    if found:
        a.identity["family"], key = found
        derived(a, "family", key)


def name_from_site(a: Asset) -> None:
    """A device that announced no name of its own takes the name the site file gives it."""
    name = (a.declared or {}).get("name")
    if name and not a.identity.get("name"):
        a.identity["name"] = name
        a.identity_sources["name"] = {"via": "site file"}
        srcs = a.identity.setdefault("sources", [])
        if "site file" not in srcs:
            srcs.append("site file")


def record_identity(a: Asset, o) -> None:
    """An identity observation: its keys merged into the asset's identity (or, for a device
    behind a BACnet router, into the router's list of remote devices), and the User-Agent, MQTT
    client id, OPC UA endpoints and application, and BACnet objects it gave tallied."""
    d = o.data
    if d.get("bacnet_route"):
        record_remote_device(a, o)
    elif any(k not in LISTED_KEYS for k in d):
        merge_identity(a, o.proto, d, o)
    for obj in d.get("objects") or ():
        if isinstance(obj, dict) and obj.get("name"):
            record_object(a, obj, o, d.get("bacnet_route"))
    if o.proto == "opcua" and (d.get("application_uri") or d.get("product_uri")):
        record_application(a, o)
    if d.get("user_agent"):
        tally(a, "user_agents", str(d["user_agent"]), o)
    if d.get("mqtt_client_id"):
        tally(a, "mqtt_client_ids", str(d["mqtt_client_id"]), o)
    for ep in d.get("endpoints") or ():
        if isinstance(ep, dict) and ep.get("url"):
            tally(a, "opcua_endpoints", str(ep["url"]), o, port=o.subject_port or None)


def record_remote_device(a: Asset, o) -> None:
    """What a BACnet router forwarded from a device behind it (NPDU source network and
    address): that device's identity, one entry per route in the router's
    identity["remote_devices"] (first value per key wins there too; MAX_REMOTE_DEVICES at most,
    the others counted in identity["remote_devices_dropped"]). The router keeps its own identity."""
    route = o.data["bacnet_route"]
    devices = a.identity.setdefault("remote_devices", [])
    entry = next((e for e in devices if e.get("bacnet_route") == route), None)
    if entry is None:
        if len(devices) >= MAX_REMOTE_DEVICES:
            a.identity["remote_devices_dropped"] = a.identity.get("remote_devices_dropped", 0) + 1
            return
        entry = {"bacnet_route": route}
        devices.append(entry)
        a.identity_sources.setdefault("remote_devices", stated(o.proto, o))
    for key, val in o.data.items():
        if key in ("role_hint", "objects") or key in META_KEYS or val in (None, "", [], {}):
            continue
        entry.setdefault(key, val)


def record_object(a: Asset, obj: dict, o, route: str | None = None) -> None:
    """A named BACnet object (point) the device serves, in its bounded list (BACNET_OBJECTS_CAP,
    the rest counted in distinct_values)."""
    entry = {k: obj.get(k) for k in ("type", "instance", "name", "device_instance")}
    entry.update(route=route, proto=o.proto, capture=o.capture, frame=o.frame)
    a.seen["bacnet_objects"].add((route, obj.get("type"), obj.get("instance"), obj.get("name")), entry, o.count)


def record_application(a: Asset, o) -> None:
    """An OPC UA application (ApplicationDescription) at the asset's address: a server (it offered
    endpoints, or it spoke from one of the asset's service ports; with that port) or a client
    (CreateSession). Several applications can share one address (client and server on one host,
    two servers on two ports): each is kept, while identity keeps the first value per key."""
    d = o.data
    server = bool(d.get("endpoints")) or (o.l4, o.subject_port) in a.services
    port = o.subject_port or None if server else None
    entry = {"application_uri": d.get("application_uri"), "product_uri": d.get("product_uri"),
             "name": d.get("product"), "role": "server" if server else "client", "port": port,
             "proto": o.proto, "capture": o.capture, "frame": o.frame}
    key = (entry["application_uri"], entry["product_uri"], entry["name"], entry["role"], port)
    a.seen["opcua_applications"].add(key, entry, o.count)


def record_certificate(a: Asset, o) -> None:
    """A certificate the asset presented, in its bounded list (one entry per certificate: by its
    fingerprint, else its subject, issuer and serial)."""
    d = o.data
    if d.get("unparsed"):
        return
    key = d.get("fingerprint") or (d.get("subject"), d.get("issuer"), d.get("serial"))
    entry = {k: d.get(k) for k in ("subject", "issuer", "not_before", "not_after", "serial", "fingerprint",
                                   "self_signed", "position")}
    entry.update(port=o.subject_port or None, proto=o.proto, capture=o.capture, frame=o.frame)
    a.seen["certificates"].add(key, entry, o.count)
