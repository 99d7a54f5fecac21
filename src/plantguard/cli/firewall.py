"""`plantguard firewall check` judges firewall configurations against the site file (and the
captures, when given) with the firewall.* checks, through the same contract and renderers as
`assess` (plus a table for the terminal); `plantguard firewall explain` says which rule decides
one packet, and why. Exit codes: 0 done, 1 with --prove: the kernel and the model disagree, 2 usage or
input error (one line on stderr)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

from plantguard.cli import fail, out, say
from plantguard.cli.common import (
    check_output,
    is_stdout,
    load_site,
    progress_analyze,
    render_report,
    report_format,
    write_report,
)
from plantguard.errors import InputError
from plantguard.report.registry import names

firewall_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                           help="Firewall configurations: check them against the site, explain a verdict.")
CONFIG_HELP = ("Firewall configurations: iptables-save, nft -j list ruleset, Cisco IOS/ASA, FortiOS, "
               "pfSense/OPNsense config.xml (recognised by content).")


def load_rulesets(paths: list[Path]) -> list:
    """The parsed configurations; a file that cannot be read is one line, exit 2."""
    from plantguard.firewall.load import load_all
    try:
        return load_all(paths)
    except InputError as exc:
        fail(str(exc))


def unread_notes(rulesets) -> list[str]:
    """One note per configuration with lines its parser could not model (never silently dropped)."""
    notes = []
    for rs in rulesets:
        if rs.unsupported:
            lines = ", ".join(str(u.origin.line) for u in rs.unsupported[:20])
            notes.append(f"{rs.path}: {len(rs.unsupported)} of {rs.lines} lines not modelled "
                         f"(lines {lines}{' ...' if len(rs.unsupported) > 20 else ''}): {rs.unsupported[0].why}")
    return notes


def firewall_check_ids() -> set[str]:
    from plantguard.checks.registry import all_checks
    return {m.id for m, _ in all_checks() if m.id.startswith("firewall.")}


def _formats():
    return Literal[("table", *names("assess"))]


@firewall_app.command("check", short_help="Judge firewall configurations against the site file (and captures).")
def firewall_check(
    inputs: list[Path] = typer.Argument(..., help=CONFIG_HELP + " Capture files (.pcap, .pcapng) may follow."),
    site: Path = typer.Option(..., "--site", help="Site file: zones, conduits, egress."),
    format: _formats() = typer.Option("table", "--format", "-f", help="Output format (table for the terminal)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write here; - for stdout (default: stdout; html and pdf: plantguard-firewall.html or .pdf)."),
    prove: bool = typer.Option(False, "--prove", help="Send each witness packet through the ruleset loaded in a Linux kernel (network namespaces) and compare verdicts."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
):
    """Judge firewall configurations against the site's conduits, egress lists and zone kinds
    (exact reachability between zones), and, with captures, the traffic they would drop."""
    from plantguard.assess import run_assessment
    from plantguard.checks.firewall import FIREWALL_OPTION
    from plantguard.model import AnalysisResult
    configs, captures = _split(inputs)
    if not configs:
        fail("give at least one firewall configuration")
    chosen = None if format == "table" else report_format(format)
    if output is None and chosen is not None and chosen.file_only:
        output = Path(f"plantguard-firewall.{chosen.extension}")
    check_output(output)
    site_model = load_site(site)
    rulesets = load_rulesets(configs)
    result = progress_analyze(captures, quiet) if captures else AnalysisResult()
    result.notes.extend(unread_notes(rulesets))
    try:
        contract = run_assessment(result, site_model, db=None, options={FIREWALL_OPTION: rulesets},
                                  only=firewall_check_ids())
    except InputError as exc:
        fail(str(exc))
    body = _table(contract) if chosen is None else render_report(contract, format)
    write_report(body, output)
    if not is_stdout(output):
        s = contract["summary"]
        say(f"{s['failed']} failing and {s['passed']} passing firewall findings; report: {output}")
    if prove:
        from plantguard.firewall.reach import zone_sets
        _prove(rulesets, contract, zone_sets(site_model))


def _split(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """Configurations and captures among the arguments: a capture is recognised by its magic."""
    magics = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x0a\x0d\x0d\x0a")
    configs, captures = [], []
    for p in inputs:
        try:
            with open(p, "rb") as f:
                head = f.read(4)
        except IsADirectoryError:
            captures.append(p)
            continue
        except OSError as exc:
            fail(f"{p}: cannot read it ({exc.strerror or exc})")
        (captures if head in magics or p.suffix.lower() in (".pcap", ".pcapng", ".cap") else configs).append(p)
    return configs, captures


def _table(contract: dict) -> str:
    from plantguard.util.tables import Column, render
    rows = []
    for f in contract["findings"]:
        ev = next((e for e in f["evidence"] if e.get("frame") is not None and e.get("time") is None), None)
        where = f"{ev['capture']}:{ev['frame']}" if ev else ""
        rows.append((f["status"], f["severity"], f["check"], f["title"], where))
    for nr in contract.get("checks_not_run") or []:
        rows.append(("not run", "", nr["check"], nr["reason"], ""))
    cols = (Column("status", no_wrap=True), Column("severity", no_wrap=True), Column("check", no_wrap=True),
            Column("finding"), Column("where", no_wrap=True))
    notes = "".join(f"note: {n}\n" for n in contract.get("notes") or [])
    return render(cols, rows, "firewall check") + notes


def _prove(rulesets, contract: dict, zones=None) -> None:
    """Send each failing finding's witness through the ruleset loaded in a kernel
    (firewall/kernel.py) and compare the kernel's verdict with the model's, one line a packet."""
    try:
        from plantguard.firewall import kernel
    except ImportError:
        say("plantguard: --prove: the kernel proof (plantguard.firewall.kernel) is not available in this build")
        return
    from plantguard.firewall.evaluate import describe, evaluate
    from plantguard.firewall.model import Packet
    prove = getattr(kernel, "prove_ruleset", None) or kernel.prove
    for rs in rulesets:
        packets = [_packet_of(f["detail"]["witness"]) for f in contract["findings"]
                   if f["status"] == "fail" and f.get("detail", {}).get("config") == rs.path
                   and isinstance(f.get("detail", {}).get("witness"), str)]
        packets = list(dict.fromkeys(p for p in packets if isinstance(p, Packet)))
        if not packets:
            continue
        try:         # a host ruleset names no interface networks: the site's zones are the interfaces
            verdicts = (prove(rs, packets) if rs.interfaces or zones is None else
                        kernel.prove(rs.path, rs.format, packets, interfaces=_lab_interfaces(zones)))
        except Exception as exc:  # noqa: BLE001 (KernelUnavailable, or a lab that could not be built: one line)
            say(f"plantguard: --prove: {rs.path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
            continue
        agree = 0
        for kv in verdicts:
            model = evaluate(rs, kv.packet).action == "accept"
            ok = kv.delivered is not None and kv.delivered == model
            agree += ok
            kernel_word = {True: "delivered", False: "dropped", None: f"not sent ({kv.why})"}[kv.delivered]
            say(f"{'agree' if ok else 'DISAGREE'}: {describe(kv.packet)}: kernel {kernel_word}, "
                f"model {'accept' if model else 'drop'}", out)
        say(f"kernel proof of {rs.path}: {agree} of {len(verdicts)} witness packets agree", out)
        if agree != len(verdicts):
            raise typer.Exit(1)


def _lab_interfaces(zones: dict) -> dict:
    """Zone networks as the kernel lab's interfaces (short names: a Linux interface name is at most 15)."""
    return {f"z{i}": nets for i, nets in enumerate(zones.values())}


