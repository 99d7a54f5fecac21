"""https://HOST[:PORT]/INDEX?format=ecs[&apikey=KEY&ca=&cert=&key=] — the Elastic / OpenSearch bulk
API: each batch is one POST of `create` actions to /INDEX/_bulk with the event id as the document
_id, so a batch sent twice creates nothing twice (the repeat answers 409, which counts as
delivered). A batch is acknowledged when the answer is 2xx and every item was created or already
there; an item the cluster refuses for its content (another 4xx) is counted in `rejected` and not
retried (it would block every event after it); 429 and 5xx items send the batch again."""
from __future__ import annotations

import base64
import json

from plantguard.errors import InputError
from plantguard.siem.events import Event
from plantguard.siem.httppost import netloc, post
from plantguard.siem.sink_syslog import tls_context
from plantguard.siem.spec import DeliveryError, Format, Sink, SinkKind, SinkURL


class ElasticSink(Sink):
    def __init__(self, name: str, endpoint: str, fmt: Format, headers: dict[str, str], context):
        self.name, self.endpoint, self.format, self.headers, self.context = name, endpoint, fmt, headers, context
        self.rejected = 0           # documents the cluster refused for their content

    def encode(self, event: Event) -> bytes:
        action = json.dumps({"create": {"_id": event.id}}, separators=(",", ":"))
        return f"{action}\n{self.format.render(event)}".encode("utf-8")

    def send(self, records: list[bytes]) -> None:
        body = b"".join(r + b"\n" for r in records)
        _, answer = post(self.name, self.endpoint, body, self.headers, self.context)
        try:
            items = json.loads(answer).get("items")
            statuses = [next(iter(i.values())).get("status") for i in items]
        except (ValueError, AttributeError, TypeError, StopIteration):
            raise DeliveryError(f"{self.name}: the bulk answer is not one Elasticsearch gives") from None
        if len(statuses) != len(records) or not all(isinstance(s, int) for s in statuses):
            raise DeliveryError(f"{self.name}: the bulk answer lists {len(statuses)} items for {len(records)}")
        again = [s for s in statuses if s == 429 or s >= 500]
        if again:
            raise DeliveryError(f"{self.name}: {len(again)} of {len(records)} documents refused for now "
                                f"(HTTP {again[0]})")
        self.rejected += sum(1 for s in statuses if s >= 300 and s != 409)


def open_elastic(url: SinkURL, fmt: Format) -> ElasticSink:
    p = url.parts
    if not p.hostname:
        raise InputError(f"{url.safe()}: give https://HOST[:PORT]/INDEX")
    index = p.path.strip("/")
    if not index or "/" in index.removesuffix("/_bulk"):
        raise InputError(f"{url.safe()}: give the index as the path (https://HOST/plantguard-events)")
    host = netloc(p.hostname, p.port)
    endpoint = f"https://{host}/{index.removesuffix('/_bulk')}/_bulk"
    headers = {"Content-Type": "application/x-ndjson"}
    if url.options.get("apikey"):
        headers["Authorization"] = f"ApiKey {url.options['apikey']}"
    elif p.username:
        creds = f"{p.username}:{p.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(creds).decode()
    return ElasticSink(f"https://{host}/{index}", endpoint, fmt, headers, tls_context(url))


SINK = SinkKind("elastic-bulk", ("https",), ("ecs",), open_elastic, options=("format", "apikey", "ca", "cert", "key"),
                description="the Elastic / OpenSearch bulk API over HTTPS")
