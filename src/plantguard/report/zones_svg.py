"""An inline SVG picture of the plant's zones (boxes, placed by Purdue-like level) and the traffic
seen between them (arrows: green when no finding objects, red when a finding reports a violation
between those zones). Every text is escaped: zone names and flow labels may come from captures
(escape is util.sanitize.html: control characters made visible, then escaped)."""
from __future__ import annotations

import ipaddress
import math
from typing import Any

from markupsafe import Markup

from plantguard.report.context import ZONE_KIND_WORDS, as_dict, as_list, num, text
from plantguard.util.sanitize import html as escape

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 200, 70, 80, 100, 30
MAX_EDGES = 40
MAX_PER_ROW = 4
MAX_ZONES = 24
NO_ZONE = "(no zone)"
INTERNET = "internet"
# vertical level of each zone kind: outside world at the top, field devices at the bottom
LEVEL = {"internet": 0, "guest": 1, "it": 1, "dmz": 2, "ot-supervisory": 3, "inferred": 3,
         "ot-control": 4, "ot-safety": 4, "ot-sensing": 5}
FILL = {"internet": "#eceff1", "guest": "#e3f2fd", "it": "#e3f2fd", "dmz": "#fff8e1",
        "ot-supervisory": "#e8f5e9", "ot-control": "#e8f5e9", "ot-safety": "#fce4ec", "ot-sensing": "#f1f8e9"}
OK_COLOUR, BAD_COLOUR = "#2e7d32", "#c62828"
BOUNDARY_CHECK_PREFIXES = ("segmentation.", "egress.", "zerotrust.")


def _zone_table(contract: dict) -> tuple[list[dict], dict[str, str], list[tuple[Any, str]]]:
    zones: dict[str, dict] = {}
    networks: list[tuple[Any, str]] = []
    for z in as_list(contract.get("zones")):
        z = as_dict(z)
        name = text(z.get("name"))
        if not name or name in zones:
            continue
        zones[name] = {"name": name, "kind": text(z.get("kind")) or "inferred",
                       "networks": [text(n) for n in as_list(z.get("networks")) if text(n)], "devices": 0}
        for n in zones[name]["networks"]:
            try:
                networks.append((ipaddress.ip_network(n, strict=False), name))
            except ValueError:
                pass
    ip_zone: dict[str, str] = {}
    for a in as_list(contract.get("assets")):
        a = as_dict(a)
        zone = text(a.get("zone"))
        if not zone:
            continue
        if zone not in zones:
            zones[zone] = {"name": zone, "kind": INTERNET if zone == INTERNET else "inferred", "networks": [], "devices": 0}
        zones[zone]["devices"] += 1
        for ip in [a.get("ip"), *as_list(a.get("ips"))]:
            if text(ip):
                ip_zone[text(ip)] = zone
    return list(zones.values()), ip_zone, networks


def _zone_of(ip: str, ip_zone: dict[str, str], networks: list) -> str:
    if ip in ip_zone:
        return ip_zone[ip]
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return NO_ZONE
    for net, name in networks:
        if addr.version == net.version and addr in net:
            return name
    return INTERNET if addr.is_global else NO_ZONE


def zone_lookup(contract: Any):
    """address -> zone name, by the contract's assets and zone networks (as the picture places them)."""
    _, ip_zone, networks = _zone_table(as_dict(contract))
    return lambda ip: _zone_of(ip, ip_zone, networks)


def _violations(contract: dict, ip_zone: dict[str, str], networks: list) -> set[frozenset]:
    """Zone pairs a failing boundary finding names (its detail, else the zones of its assets)."""
    pairs: set[frozenset] = set()
    for f in as_list(contract.get("findings")):
        f = as_dict(f)
        if f.get("status") != "fail" or not text(f.get("check")).startswith(BOUNDARY_CHECK_PREFIXES):
            continue
        d = as_dict(f.get("detail"))
        if text(d.get("src_zone")) and text(d.get("dst_zone")):
            pairs.add(frozenset((text(d["src_zone"]), text(d["dst_zone"]))))
            continue
        zs = {_zone_of(text(a), ip_zone, networks) for a in as_list(f.get("assets")) if text(a)}
        zs = sorted(zs)
        for i, a in enumerate(zs):
            for b in zs[i + 1:]:
                pairs.add(frozenset((a, b)))
    return pairs


