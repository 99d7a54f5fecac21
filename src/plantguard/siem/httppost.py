"""One HTTPS POST for the HTTP sinks (standard library urllib): TLS verified as for syslog+tls
(ca=, cert=, key=), a bounded response read, and every failure as one-line DeliveryError."""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request

from plantguard.siem.spec import DeliveryError, failure_reason
from plantguard.siem.text import plain

MAX_RESPONSE = 16 << 20
TIMEOUT = 30.0


def netloc(host: str, port: int | None) -> str:
    """host[:port] for a URL (an IPv6 address in brackets)."""
    h = f"[{host}]" if ":" in host else host
    return h if port is None else f"{h}:{port}"


def post(name: str, url: str, body: bytes, headers: dict[str, str], context: ssl.SSLContext,
         timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """(status, body) of a 2xx answer; DeliveryError for anything else."""
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, r.read(MAX_RESPONSE)
    except urllib.error.HTTPError as e:
        detail = plain(e.read(300).decode("utf-8", "replace").strip())
        raise DeliveryError(f"{name}: HTTP {e.code} {e.reason}" + (f": {detail}" if detail else "")) from None
    except urllib.error.URLError as e:
        why = failure_reason(e.reason) if isinstance(e.reason, BaseException) else plain(e.reason)
        raise DeliveryError(f"{name}: {why}") from None
    except (OSError, ValueError) as e:
        raise DeliveryError(f"{name}: {failure_reason(e)}") from None
