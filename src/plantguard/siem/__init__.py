"""SIEM fusion: one event model (events.py) rendered as ECS, OCSF, CEF or RFC 5424 (one module
per format), delivered to sinks named by URL (one module per sink kind, registry.py derives the
schemes) through a durable outbox per sink (outbox.py). The API `plantguard monitor` and
`plantguard export` use:

    sink = open_sink("syslog+tls://siem.example:6514?format=cef&ca=/etc/plantguard/ca.pem")
    outbox = Outbox("/var/lib/plantguard/siem-1.outbox", sink, max_bytes=64 << 20)
    for event in from_assessment(contract):
        outbox.put(event)
    outbox.flush(timeout=10)          # True when everything was acknowledged
    outbox.depth(), outbox.dropped, outbox.last_error
"""
from plantguard.siem.events import Event, from_assessment
from plantguard.siem.outbox import Outbox
from plantguard.siem.registry import formats, open_sink, schemes
from plantguard.siem.spec import DeliveryError, Sink

__all__ = ["DeliveryError", "Event", "Outbox", "Sink", "formats", "from_assessment", "open_sink", "schemes"]