def zone_graph(contract: Any, max_zones: int = MAX_ZONES, max_edges: int = MAX_EDGES) -> dict[str, Any]:
    """Zones, inter-zone edges ({src, dst, label, packets, violation}) and a layout."""
    c = as_dict(contract)
    zones, ip_zone, networks = _zone_table(c)
    known = {z["name"] for z in zones}
    edges: dict[tuple[str, str], dict] = {}
    for fl in as_list(c.get("flows")):
        fl = as_dict(fl)
        src, dst = _zone_of(text(fl.get("src")), ip_zone, networks), _zone_of(text(fl.get("dst")), ip_zone, networks)
        if src == dst:
            continue
        for z in (src, dst):
            if z not in known:
                known.add(z)
                zones.append({"name": z, "kind": INTERNET if z == INTERNET else "unzoned", "networks": [], "devices": 0})
        e = edges.setdefault((src, dst), {"src": src, "dst": dst, "apps": {}, "packets": 0, "flows": 0})
        app = text(fl.get("app")) or f"{text(fl.get('proto'))}/{text(fl.get('port'))}"
        e["apps"][app] = e["apps"].get(app, 0) + num(fl.get("packets"))
        e["packets"] += num(fl.get("packets"))
        e["flows"] += 1
    bad = _violations(c, ip_zone, networks)
    out_edges = []
    for e in edges.values():
        apps = sorted(e["apps"], key=lambda k: -e["apps"][k])
        label = ", ".join(apps[:3]) + (f" +{len(apps) - 3}" if len(apps) > 3 else "")
        out_edges.append({"src": e["src"], "dst": e["dst"], "label": label, "packets": e["packets"],
                          "flows": e["flows"], "violation": frozenset((e["src"], e["dst"])) in bad})
    out_edges.sort(key=lambda e: (not e["violation"], -e["packets"], e["src"], e["dst"]))
    shown = out_edges[:max_edges]
    if len(zones) > max_zones:
        # keep the zones the drawn arrows touch, then the ones with most devices
        touched = {e["src"] for e in shown} | {e["dst"] for e in shown}
        zones = sorted(zones, key=lambda z: (z["name"] not in touched, -z["devices"]))[:max_zones]
        names = {z["name"] for z in zones}
        shown = [e for e in shown if e["src"] in names and e["dst"] in names]
    return {"zones": zones, "edges": shown, "edges_total": len(out_edges), "zones_total": len(known)}


def _layout(zones: list[dict]) -> tuple[dict[str, tuple[float, float]], float, float]:
    """Rows by level (outside world on top, field devices at the bottom), at most MAX_PER_ROW
    boxes a row so the picture stays readable at page width."""
    levels: dict[int, list[dict]] = {}
    for z in zones:
        levels.setdefault(LEVEL.get(z["kind"], 6), []).append(z)
    rows = [lv[i:i + MAX_PER_ROW] for _, lv in sorted(levels.items()) for i in range(0, len(lv), MAX_PER_ROW)]
    width = max(len(r) for r in rows) * (BOX_W + GAP_X) - GAP_X + 2 * MARGIN
    pos = {}
    for row_i, row in enumerate(rows):
        row_w = len(row) * (BOX_W + GAP_X) - GAP_X
        x0 = (width - row_w) / 2
        for i, z in enumerate(row):
            pos[z["name"]] = (x0 + i * (BOX_W + GAP_X), MARGIN + row_i * (BOX_H + GAP_Y))
    height = MARGIN * 2 + len(rows) * (BOX_H + GAP_Y) - GAP_Y
    return pos, width, height


def _border_point(cx, cy, tx, ty):
    """Where the line from a box centre towards (tx, ty) leaves the box."""
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    sx = (BOX_W / 2) / abs(dx) if dx else math.inf
    sy = (BOX_H / 2) / abs(dy) if dy else math.inf
    s = min(sx, sy)
    return cx + dx * s, cy + dy * s


