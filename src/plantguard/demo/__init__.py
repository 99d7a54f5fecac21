"""The bundled demo plant: a deterministic capture built with the project's own frame builders,
the site file that describes it and the iptables-save file of its boundary firewall (with one
deliberate hole). `build_demo(outdir)` writes all three and returns the capture's and the site
file's paths; the firewall file is FIREWALL_NAME beside them."""
from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from plantguard.demo.pcapwriter import write_pcap

PCAP_NAME, SITE_NAME, FIREWALL_NAME = "demo-plant.pcap", "site.yaml", "firewall.rules"


def site_text() -> str:
    return resources.files("plantguard.demo").joinpath(SITE_NAME).read_text(encoding="utf-8")


def firewall_text() -> str:
    return resources.files("plantguard.demo").joinpath(FIREWALL_NAME).read_text(encoding="utf-8")


def build_demo(outdir: str | os.PathLike) -> tuple[Path, Path]:
    """Writes demo-plant.pcap, site.yaml and firewall.rules into outdir (created if needed); same bytes on
    every run. Returns (pcap path, site path)."""
    from plantguard.demo.plant import build_capture
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    cap = build_capture()
    pcap_path, site_path = out / PCAP_NAME, out / SITE_NAME
    with open(pcap_path, "wb") as f:
        write_pcap(f, cap.frames)
    site_path.write_text(site_text(), encoding="utf-8")
    (out / FIREWALL_NAME).write_text(firewall_text(), encoding="utf-8")
    return pcap_path, site_path
