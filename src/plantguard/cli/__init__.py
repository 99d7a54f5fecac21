"""Command line: parses, calls, prints. Exit codes: 0 fine, 1 findings at or above --fail-on
(sbom check: an SBOM not complete), 2 usage or input error (one line on stderr, nothing
half-written). One module per command: assess, inventory, demo, intel, sbom; the --format
choices of every command come from report.registry."""
from __future__ import annotations

import sys
from typing import Literal

import typer
from rich.console import Console

from plantguard import __version__
from plantguard.report.registry import names

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="plantguard: passive security assessment of smart-manufacturing networks.")
out = Console()
err = Console(stderr=True)


def fail(msg: str) -> None:
    """A usage or input error: one line on stderr, exit code 2."""
    err.print(f"plantguard: error: {msg}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def format_choice(target: str):
    """The type of a --format option: the renderers registered for `target` (report.registry).
    Used as an annotation, which (from __future__ import annotations) Typer evaluates each time it
    builds the command line, so renderers registered at run time are offered too."""
    return Literal[names(target)]


# the commands, in the order `plantguard --help` lists them
from plantguard.cli import inventory as _inventory  # noqa: E402,F401
from plantguard.cli import assess as _assess  # noqa: E402,F401
from plantguard.cli import demo as _demo  # noqa: E402,F401


@app.command()
def version():
    """Print the version."""
    out.print(f"plantguard {__version__}")


from plantguard.cli.intel import intel_app  # noqa: E402
from plantguard.cli.sbom import sbom_app  # noqa: E402

app.add_typer(intel_app, name="intel", help="Vulnerability intelligence: import advisories, KEV, NVD, EPSS.")
app.add_typer(sbom_app, name="sbom", help="Check SBOMs (CycloneDX, SPDX) against procurement needs and advisories.")


def main() -> None:
    """Console entry point: an unexpected error is one line on stderr, not a traceback
    (PLANTGUARD_DEBUG=1 shows it)."""
    import os
    try:
        app()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("PLANTGUARD_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        err.print(f"plantguard: internal error: {type(exc).__name__}: {first} "
                  "(set PLANTGUARD_DEBUG=1 for details)", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