def _packet_of(text: str):
    """A witness as describe() writes it ('tcp 10.20.0.1:40000 -> 10.10.1.10:502 (new)') -> Packet."""
    from plantguard.firewall.model import Packet
    try:
        proto, src, _, dst, *_ = text.split()
        s_ip, _, s_port = src.rpartition(":")
        d_ip, _, d_port = dst.rpartition(":")
        return Packet(s_ip, d_ip, proto, sport=int(s_port), dport=int(d_port))
    except ValueError:
        return None


def parse_service(text: str) -> tuple[str, int | None]:
    """tcp/502, udp/161, icmp, tcp -> (protocol, port or None)."""
    proto, _, port = text.strip().lower().partition("/")
    if not proto or (port and not port.isdigit()) or (port and not 0 <= int(port) <= 65535):
        raise ValueError(text)
    return proto, int(port) if port else None


@firewall_app.command("explain", short_help="Which rule decides one packet, and why.")
def firewall_explain(
    configs: list[Path] = typer.Argument(..., help=CONFIG_HELP),
    src: str = typer.Option(..., "--from", help="Source address."),
    dst: str = typer.Option(..., "--to", help="Destination address."),
    port: str = typer.Option("tcp", "--port", help="Service: tcp/502, udp/161, icmp."),
    state: str = typer.Option("new", "--state", help="Connection state: new, established, related, invalid."),
):
    """Say which rule of each configuration decides the packet (file:line and the rule as written),
    or which policy does."""
    import ipaddress

    from plantguard.firewall.evaluate import explain
    from plantguard.firewall.model import STATES, Packet
    for a in (src, dst):
        try:
            ipaddress.ip_address(a)
        except ValueError:
            fail(f"not an IP address: {a!r}")
    try:
        proto, dport = parse_service(port)
    except ValueError:
        fail(f"--port must look like tcp/502, udp/161 or icmp, not {port!r}")
    if state not in STATES:
        fail(f"--state must be one of {', '.join(sorted(STATES))}, not {state!r}")
    pkt = Packet(src, dst, proto, dport=dport if dport is not None else (None if proto not in ("tcp", "udp") else 1),
                 icmp_type=8 if proto == "icmp" else None, state=state)
    for rs in load_rulesets(configs):
        say(explain(rs, pkt), out)
