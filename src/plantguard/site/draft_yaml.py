"""The drafted site file written out (`plantguard site init`): a Draft (site/draft.py) as YAML with
comments for the person who reviews it, what each entry rests on and what is held back.

The text is emitted here (PyYAML cannot write comments), plainly and deterministically: the same
draft gives the same bytes. Every string that came from the wire is reduced to printable ASCII
and quoted; the result loads with `plantguard.site.load_site`."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from plantguard.site.draft import Draft, DraftEntry

REVIEW = "observed, review before use"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def clean(text: str, limit: int = 80) -> str:
    """Printable ASCII on one line (what came from the wire or a file name)."""
    s = "".join(ch if " " <= ch <= "~" else " " for ch in str(text))
    return " ".join(s.split())[:limit]


def quote(text: str, limit: int = 80) -> str:
    """A double-quoted YAML scalar of the cleaned text."""
    s = clean(text, limit)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def comment(text: str, indent: str = "", width: int = 99) -> list[str]:
    """Comment lines (wrapped) of the cleaned text."""
    words = clean(text, 2000).split()
    lines, cur = [], ""
    for w in words:
        if cur and len(indent) + 2 + len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    if cur:
        lines.append(cur)
    return [f"{indent}# {ln}" for ln in lines]


def asset_mapping(ip: str | None, mac: str | None, name, role: str | None, vendor, product) -> str:
    """One device of the declared inventory as a flow mapping: what is known of it (a name,
    vendor or product only when text is left of it once cleaned)."""
    parts = []
    if ip:
        parts.append(f"ip: {ip}")
    if mac:
        parts.append(f'mac: "{mac}"')
    if isinstance(name, str) and clean(name):
        parts.append(f"name: {quote(name)}")
    if role:
        parts.append(f"role: {role}")
    if isinstance(vendor, str) and clean(vendor):
        parts.append(f"vendor: {quote(vendor)}")
    if isinstance(product, str) and clean(product):
        parts.append(f"product: {quote(product)}")
    return "{" + ", ".join(parts) + "}"


HEADER = (
    "plantguard site file DRAFT, written by `plantguard site init` from the traffic of {captures}: "
    "{devices}, {flows}. Everything here is {review}: it says what the captures show, not what is "
    "intended.")
LIMITS = (
    "What a draft cannot know: which conduits are intended. Every zone-to-zone flow seen is "
    "written as a conduit, so traffic that should not happen at all (a rogue host in one OT zone "
    "reaching another) is allowed below until you remove it; `assess` with this file will not "
    "report it as a violation. Only what the zone model itself forbids is written commented out "
    "(HELD BACK), so `assess` still reports it: conduits between an office zone and a control or "
    "sensing zone, OT traffic to public addresses, engineering stations outside OT zones or that "
    "only started/stopped a controller. Networks are the /24 (IPv6 /64) around the hosts seen, as "
    "captures do not carry masks; an office zone may really be a guest network (kind: guest); "
    "untagged subnets of one kind are drafted as one zone (split them if they are separated).")
NOT_DRAFTED = (
    "Not drafted (traffic cannot show them; see examples/site.yaml): timezone, "
    "maintenance_windows, attestations, sboms, remote_access, criticality of assets. "
    "Check the file with `plantguard site check FILE`.")


def render(d: Draft) -> str:
    """The draft as site-file text (YAML with comments); same draft, same bytes."""
    L: list[str] = []
    for section in (_head_lines, _zone_lines, _conduit_lines, _egress_lines, _station_lines, _inventory_lines):
        L += section(d)
    return "\n".join(L) + "\n"


def _head_lines(d: Draft) -> list[str]:
    """What the file is and what a draft cannot know; the site's name and size."""
    caps = [c.rsplit("/", 1)[-1] for c in d.captures]
    cap_text = (f"{plural(len(caps), 'capture')} ({', '.join(caps[:3])}{' ...' if len(caps) > 3 else ''})"
                if caps else "no capture")
    L: list[str] = []
    L += comment(HEADER.format(captures=cap_text, devices=plural(d.devices, "plant address", "plant addresses"),
                               flows=plural(d.flows, "flow"), review=REVIEW))
    L += ["#"] + comment(LIMITS) + ["#"] + comment(NOT_DRAFTED)
    L.append(f"site: {quote(d.name, 200)}")
    L.append(f"organization_size: {d.organization_size}"
             f"{' ' * max(1, 14 - len(d.organization_size))}# a guess from {d.devices} plant addresses: "
             "small | medium | large; it shapes the roadmap")
    L.append("")
    return L


