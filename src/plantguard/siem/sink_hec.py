"""hec+https://HOST:PORT?token=... — Splunk HTTP Event Collector with acknowledgements: declared so
its URLs get a clear answer; not yet supported."""
from __future__ import annotations

from plantguard.siem.spec import SinkKind

SINK = SinkKind("splunk-hec", ("hec+https",), ("ecs",), None, options=("format", "token"),
                description="Splunk HEC arrives with a later version; use syslog+tls:// meanwhile")
