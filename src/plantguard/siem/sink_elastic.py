"""https://HOST/PATH?format=ecs — the Elastic / OpenSearch bulk API: declared so its URLs get a
clear answer; not yet supported."""
from __future__ import annotations

from plantguard.siem.spec import SinkKind

SINK = SinkKind("elastic-bulk", ("https",), ("ecs",), None,
                description="Elastic bulk arrives with a later version; use syslog+tls:// or file:// meanwhile")
