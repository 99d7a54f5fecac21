"""Encrypted communications: telemetry that travels without TLS (MQTT on 1883, OPC UA with
SecurityMode None, HTTP from sensors and gateways) and weak TLS (old versions, weak cipher
suites, expired, self-signed or weak certificates). Input: flows and `session`, `topic`, `tls`
and `certificate` observations."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from plantguard.checks._common import EvidenceLog, MAX_FINDINGS, flow_detail, index, rest_finding, top
from plantguard.checks.base import CheckMeta, Finding, severity_rank
from plantguard.checks.registry import NotRun, check

CLEARTEXT_TELEMETRY = CheckMeta(
    id="crypto.cleartext-telemetry", conversation=True,
    title="Telemetry sent without encryption",
    practice="encrypted-communications",
    severity="medium",
    risk="Unencrypted telemetry can be read and, worse, altered on the way: a forged sensor value "
         "or a replayed command looks genuine to the receiver.",
    remediation="Move MQTT to TLS (8883) with client authentication, set OPC UA endpoints to "
                "SignAndEncrypt and disable SecurityMode None, and serve device web interfaces "
                "over HTTPS.",
    controls={"iec62443-3-3": ("SR 3.1", "SR 4.1", "SR 4.3"),
              "nist-800-53r5": ("SC-8", "SC-8(1)", "SC-13"),
              "iso27001-2022": ("A.8.20", "A.8.24")},
    attack=("T0842", "T0830", "T0856"),
    action="Encrypt sensor and gateway telemetry (TLS, secure OPC UA modes)",
    why="Measurements travel unencrypted and unauthenticated; they can be read or forged.",
    effort="medium", owner="OT engineer / integrator", themes=("crypto", "integrity"),
)

WEAK_TLS = CheckMeta(
    id="crypto.weak-tls",
    title="Weak TLS configuration",
    practice="encrypted-communications",
    severity="medium",
    risk="Old protocol versions and weak cipher suites can be broken or downgraded; expired or "
         "self-signed certificates train users to click through warnings and allow "
         "man-in-the-middle attacks.",
    remediation="Allow TLS 1.2 or later only with AEAD cipher suites (AES-GCM, ChaCha20), replace "
                "expired certificates, and issue device certificates from a plant CA with keys of "
                "at least 2048 bits (RSA) or 256 bits (EC).",
    controls={"iec62443-3-3": ("SR 1.8", "SR 1.9", "SR 4.3", "SR 3.1"),
              "nist-800-53r5": ("SC-8(1)", "SC-13", "SC-17", "SC-23"),
              "iso27001-2022": ("A.8.24",)},
    attack=("T0830",),
    action="Replace weak TLS settings and bad certificates",
    why="Old TLS versions, weak ciphers or invalid certificates make encryption easy to defeat.",
    effort="medium", owner="IT security / OT engineer", themes=("crypto",),
)

TELEMETRY_APPS = {"mqtt": "MQTT", "coap": "CoAP", "amqp": "AMQP", "http": "HTTP"}
SENSING_ROLES = frozenset({"sensor", "gateway", "io-device"})
MQTT_TLS_PORTS = frozenset({8883})
EXPIRES_SOON_DAYS = 30


# --------------------------------------------------------------------------------------------
# cleartext telemetry
# --------------------------------------------------------------------------------------------

def _sensing(idx, ip: str) -> bool:
    if idx.role(ip) in SENSING_ROLES:
        return True
    if idx.site is not None:
        z = idx.site.zone_of(ip)
        return z is not None and z.kind == "ot-sensing"
    return False


@check(CLEARTEXT_TELEMETRY)
def cleartext_telemetry(ctx) -> list[Finding]:
    idx = index(ctx)
    fails: dict[tuple, dict] = {}
    passes: dict[tuple, dict] = {}
    topics: dict[tuple, list] = {}
    for o in idx.obs("topic"):
        lst = topics.setdefault((o.src, o.dst) if o.data.get("action") != "deliver" else (o.dst, o.src), [])
        t = o.data.get("topic")
        if t and t not in lst and len(lst) < 5:
            lst.append(str(t)[:80])

    def add(target, key, what, detail, f=None, o=None):
        g = target.setdefault(key, {"ev": EvidenceLog(), "what": what})
        if f is not None:
            g["ev"].add_flow(f, detail, f.packets)
        else:
            g["ev"].add_obs(o, detail)

    for f in idx.flows:
        app = (f.app or "").lower()
        if app in ("mqtt", "coap", "amqp"):
            add(fails, (f.client, f.server, app), TELEMETRY_APPS[app], flow_detail(f) + " - not encrypted", f)
        elif app == "http" and (_sensing(idx, f.client) or _sensing(idx, f.server)):
            add(fails, (f.client, f.server, "http"), "HTTP", flow_detail(f) + " - sensor/gateway traffic without TLS", f)
        elif f.l4 == "tcp" and f.port in MQTT_TLS_PORTS and app in ("", "tls", "mqtts"):
            add(passes, (f.client, f.server, "mqtt"), "MQTT over TLS", flow_detail(f), f)
    for o in idx.obs("session"):
        if o.proto != "opcua":
            continue
        mode = str(o.data.get("security_mode") or "")
        policy = str(o.data.get("policy") or "")
        client, server = (o.src, o.dst) if o.subject == "dst" else (o.dst, o.src)
        if mode.lower() == "none" or (not mode and policy.rsplit("#", 1)[-1].lower() == "none"):
            add(fails, (client, server, "opcua"), "OPC UA",
                f"OPC UA channel {client} -> {server}:{o.dport if o.subject == 'dst' else o.sport} "
                f"with SecurityMode None", o=o)
        elif mode:
            add(passes, (client, server, "opcua"), f"OPC UA ({mode})",
                f"OPC UA channel {client} -> {server} with SecurityMode {mode}", o=o)
    if not fails and not passes:
        raise NotRun("no telemetry protocol (MQTT, OPC UA, CoAP, AMQP, or HTTP from sensors) was seen")
    findings = []
    kept, rest = top(fails, lambda g: g["ev"].events)
    for (client, server, app), g in kept:
        t = topics.get((client, server)) or []
        title = (f"{g['what']} telemetry from {idx.label(client)} to {idx.label(server)} travels unencrypted"
                 + (f" (topics: {', '.join(t[:3])})" if t else ""))
        findings.append(Finding.from_meta(
            CLEARTEXT_TELEMETRY, "fail", title, [client, server], g["ev"].items, protocol=app,
            topics=t, events=g["ev"].events))
    if rest:
        findings.append(rest_finding(CLEARTEXT_TELEMETRY, rest, lambda k, g: k[:2], lambda g: g["ev"].events,
                                     "unencrypted telemetry pairs"))
    fail_pairs = {(c, s) for c, s, _ in fails}
    for (client, server, app), g in top(passes, lambda g: g["ev"].events)[0]:
        if (client, server) in fail_pairs:
            continue
        findings.append(Finding.from_meta(
            CLEARTEXT_TELEMETRY, "pass", f"{g['what']} between {idx.label(client)} and {idx.label(server)} "
                                         "is protected", [client, server], g["ev"].items, protocol=app,
            events=g["ev"].events))
    return findings


# --------------------------------------------------------------------------------------------
# weak TLS
# --------------------------------------------------------------------------------------------

VERSION_NAMES = {(2, 0): "SSL 2.0", (3, 0): "SSL 3.0", (3, 1): "TLS 1.0", (3, 2): "TLS 1.1",
                 (3, 3): "TLS 1.2", (3, 4): "TLS 1.3"}


def tls_version(v) -> tuple[int, int] | None:
    """(major, minor) on the wire scale (TLS 1.2 = (3, 3)) from the forms decoders use:
    771, "0x0303", "TLSv1.2", "TLS 1.2", "SSLv3", "SSL 3.0"."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int):
        if v == 2:
            return (2, 0)
        return (v >> 8, v & 0xFF) if 0x0200 <= v <= 0x03FF else None
    s = str(v).strip().lower()
    if re.fullmatch(r"0x[0-9a-f]{4}", s):
        return tls_version(int(s, 16))
    if s.isdigit():
        return tls_version(int(s))
    m = re.search(r"ssl\s*v?\s*(\d)", s)
    if m:
        return (2, 0) if m.group(1) == "2" else (3, 0)
    m = re.search(r"(?:tls)?\s*v?\s*1\.(\d)", s)
    if m:
        return (3, int(m.group(1)) + 1)
    m = re.search(r"tls\s*v?\s*1\b", s)
    if m:
        return (3, 1)
    return None