def _zone_lines(d: Draft) -> list[str]:
    L = comment(f"Zones ({REVIEW}): the subnets seen, by VLAN; kinds guessed from the roles inside.")
    if d.zones:
        L.append("zones:")
        for z in d.zones:
            where = f"VLAN {', '.join(map(str, z.vlans))}" if z.vlans else "untagged"
            L += comment(f"{z.name}: {where}, {plural(len(z.hosts), 'host')}; kind {z.kind} from {z.why}", "  ")
            nets = ", ".join(str(n) for n in z.networks)
            vl = f", vlans: [{', '.join(map(str, z.vlans))}]" if z.vlans else ""
            line = f"  - {{name: {z.name}, kind: {z.kind}, networks: [{nets}]{vl}}}"
            if len(line) <= 100:
                L.append(line)
                continue
            L += [f"  - name: {z.name}", f"    kind: {z.kind}"]
            if z.vlans:
                L.append(f"    vlans: [{', '.join(map(str, z.vlans))}]")
            L.append("    networks:")
            L += [f"      - {n}" for n in z.networks]
    else:
        L.append("zones: []                    # no private address was seen")
    for line in d.not_zoned:
        L += comment(line)
    L.append("")
    return L


def _conduit_lines(d: Draft) -> list[str]:
    L = comment(f"Conduits ({REVIEW}): every zone-to-zone flow seen, client zone -> server zone. "
                "Remove what is not intended: a draft cannot tell.")
    active = [c for c in d.conduits if not c.held]
    L.append("conduits:" if active or any(c.held for c in d.conduits) else "conduits: []")
    for c in d.conduits:
        note = (f"{c.src} -> {c.dst}: {plural(c.flows, 'flow')}, {plural(c.packets, 'packet')}; "
                f"e.g. {'; '.join(c.examples)}")
        line = f"- {{from: {c.src}, to: {c.dst}, allow: [{', '.join(c.allow)}]}}"
        if c.held:
            L += comment(f"HELD BACK, {c.held} (segmentation.it-ot-bridge); uncomment only if intended. {note}", "  ")
            L.append(f"  # {line}")
        else:
            L += comment(note, "  ")
            L.append(f"  {line}")
    L.append("")
    return L


def _egress_lines(d: Draft) -> list[str]:
    L = comment(f"Egress ({REVIEW}): deny-all outbound for the OT zones, except the destinations "
                "outside the zone they reached.")
    if d.egress:
        L.append("egress:")
        for e in d.egress:
            L.append(f"  - zone: {e.zone}")
            if not e.allow:
                L.append("    allow: []                # nothing outside the zone was reached")
                continue
            L.append("    allow:")
            L += _list_lines(e.allow, "      ")
    else:
        L.append("egress: []                     # no OT zone was drafted")
    L.append("")
    return L


def _station_lines(d: Draft) -> list[str]:
    L = comment(f"Engineering stations ({REVIEW}): the hosts in OT zones that sent program, firmware "
                "or configuration changes to controllers. Writes or run/stop from any other host "
                "will be reported as unauthorised.")
    L.append("engineering_workstations:" if d.stations else "engineering_workstations: []")
    L += _list_lines(d.stations, "  ")
    L.append("")
    return L


def _inventory_lines(d: Draft) -> list[str]:
    L = comment(f"Declared inventory ({REVIEW}), commented out: every device seen, including any "
                "that should not be there. Remove those, add names and criticality, then uncomment "
                "it: devices seen later but not listed are reported (inventory.unknown-asset).")
    if d.assets:
        L.append("# assets:")
        for a in d.assets:
            L.append(f"#   - {a.value}")
    return L


def _list_lines(items: list[DraftEntry], indent: str) -> list[str]:
    """A list's entries, each with its note: the drafted ones, then the held-back ones commented
    out under one line per reason."""
    out = [ln for item in items if not item.held for ln in _entry_lines(item, indent)]
    reasons: dict[str, list] = {}
    for item in items:
        if item.held:
            reasons.setdefault(item.held, []).append(item)
    for reason, held in reasons.items():
        out += comment(f"HELD BACK ({plural(len(held), 'entry', 'entries')}), {reason}; "
                        "uncomment only if intended:", indent)
        for item in held:
            out += _entry_lines(item, indent)
    return out


def _entry_lines(item: DraftEntry, indent: str, width: int = 99) -> list[str]:
    """An entry with its note: on the same line when it fits, else above it; commented out when
    held back."""
    lead = f"{indent}# - " if item.held else f"{indent}- "
    note = clean(item.note, 300)
    line = f"{lead}{item.value}{'':<{max(1, 22 - len(item.value))}}# {note}"
    if len(line) <= width:
        return [line]
    return comment(note, indent) + [f"{lead}{item.value}"]
