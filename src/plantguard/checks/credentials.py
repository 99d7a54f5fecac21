"""Default credentials practice: logins with factory-default pairs, and any credential that
crosses the network in clear text. Input: `credential` observations (FTP, Telnet, HTTP Basic,
MQTT, SNMP community, OPC UA user name, ...). Secrets are never printed in full."""
from __future__ import annotations

from plantguard.checks._common import EvidenceLog, index, mask, plural, rest_finding, text, top
from plantguard.checks.base import CheckMeta, Finding
from plantguard.checks.registry import NotRun, check
from plantguard.knowledge.creds import describe, match_community, match_login

DEFAULT = CheckMeta(
    id="credentials.default", conversation=True,
    title="Factory-default credentials in use",
    practice="default-credentials",
    severity="critical",
    risk="A login that works with the vendor's published default lets anyone on the network take "
         "over the device; default lists are the first thing an intruder tries.",
    remediation="Change the default password (or SNMP community) on the device, give each operator "
                "an individual account, and disable the service if it is not needed.",
    controls={"iec62443-3-3": ("SR 1.5", "SR 1.7", "SR 2.1"),
              "nist-800-53r5": ("IA-5", "IA-5(1)", "AC-3"),
              "iso27001-2022": ("A.5.17", "A.8.5")},
    attack=("T0812", "T0859"),
    action="Change factory-default passwords on plant devices",
    why="Devices accepted a login with a password printed in the vendor's manual; anyone on the network "
        "can take them over.",
    effort="low", owner="OT engineer with the device vendor", themes=("credentials", "hygiene"),
)

CLEARTEXT = CheckMeta(
    id="credentials.cleartext", conversation=True,
    title="Credentials sent in clear text",
    practice="default-credentials",
    severity="high",
    risk="Anyone who can see the traffic (a compromised switch port, a laptop on the same VLAN) "
         "reads these user names and passwords and can reuse them.",
    remediation="Use the encrypted variant of the protocol (SFTP/FTPS, SSH, HTTPS, MQTT over TLS, "
                "SNMPv3 with authPriv, OPC UA SignAndEncrypt) or restrict the service to a "
                "management network; change any password that was seen in clear.",
    controls={"iec62443-3-3": ("SR 1.5", "SR 4.1"),
              "nist-800-53r5": ("IA-5(1)", "SC-8", "SC-8(1)"),
              "iso27001-2022": ("A.5.17", "A.8.5", "A.8.24")},
    attack=("T0842", "T0859"),
    action="Stop sending passwords in clear text",
    why="Passwords crossed the network unencrypted; anyone who can see the traffic can reuse them.",
    effort="medium", owner="OT engineer / network team", themes=("credentials", "hygiene"),
)

ANONYMOUS_FTP_USERS = {"anonymous", "ftp"}


from plantguard.inventory.build import address_class  # noqa: E402

COMMON_DEFAULT_AT = 20   # more documented products than this: say "common default", not vendors


def _secret(o) -> str | None:
    d = o.data
    pw = text(d.get("password"))
    if d.get("secret_type") == "community" and pw is None:
        pw = text(d.get("user"))
    return pw


def _user(o) -> str:
    if o.data.get("secret_type") == "community":
        return ""
    return text(o.data.get("user")) or ""


def _default_matches(o) -> tuple[list, str]:
    """(matching default entries, how to name the secret) for one credential observation."""
    d = o.data
    secret = _secret(o)
    if d.get("secret_type") == "community" or o.proto == "snmp":
        return match_community(secret), "community"
    user = _user(o)
    if o.proto == "ftp" and user.lower() in ANONYMOUS_FTP_USERS:
        return ["anonymous FTP: no account needed"], "anonymous login"
    return match_login(user, secret, o.proto), "login"


def _hide(text: str, secret: str | None) -> str:
    """Vendor names in the lists sometimes contain the secret itself: mask it there too."""
    if secret and len(secret) >= 3 and secret in text:
        return text.replace(secret, mask(secret))
    return text


def _outcome(results: set) -> str:
    if "success" in results:
        return "accepted"
    if results == {"failure"}:
        return "rejected"
    return "result not seen"