# IANA cipher-suite codes by weakness (facts from the TLS cipher-suite registry).
_NULL = {0x0000, 0x0001, 0x0002, 0x002C, 0x002D, 0x002E, 0x003B, 0x00B0, 0x00B1, 0x00B4, 0x00B5,
         0x00B8, 0x00B9, 0xC001, 0xC006, 0xC00B, 0xC010, 0xC015, 0xC039, 0xC03A, 0xC03B}
_EXPORT = {0x0003, 0x0006, 0x0008, 0x000B, 0x000E, 0x0011, 0x0014, 0x0017, 0x0019, 0x0026, 0x0027,
           0x0028, 0x0029, 0x002A, 0x002B, 0x0062, 0x0063, 0x0064, 0x0065}
_ANON = {0x0017, 0x0018, 0x0019, 0x001A, 0x001B, 0x0034, 0x003A, 0x0046, 0x006C, 0x006D, 0x0089,
         0x009B, 0x00A6, 0x00A7, 0x00BF, 0x00C5, 0xC015, 0xC016, 0xC017, 0xC018, 0xC019}
_RC4 = {0x0004, 0x0005, 0x0018, 0x0020, 0x0024, 0x008A, 0x008E, 0x0092, 0xC002, 0xC007, 0xC00C,
        0xC011, 0xC016, 0xC033}
