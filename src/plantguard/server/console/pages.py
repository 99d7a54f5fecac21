"""The console's page modules, in the order of the navigation; each has a `router`."""
from __future__ import annotations

import importlib

MODULES = ("session", "overview", "assets", "zones", "alerts", "findings", "roadmap", "admin_pages", "changes")


def routers() -> list:
    return [importlib.import_module(f"plantguard.server.console.{m}").router for m in MODULES]