@check(DEFAULT)
def default_credentials(ctx) -> list[Finding]:
    idx = index(ctx)
    groups: dict[tuple, dict] = {}
    tested: set[tuple] = set()
    for o in idx.obs("credential"):
        secret = _secret(o)
        user = _user(o)
        if secret is None and not (o.proto == "ftp" and user.lower() in ANONYMOUS_FTP_USERS):
            continue
        tested.add((o.src, o.dst, o.proto, user, secret))
        if address_class(o.dst or "") == "public":
            continue   # a server on the internet is not a plant device that kept its defaults
        matches, what = _default_matches(o)
        if not matches:
            continue
        key = (o.src, o.dst, o.proto, user, secret)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {"ev": EvidenceLog(), "results": set(), "matches": matches, "what": what,
                               "port": o.dport}
        g["results"].add(text(o.data.get("result")))
        g["ev"].add_obs(o, f"{o.proto} {what} {user + '/' if user else ''}{mask(secret)} "
                           f"from {o.src} to {o.dst}:{o.dport}")
    if not tested:
        raise NotRun("no login with a visible secret was seen in the captures, so default "
                     "credentials could not be tested")
    findings = []
    kept, rest = top(groups, lambda g: g["ev"].events)
    docs: dict[tuple, str] = {}
    for (client, server, proto, user, secret), g in kept:
        outcome = _outcome(g["results"])
        where = g["matches"] if isinstance(g["matches"][0], str) else None
        doc_key = (user, secret, proto)
        doc = docs.get(doc_key)
        if doc is None:
            if where:
                doc = where[0]
            elif any(m.source == "well-known" for m in g["matches"]):
                doc = "factory default of most SNMP agents"
            elif len(g["matches"]) > COMMON_DEFAULT_AT:
                # a pair documented for hundreds of products is a generic default, not a vendor's
                doc = f"a common factory default, documented for {len(g['matches'])} products"
            else:
                doc = _hide(f"documented default for {describe(g['matches'])}", secret)
            docs[doc_key] = doc
        shown = f"{user}/{mask(secret)}" if user else f"'{mask(secret)}'"
        if g["what"] == "anonymous login":
            shown = f"user '{user}'"
        title = (f"{proto.upper()} {g['what']} {shown} to {idx.label(server)} from {client} "
                 f"({outcome}; {doc})")
        sev = "medium" if outcome == "rejected" else None
        findings.append(Finding.from_meta(
            DEFAULT, "fail", title, [server, client], g["ev"].items, severity=sev,
            protocol=proto, port=g["port"], user=user or None, secret=mask(secret), outcome=outcome,
            documented_for=[_hide(m if isinstance(m, str) else m.device, secret) for m in g["matches"][:10]],
            documented_total=len(g["matches"]),
            events=g["ev"].events))
    if rest:
        findings.append(rest_finding(DEFAULT, rest, lambda k, g: (k[1], k[0]), lambda g: g["ev"].events,
                                     "default-credential logins"))
    if not findings:
        findings.append(Finding.from_meta(
            DEFAULT, "pass",
            f"None of the {plural(len(tested), 'distinct login')} with a visible secret uses a known "
            f"factory-default pair", sorted({t[1] for t in tested})[:50],
            logins_checked=len(tested), protocols=sorted({t[2] for t in tested})))
    return findings


@check(CLEARTEXT)
def cleartext_credentials(ctx) -> list[Finding]:
    idx = index(ctx)
    clear: dict[tuple, dict] = {}
    protected: dict[tuple, EvidenceLog] = {}
    for o in idx.obs("credential"):
        d = o.data
        stype = text(d.get("secret_type"))
        if stype in ("certificate", "anonymous"):
            continue                 # no secret: anonymous FTP is judged by credentials.default
        secret = _secret(o)
        if d.get("cleartext") and (secret is not None or stype in ("password", "basic", "community", "token")):
            key = (o.src, o.dst, o.proto)
            g = clear.setdefault(key, {"ev": EvidenceLog(), "users": set(), "port": o.dport, "types": set()})
            user = _user(o)
            g["users"].add(user or "(none)")
            g["types"].add(stype or "password")
            what = "community" if stype == "community" else f"user '{user}' password" if user else "secret"
            g["ev"].add_obs(o, f"{o.proto} {what} {mask(secret)} in clear from {o.src} to {o.dst}:{o.dport}")
        elif d.get("cleartext") is False and d.get("auth") is not False:
            ev = protected.setdefault((o.dst, o.proto), EvidenceLog())
            ev.add_obs(o, f"{o.proto} login from {o.src} to {o.dst}:{o.dport} ({stype or 'credential'}, protected)")
    findings = []
    kept, rest = top(clear, lambda g: g["ev"].events)
    for (client, server, proto), g in kept:
        users = sorted(g["users"])
        kind = "community" if g["types"] == {"community"} else "credentials"
        title = (f"{proto.upper()} {kind} sent in clear text from {client} to {idx.label(server)}"
                 + (f" (users: {', '.join(users[:5])})" if users != ["(none)"] else ""))
        findings.append(Finding.from_meta(CLEARTEXT, "fail", title, [server, client], g["ev"].items,
                                          protocol=proto, port=g["port"], users=users[:50],
                                          events=g["ev"].events))
    if rest:
        findings.append(rest_finding(CLEARTEXT, rest, lambda k, g: (k[1], k[0]), lambda g: g["ev"].events,
                                     "cleartext logins"))
    for (server, proto), ev in top(protected, lambda ev: ev.events)[0]:
        findings.append(Finding.from_meta(
            CLEARTEXT, "pass", f"Logins to {idx.label(server)} over {proto} are protected "
                               f"({plural(ev.events, 'login')})", [server], ev.items,
            protocol=proto, events=ev.events))
    if not clear:
        n = sum(ev.events for ev in protected.values())
        findings.append(Finding.from_meta(
            CLEARTEXT, "pass", "No credential was seen crossing the network in clear text"
                               + (f" ({plural(n, 'protected login')} seen)" if n else ""),
            [], protected_logins=n))
    return findings