_DES = {0x0009, 0x000C, 0x000F, 0x0012, 0x0015, 0x001A, 0x001E, 0x0022}
_3DES = {0x000A, 0x000D, 0x0010, 0x0013, 0x0016, 0x001B, 0x001F, 0x0023, 0x008B, 0x008F, 0x0093,
         0xC003, 0xC008, 0xC00D, 0xC012, 0xC017, 0xC01A, 0xC01B, 0xC01C, 0xC034}


def cipher_weakness(cipher) -> tuple[str, str] | None:
    """(problem, severity) for a weak cipher suite given by name or IANA code, else None."""
    if cipher is None:
        return None
    code = None
    if isinstance(cipher, int) and not isinstance(cipher, bool):
        code = cipher
    else:
        s = str(cipher).strip()
        if re.fullmatch(r"0x[0-9a-fA-F]{1,4}", s):
            code = int(s, 16)
        elif s.isdigit():
            code = int(s)
    if code is not None:
        for table, problem, sev in ((_NULL, "NULL cipher (no encryption)", "high"),
                                    (_EXPORT, "export-grade cipher", "high"),
                                    (_ANON, "anonymous key exchange (no server authentication)", "high"),
                                    (_RC4, "RC4 cipher", "medium"), (_DES, "single-DES cipher", "medium"),
                                    (_3DES, "3DES cipher (64-bit block)", "medium")):
            if code in table:
                return problem, sev
        return None
    u = str(cipher).upper().replace("-", "_")
    if "NULL" in u:
        return "NULL cipher (no encryption)", "high"
    if "EXPORT" in u or u.startswith("EXP_"):
        return "export-grade cipher", "high"
    if "_ANON_" in u or u.startswith(("ADH", "AECDH")):
        return "anonymous key exchange (no server authentication)", "high"
    if "RC4" in u:
        return "RC4 cipher", "medium"
    if "3DES" in u or "DES_EDE" in u or "DES_CBC3" in u:
        return "3DES cipher (64-bit block)", "medium"
    if re.search(r"(^|_)DES(_|$)", u) or "DES_CBC_" in u or "DES40" in u:
        return "single-DES cipher", "medium"
    if "RC2" in u:
        return "RC2 cipher", "medium"
    if u.endswith("_MD5"):
        return "MD5 message authentication", "medium"
    return None


def _iso_time(text) -> float | None:
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return float(text)
    try:
        d = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def certificate_problems(o) -> list[tuple[str, str]]:
    """(problem, severity) for one certificate observation, judged at the time it was seen.
    The server's own certificate (chain position 0) is judged in full; CA certificates further
    up the chain only for validity dates (a root is self-signed by design)."""
    d = o.data
    leaf = int(d.get("position") or 0) == 0 if str(d.get("position") or "0").isdigit() else True
    out = []
    if not leaf and d.get("self_signed"):
        return out
    who = "certificate" if leaf else f"CA certificate #{d.get('position')}"
    not_after = _iso_time(d.get("not_after"))
    not_before = _iso_time(d.get("not_before"))
    if not_after is not None and o.ts and not_after < o.ts:
        out.append((f"{who} expired on {str(d.get('not_after'))[:10]}", "medium"))
    elif not_after is not None and o.ts and not_after < o.ts + EXPIRES_SOON_DAYS * 86400:
        out.append((f"{who} expires on {str(d.get('not_after'))[:10]}, within {EXPIRES_SOON_DAYS} days", "low"))
    if not_before is not None and o.ts and not_before > o.ts:
        out.append((f"{who} not valid before {str(d.get('not_before'))[:10]}", "low"))
    if not leaf:
        return out
    if d.get("self_signed"):
        out.append(("self-signed certificate", "low"))
    ktype = str(d.get("key_type") or "").lower()
    try:
        bits = int(d["key_bits"]) if d.get("key_bits") is not None else None
    except (TypeError, ValueError, OverflowError):
        bits = None
    if bits is not None:
        if ktype.startswith("ec") or ktype in ("ed25519", "ed448"):
            if bits < 224:
                out.append((f"{bits}-bit EC key", "medium"))
        elif bits < 2048:
            out.append((f"{bits}-bit {ktype.upper() or 'RSA'} key", "high" if bits < 1024 else "medium"))
    sig = str(d.get("sig_alg") or "").lower().replace("-", "")
    if "md5" in sig or "md2" in sig:
        out.append((f"certificate signed with {d.get('sig_alg')}", "medium"))
    elif "sha1" in sig:
        out.append((f"certificate signed with {d.get('sig_alg')}", "low"))
    return out


