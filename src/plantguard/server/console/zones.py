"""The zone map: the site's zones and the traffic seen between them (the report's SVG, each arrow a
link to its flows), next to the conduits the site file declares, so an observed path no conduit
allows stands out; and the flows of one zone pair."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from sqlalchemy import select

from plantguard.report.zones_svg import render_svg, zone_graph, zone_lookup
from plantguard.server import tables as t
from plantguard.server.api.common import Principal, central
from plantguard.server.console.base import link, page_requires, render, sites_for
from plantguard.server.console.overview import latest_findings

router = APIRouter(include_in_schema=False)
MAX_FLOWS = 20_000          # flows of a site drawn; more are counted
MAP_ZONES, MAP_EDGES = 48, 80


def site_picture(session, site: t.Site) -> tuple[dict, dict, int]:
    """(contract-shaped view of the site's latest state, the latest run's report, flows left out)."""
    run = session.scalar(select(t.Run).where(t.Run.site_id == site.id).order_by(t.Run.id.desc()).limit(1))
    report = (run.report or {}) if run else {}
    flows = list(session.scalars(select(t.Flow.data).where(t.Flow.site_id == site.id)
                                 .order_by(t.Flow.packets.desc()).limit(MAX_FLOWS + 1)))
    assets = list(session.scalars(select(t.Asset.data).where(t.Asset.site_id == site.id, t.Asset.gone_at.is_(None))))
    view = {"zones": report.get("zones") or [], "assets": assets, "flows": flows[:MAX_FLOWS],
            "findings": [f.data for f in latest_findings(session, site.id)]}
    return view, report, max(0, len(flows) - MAX_FLOWS)


@router.get("/zones")
def zones(request: Request, site: str | None = None, src: str | None = Query(None, alias="from"),
          dst: str | None = Query(None, alias="to"), who: Principal = Depends(page_requires("flows:read"))):
    with central(request).sessions() as s:
        sites = sites_for(s, who)
        if not sites:
            return render(request, who, "zones.html.j2", title="Zones", sites=[], site=None, svg="", conduits=[],
                          edges=[], flows=[], pair=None, left_out=0)
        chosen = next((x for x in sites if x.name == site), None) if site else sites[0]
        if chosen is None:
            raise HTTPException(404, "no such site")
        view, report, left_out = site_picture(s, chosen)
    graph = zone_graph(view, max_zones=MAP_ZONES, max_edges=MAP_EDGES)
    declared = {(c.get("from"), c.get("to")) for c in report.get("conduits") or []}
    declared |= {(c.get("to"), c.get("from")) for c in report.get("conduits") or [] if c.get("bidirectional")}
    for e in graph["edges"]:
        e["declared"] = (e["src"], e["dst"]) in declared
    href = lambda e: link("/zones", {"site": chosen.name}, **{"from": e["src"], "to": e["dst"]})  # noqa: E731
    flows = []
    if src and dst:
        zone_of = zone_lookup(view)
        flows = [f for f in view["flows"] if zone_of(str(f.get("src"))) == src and zone_of(str(f.get("dst"))) == dst]
    return render(request, who, "zones.html.j2", title="Zones", sites=[x.name for x in sites], site=chosen.name,
                  svg=render_svg(graph, edge_href=href), edges=graph["edges"], conduits=report.get("conduits") or [],
                  flows=flows[:1000], pair=(src, dst) if src and dst else None, left_out=left_out,
                  graph=graph, href=href)
