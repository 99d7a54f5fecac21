"""Command line: parses, calls, prints. Exit codes: 0 fine, 1 findings at or above --fail-on
(sbom check: an SBOM not complete), 2 usage or input error (one line on stderr, nothing
half-written), 130 interrupted (Ctrl-C: one line on stderr, nothing half-written). One module per
command: assess, inventory, demo, intel, sbom; the --format choices of every command come from
report.registry. Every text the commands print that a device or a file may have written goes
through util.sanitize (say(), fail(), the renderers)."""
from __future__ import annotations

import errno
import gc
import sys
from typing import Any, Literal

import typer
from rich.console import Console
from typer.core import TyperGroup

try:                            # Typer >= 0.2x carries its own copy of Click
    from typer import _click as click
except ImportError:             # older Typer runs on Click itself
    import click

from plantguard import __version__
from plantguard.report.registry import names
from plantguard.util.sanitize import terminal_text

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130      # 128 + SIGINT, as a shell reports it


_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())    # Click >= 8.2


class _Group(TyperGroup):
    """The top-level command group: usage errors are one line naming --help (not Click's usage
    box), Ctrl-C is one line and exit code 130, whoever calls main (console script, CliRunner)."""

    def invoke(self, ctx) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            interrupted()

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra) -> Any:
        _choices_any_case(self)
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except (click.exceptions.ClickException, typer.Abort, KeyboardInterrupt, OSError) as exc:
            code = _stopped(exc, prog_name)
        if standalone_mode:
            # the output is written: what the run made is left to the process's end, not walked
            # once more by the collector's last pass at exit (0.36 s after a polling capture);
            # the stores' connections, which that pass would have closed, are closed first
            if "plantguard.store.db" in sys.modules:
                sys.modules["plantguard.store.db"].dispose_all()
            gc.freeze()
            sys.exit(code)
        return code


def _choices_any_case(command) -> None:
    """Every choice of every command is accepted in any case (`--format HTML`, `--role Admin`)
    and handed on as declared: the one place where that is decided."""
    for param in command.params:
        desc = getattr(param, "type_descriptor", None)        # Typer >= 0.2x: its own choice types
        if desc is not None and desc.is_choice:
            desc.parameter_info.case_sensitive = False
        elif type(getattr(param, "type", None)).__name__ == "Choice":       # Click's
            param.type.case_sensitive = False
    for sub in getattr(command, "commands", {}).values():
        _choices_any_case(sub)


def _stopped(exc: BaseException, prog_name: str | None) -> int:
    """What ended the command early, said in one line (or not at all); its exit code. Anything
    else is raised again (main() reports it as an internal error)."""
    if isinstance(exc, _NoArgsIsHelp):                   # the help was shown
        return exc.exit_code
    if isinstance(exc, click.exceptions.UsageError):
        where = exc.ctx.command_path if exc.ctx is not None else (prog_name or "plantguard")
        say(f"plantguard: error: {exc.format_message().rstrip('.')}; see '{where} --help'")
        return exc.exit_code
    if isinstance(exc, click.exceptions.ClickException):
        say(f"plantguard: error: {exc.format_message()}")
        return exc.exit_code
    if isinstance(exc, typer.Abort):
        say("plantguard: aborted")
        return 1
    if isinstance(exc, KeyboardInterrupt):
        say("plantguard: interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
        # the reader went away (`plantguard inventory x | head`): stop quietly
        sys.stdout = click.utils.PacifyFlushWrapper(sys.stdout)
        sys.stderr = click.utils.PacifyFlushWrapper(sys.stderr)
        return 1
    raise exc


app = typer.Typer(cls=_Group, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="plantguard: passive security assessment of smart-manufacturing networks.")
out = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        say(f"plantguard {__version__}", out)
        raise typer.Exit(0)


@app.callback()
def _global(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="More on stderr: -v what each stage did and how long it took, -vv details."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only on stderr, no progress display."),
):
    """plantguard: passive security assessment of smart-manufacturing networks.

    Global options go before the command (`plantguard -v assess ...`)."""
    from plantguard.cli.verbosity import configure
    configure(verbose, quiet)


def say(msg: str, console: Console | None = None) -> None:
    """One line for a person (stderr unless `console` says otherwise), shown literally: control
    characters and escapes made visible, no markup, no emoji codes, a line break as \\n. With -q
    only the errors reach stderr (they start "plantguard:")."""
    from plantguard.cli.verbosity import is_quiet
    if console is None and is_quiet() and not msg.startswith("plantguard:"):
        return
    (console or err).print(terminal_text(msg), soft_wrap=True, highlight=False)


def fail(msg: str) -> None:
    """A usage or input error: one line on stderr, exit code 2."""
    say(f"plantguard: error: {msg}")
    raise typer.Exit(EXIT_USAGE)


def interrupted() -> None:
    """Ctrl-C: one line on stderr, exit code 130 (a report being written was not left behind:
    cli.common.write_report removes its temporary file)."""
    say("plantguard: interrupted")
    raise typer.Exit(EXIT_INTERRUPTED)


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
    say(f"plantguard {__version__}", out)


from plantguard.cli.intel import intel_app  # noqa: E402
from plantguard.cli.sbom import sbom_app  # noqa: E402

app.add_typer(intel_app, name="intel", help="Vulnerability intelligence: import advisories, KEV, NVD, EPSS.")
app.add_typer(sbom_app, name="sbom", help="Check SBOMs (CycloneDX, SPDX) against procurement needs and advisories.")
from plantguard.cli.site import site_app  # noqa: E402
app.add_typer(site_app, name="site", help="Site files: draft one from traffic (init), validate one (check).")
from plantguard.cli.change import change_app  # noqa: E402
app.add_typer(change_app, name="change", help="Change tickets that authorise PLC changes: add, list, import.")
from plantguard.cli.server import server_app  # noqa: E402
app.add_typer(server_app, name="server", help="The central server for many sites: init, run, token, audit.")
from plantguard.cli.sensor import sensor_app  # noqa: E402
app.add_typer(sensor_app, name="sensor", help="Deliver to a central server: enroll, push, status.")
from plantguard.cli.firewall import firewall_app  # noqa: E402
app.add_typer(firewall_app, name="firewall", help="Firewall configurations: check them against the site, explain a verdict.")
from plantguard.cli import monitor as _monitor  # noqa: E402,F401
from plantguard.cli import probe as _probe  # noqa: E402,F401
from plantguard.cli import checks as _checks  # noqa: E402,F401


def main() -> None:
    """Console entry point: an unexpected error is one line on stderr, not a traceback
    (PLANTGUARD_DEBUG=1 shows it)."""
    import os

    from plantguard.errors import InputError
    from plantguard.protocols._spec import ProtocolSpecError
    try:
        app(prog_name="plantguard")
    except KeyboardInterrupt:
        say("plantguard: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except InputError as exc:   # bad input that reached past a command's own handling: still one line
        say(f"plantguard: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        sys.exit(EXIT_USAGE)
    except ProtocolSpecError as exc:   # a misdeclared protocol module (its message names it)
        say(f"plantguard: {exc}")
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("PLANTGUARD_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        say(f"plantguard: internal error: {type(exc).__name__}: {first} (set PLANTGUARD_DEBUG=1 for details)")
        sys.exit(EXIT_USAGE)