def _offered(d) -> list[tuple[int, int]]:
    offered = d.get("offered_versions")
    vs = [tls_version(v) for v in (offered if isinstance(offered, (list, tuple)) else [])]
    vs.append(tls_version(d.get("client_version")))
    vs.append(tls_version(d.get("version")))
    return [v for v in vs if v is not None]


@check(WEAK_TLS)
def weak_tls(ctx) -> list[Finding]:
    idx = index(ctx)
    servers: dict[tuple, dict] = {}

    def server_of(o) -> tuple:
        return (o.src, o.sport) if o.subject == "src" else (o.dst, o.dport)

    def entry(key):
        return servers.setdefault(key, {"problems": {}, "ev": EvidenceLog(), "versions": set(),
                                        "ciphers": set(), "certs": 0, "offered": set()})

    for o in idx.obs("tls"):
        key = server_of(o)
        e = entry(key)
        v = tls_version(o.data.get("version") or o.data.get("version_code"))
        if o.subject == "src":               # ServerHello: what was negotiated
            dh = o.data.get("dh_bits")
            if isinstance(dh, int) and not isinstance(dh, bool) and dh < 2048:
                e["problems"].setdefault(f"{dh}-bit Diffie-Hellman group", "high" if dh < 1024 else "medium")
                e["ev"].add_obs(o, f"{key[0]}:{key[1]} key exchange with a {dh}-bit DH group")
            if v is not None:
                e["versions"].add(v)
                if v < (3, 3):
                    sev = "high" if v < (3, 1) else "medium"
                    prob = f"{VERSION_NAMES.get(v, str(v))} negotiated"
                    e["problems"].setdefault(prob, sev)
                    e["ev"].add_obs(o, f"{key[0]}:{key[1]} negotiated {VERSION_NAMES.get(v, v)} with {o.dst}")
            c = o.data.get("cipher")
            if c is not None:
                e["ciphers"].add(str(c))
                weak = cipher_weakness(c)
                if weak is None and o.data.get("weak_cipher"):
                    weak = ("weak cipher suite", "medium")
                if weak:
                    e["problems"].setdefault(f"{weak[0]} ({c})", weak[1])
                    e["ev"].add_obs(o, f"{key[0]}:{key[1]} selected cipher suite {c}")
        else:                                # ClientHello: the best the client offered
            offered = _offered(o.data)
            if offered:
                e["offered"].add(max(offered))
    for o in idx.obs("certificate"):
        key = server_of(o)
        e = entry(key)
        e["certs"] += 1
        for prob, sev in certificate_problems(o):
            if prob not in e["problems"]:
                e["problems"][prob] = sev
                subj = str(o.data.get("subject") or "")[:80]
                e["ev"].add_obs(o, f"{key[0]}:{key[1]} certificate {subj}: {prob}")
    if not servers:
        raise NotRun("no TLS handshake was seen in the captures")
    findings = []
    for (server, port), e in top(servers, lambda e: e["ev"].events + e["certs"], cap=2 * MAX_FINDINGS)[0]:
        if not e["versions"] and e["offered"] and max(e["offered"]) < (3, 3):
            v = max(e["offered"])
            e["problems"].setdefault(f"clients offer at most {VERSION_NAMES.get(v, v)}",
                                     "high" if v < (3, 1) else "medium")
        if e["problems"]:
            probs = sorted(e["problems"].items(), key=lambda kv: -severity_rank(kv[1]))
            sev = probs[0][1]
            findings.append(Finding.from_meta(
                WEAK_TLS, "fail", f"TLS service {idx.label(server)}:{port}: {'; '.join(p for p, _ in probs)}",
                [server], e["ev"].items, severity=sev, port=port, problems=[p for p, _ in probs],
                versions=sorted(VERSION_NAMES.get(v, str(v)) for v in e["versions"]),
                ciphers=sorted(e["ciphers"])[:10], events=e["ev"].events))
        elif e["versions"] or e["certs"]:
            vs = ", ".join(sorted(VERSION_NAMES.get(v, str(v)) for v in e["versions"])) or "version not seen"
            findings.append(Finding.from_meta(
                WEAK_TLS, "pass", f"TLS service {idx.label(server)}:{port} negotiates {vs}"
                                  + (f" with {', '.join(sorted(e['ciphers'])[:2])}" if e["ciphers"] else "")
                                  + (" and a sound certificate" if e["certs"] else ""),
                [server], port=port, versions=vs, ciphers=sorted(e["ciphers"])[:10],
                certificates=e["certs"]))
    if not findings:
        raise NotRun("TLS handshakes were seen, but neither a server's choice nor a certificate")
    return findings