def _cubic(p0, c1, c2, p3, t):
    u = 1 - t
    return (u ** 3 * p0[0] + 3 * u * u * t * c1[0] + 3 * u * t * t * c2[0] + t ** 3 * p3[0],
            u ** 3 * p0[1] + 3 * u * u * t * c1[1] + 3 * u * t * t * c2[1] + t ** 3 * p3[1])


def _in_box(pt, box, pad=6):
    x, y = box
    return x - pad <= pt[0] <= x + BOX_W + pad and y - pad <= pt[1] <= y + BOX_H + pad


class _Router:
    """Straight arrows where the way is clear; otherwise a side channel: the arrow leaves its box
    sideways, runs beside the boxes in between and enters the target from the same side."""

    CHANNELS = tuple((side, bow) for bow in (45, 80, 115, 150, 185, 220) for side in (1, -1))

    def __init__(self, pos: dict[str, tuple[float, float]]):
        self.pos = pos
        self.used: set[tuple[int, int]] = set()
        self.labels: list[tuple[float, float, float, float]] = []
        self.points: list[tuple[float, float]] = []

    def _blocked(self, pts, skip) -> bool:
        return any(_in_box(p, b, pad=12) for n, b in self.pos.items() if n not in skip for p in pts)

    def route(self, src: str, dst: str, offset: float):
        (x1, y1), (x2, y2) = self.pos[src], self.pos[dst]
        c1, c2 = (x1 + BOX_W / 2, y1 + BOX_H / 2), (x2 + BOX_W / 2, y2 + BOX_H / 2)
        length = math.hypot(c2[0] - c1[0], c2[1] - c1[1]) or 1.0
        nx, ny = -(c2[1] - c1[1]) / length * offset, (c2[0] - c1[0]) / length * offset
        line = [(c1[0] + (c2[0] - c1[0]) * t / 80, c1[1] + (c2[1] - c1[1]) * t / 80) for t in range(1, 80)]
        if not self._blocked(line, {src, dst}):
            start = _border_point(*c1, *c2)
            end = _border_point(*c2, *c1)
            start, end = (start[0] + nx, start[1] + ny), (end[0] + nx, end[1] + ny)
            third = ((end[0] - start[0]) / 3, (end[1] - start[1]) / 3)
            geo = (start, (start[0] + third[0], start[1] + third[1]),
                   (end[0] - third[0], end[1] - third[1]), end)
        else:
            geo = None
            for side, bow in [ch for ch in self.CHANNELS if ch not in self.used] + list(self.CHANNELS):
                edge_x1 = x1 + (BOX_W if side > 0 else 0)
                edge_x2 = x2 + (BOX_W if side > 0 else 0)
                start, end = (edge_x1, c1[1] + offset), (edge_x2, c2[1] - offset)
                k1, k2 = (edge_x1 + side * bow * 1.4, start[1]), (edge_x2 + side * bow * 1.4, end[1])
                cand = (start, k1, k2, end)
                if not self._blocked([_cubic(*cand, t / 80) for t in range(1, 80)], {src, dst}):
                    geo = cand
                    self.used.add((side, bow))
                    break
            geo = geo or cand
        self.points += list(geo)
        return geo

    def place_label(self, geo, width: float):
        for t in (0.5, 0.38, 0.62, 0.28, 0.72, 0.2, 0.8):
            x, y = _cubic(*geo, t)
            r = (x - width / 2, y - 10, x + width / 2, y + 8)
            clash = any(not (r[2] < o[0] or r[0] > o[2] or r[3] < o[1] or r[1] > o[3]) for o in self.labels)
            if not clash and not any(_in_box(((r[0] + r[2]) / 2, y), b, pad=2) for b in self.pos.values()):
                break
        self.labels.append(r)
        return x, y


