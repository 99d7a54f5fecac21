"""`plantguard site init` drafts a site file from traffic (site/draft.py); `plantguard site check`
validates one with the same loader `assess` uses. Exit codes: 0 written / valid, 2 usage or input
error (one line on stderr: for a bad site file, the loader's 'FILE:LINE: field: problem')."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from plantguard.cli import fail, out, say
from plantguard.cli.common import BPF_HELP, STDOUT, check_output, progress_analyze, write_atomically

site_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                       help="Site files: draft one from traffic, check one.")

INIT_HELP = (
    "Draft a site file from the traffic: zones from VLANs and subnets (kinds guessed from the roles "
    "inside), engineering stations from who sent program or configuration changes to controllers, "
    "conduits from the zone-to-zone flows seen, egress for the OT zones from what they reached, "
    "organization_size guessed from the device count. Everything is written as observed, with "
    "comments, for review before use.\n\n"
    "A draft cannot know the intended conduits: every zone-to-zone flow seen becomes a conduit, so "
    "unwanted traffic between OT zones is allowed by the draft until you remove it. Only what the "
    "zone model forbids is held back (written commented out, so assess still reports it): office "
    "to control or sensing zones, OT traffic to public addresses, stations outside OT zones or that "
    "only started or stopped a controller. Guest networks are drafted as office (kind it); "
    "maintenance windows, attestations and the inventory (written commented out) are left to you.")


@site_app.command("init", help=INIT_HELP, short_help="Draft a site file from captures (observed; review before use).")
def site_init(
    captures: List[Path] = typer.Argument(..., help="Capture files or directories."),
    output: Path = typer.Option(..., "-o", "--output", help="The site file to write; - for stdout."),
    force: bool = typer.Option(False, "--force", help="Replace the output file if it exists."),
    name: Optional[str] = typer.Option(None, "--name", help="The site's name (default: the first capture's, with '(draft)')."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    bpf: Optional[str] = typer.Option(None, "--bpf", metavar="FILTER", help=BPF_HELP),
):
    from plantguard.site import SiteError, parse_site
    from plantguard.site.draft import draft_text
    to_stdout = str(output) == STDOUT
    if not to_stdout:                           # before the work, not after it
        _check_target(output, force)
    result = progress_analyze(captures, quiet, bpf=bpf)
    text, draft = draft_text(result, name or f"{Path(str(captures[0])).name} (draft)")
    try:                                        # the draft must load as it is written
        parse_site(text, str(output))
    except SiteError as exc:                    # a bug here, never the user's doing
        fail(f"the draft does not load ({exc}); please report this")
    if to_stdout:
        sys.stdout.write(text)
        sys.stdout.flush()
        say(f"draft: {draft.summary()}; review it before use")
        return
    _write_new(output, text, force)
    say(f"{output}: {draft.summary()}; review it before use, then `plantguard site check {output}`")


@site_app.command("check")
def site_check(site: Path = typer.Argument(..., help="The site file.")):
    """Validate a site file: a one-line summary and exit 0, or the first problem as 'FILE:LINE: field: problem' and exit 2."""
    from plantguard.site import SiteError, load_site
    try:
        s = load_site(site)
    except SiteError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{site}: cannot read site file ({exc.strerror or exc})")
    windows = len(s.maintenance_windows)
    parts = [_n(len(s.zones), "zone"), _n(len(s.conduits), "conduit"), _n(len(s.egress), "egress rule"),
             _n(len(s.engineering_workstations), "engineering station"), _n(len(s.assets), "declared asset"),
             _n(windows, "maintenance window"), _n(len(s.attestations), "attestation")]
    if s.remote_access:
        parts.append(_n(len(s.remote_access), "remote-access path"))
    if s.sboms:
        parts.append(_n(len(s.sboms), "SBOM"))
    say(f"{site}: {', '.join(parts)}", out)


def _n(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _check_target(output: Path, force: bool) -> None:
    check_output(output, "site file")
    if output.exists() and not force:
        fail(f"{output} exists; use --force to replace it")


def _write_new(output: Path, text: str, force: bool) -> None:
    """Written whole or not at all: renamed over the output (--force) or linked to it, which
    fails if the output appeared meanwhile."""
    _check_target(output, force)
    try:
        write_atomically(output, text.encode("utf-8"), "site file", replace=force)
    except FileExistsError:
        fail(f"{output} exists; use --force to replace it")