def render_svg(graph: dict[str, Any], edge_href=None) -> Markup:
    """The picture; with edge_href(edge) -> URL each arrow and its label link there (the console:
    a conduit's flows)."""
    zones = graph["zones"]
    if not zones:
        return Markup("")
    pos, width, height = _layout(zones)
    router = _Router(pos)
    pair_seen = {(e["src"], e["dst"]) for e in graph["edges"]}
    lines, labels = [], []
    for e in graph["edges"]:
        colour, marker, cls = ((BAD_COLOUR, "arrow-bad", "edge violation") if e["violation"]
                               else (OK_COLOUR, "arrow-ok", "edge ok"))
        # two directions between the same zones: each arrow keeps to its own side
        offset = 6 if (e["dst"], e["src"]) in pair_seen else 0
        geo = router.route(e["src"], e["dst"], offset)
        (sx, sy), (k1x, k1y), (k2x, k2y), (ex, ey) = geo
        tip = f"{e['src']} → {e['dst']}: {e['label']} ({e['flows']} flows, {e['packets']:,} packets)"
        a_open, a_close = (f'<a href="{escape(edge_href(e))}">', "</a>") if edge_href else ("", "")
        lines.append(f'{a_open}<g class="{cls}"><title>{escape(tip)}</title>'
                     f'<path d="M{sx:.1f},{sy:.1f} C{k1x:.1f},{k1y:.1f} {k2x:.1f},{k2y:.1f} {ex:.1f},{ey:.1f}" '
                     f'fill="none" stroke="{colour}" stroke-width="{3 if e["violation"] else 2}" marker-end="url(#{marker})"/></g>{a_close}')
        lab = e["label"][:40]
        w = 7 * len(lab) + 12
        mx, my = router.place_label(geo, w)
        labels.append(f'{a_open}<g class="edge-label"><rect x="{mx - w / 2:.1f}" y="{my - 10:.1f}" width="{w:.0f}" height="18" rx="4" '
                      f'fill="#ffffff" stroke="{colour}" stroke-width="1"/>'
                      f'<text x="{mx:.1f}" y="{my + 3:.1f}" text-anchor="middle" fill="{colour}" font-size="12">{escape(lab)}</text></g>{a_close}')
    boxes = []
    for z in zones:
        x, y = pos[z["name"]]
        kind_word = ZONE_KIND_WORDS.get(z["kind"], z["kind"])
        sub = ", ".join(z["networks"][:2]) or (f"{z['devices']} device{'s' if z['devices'] != 1 else ''}" if z["devices"] else "")
        dash = ' stroke-dasharray="5 4"' if z["kind"] in ("unzoned", INTERNET) else ""
        boxes.append(f'<g class="zone"><rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="10" '
                     f'fill="{FILL.get(z["kind"], "#f5f5f5")}" stroke="#546e7a" stroke-width="1.5"{dash}/>'
                     f'<text x="{x + BOX_W / 2:.0f}" y="{y + 26:.0f}" text-anchor="middle" font-size="16" font-weight="600" fill="#263238">{escape(z["name"][:24])}</text>'
                     f'<text x="{x + BOX_W / 2:.0f}" y="{y + 45:.0f}" text-anchor="middle" font-size="12" fill="#455a64">{escape(kind_word[:30])}</text>'
                     f'<text x="{x + BOX_W / 2:.0f}" y="{y + 61:.0f}" text-anchor="middle" font-size="11" fill="#607d8b">{escape(sub[:34])}</text></g>')
    # the picture's extent: boxes, curves (a Bezier stays within its control polygon) and labels
    xs = [0, width] + [p[0] for p in router.points] + [r[0] for r in router.labels] + [r[2] for r in router.labels]
    ys = [0, height] + [p[1] for p in router.points] + [r[1] for r in router.labels] + [r[3] for r in router.labels]
    x0, y0 = min(xs) - 10, min(ys) - 10
    w, h = max(xs) - x0 + 10, max(ys) - y0 + 10
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="zones-svg" viewBox="{x0:.0f} {y0:.0f} {w:.0f} {h:.0f}" '
            f'width="{w:.0f}" role="img" aria-labelledby="zones-svg-title">'
            '<title id="zones-svg-title">Zones and the traffic seen between them</title><defs>'
            f'<marker id="arrow-ok" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{OK_COLOUR}"/></marker>'
            f'<marker id="arrow-bad" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{BAD_COLOUR}"/></marker>'
            '</defs>')
    # boxes over lines, labels over everything
    return Markup(head + "".join(lines) + "".join(boxes) + "".join(labels) + "</svg>")
