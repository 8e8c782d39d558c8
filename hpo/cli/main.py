"""The `hpo` root: the one error boundary and the one place that configures the process.

`HpoGroup.main` configures the process (`hpo.stores.runtime.configure`) unless only help or the version
is asked for, hands the command line down to the commands (`ctx.obj`), and turns our HpoErrors,
usage errors and unexpected failures into one red line and an exit code; `--debug` or
HPO_DEBUG=1 re-raises with the traceback. The commands live in `hpo.cli.*` and are registered at
the bottom. No CLI module imports torch, optuna or mlflow at the top: library modules are
imported inside the commands so that `hpo --help` is instant."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from hpo import __version__
from hpo.cli import results as results_cmd
from hpo.cli import search as search_cmd
from hpo.cli import stores as stores_cmd
from hpo.cli import train as train_cmd
from hpo.cli import ui as ui_cmd
from hpo.cli.options import EXIT_INTERRUPTED, Invocation, console
from hpo.config import RAY_LOCAL
from hpo.errors import HpoError, redact

_INFO_ONLY = ("--help", "-h", "--version")
# Options whose value may be left out, and what they then mean (`hpo search --ray`: a local Ray).
_OPTIONAL_VALUES = {"--ray": RAY_LOCAL}


def _debug(args: Sequence[str]) -> bool:
    return "--debug" in args or os.environ.get("HPO_DEBUG", "") not in ("", "0")


def error_line(message: str) -> None:
    """The one line a failure prints (a password in a store URL is never shown)."""
    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)  # passwords redacted


def program(argv0: str) -> str:
    """How the user ran hpo, so a printed command runs as pasted: `hpo` when that name finds this
    very program on PATH, the path as typed otherwise (`.venv/bin/hpo` of an inactive virtualenv),
    `python -m hpo` for a module run."""
    if Path(argv0).name == "__main__.py":
        python = "python" if shutil.which("python") == sys.executable else sys.executable
        return f"{shlex.quote(python)} -m hpo"
    found = shutil.which(Path(argv0).name)
    if found and Path(found).resolve() == Path(argv0).resolve():
        return Path(argv0).name
    return shlex.quote(argv0)


def _prepare(argv: list[str], *, prog: str) -> Invocation:
    """Configure the process once, unless the call only prints help or the version."""
    if argv and not any(a in _INFO_ONLY for a in argv):
        from hpo.stores.runtime import configure

        configure()
    # The command line is recorded on every run and printed as the resume hint: never a password.
    return Invocation(command=redact(f"{prog} {shlex.join(argv)}"))


class HpoGroup(TyperGroup):
    """Typer group whose `main` is the single place where failures become messages."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:  # called with its arguments (in-process, tests): no program path to repeat
            obj = _prepare(argv, prog="hpo" if args is not None else program(sys.argv[0]))
            rv = super().main(
                _with_values(argv), prog_name, complete_var, False, windows_expand_args, obj=obj, **extra
            )
            code = rv if isinstance(rv, int) else 0
        except HpoError as exc:
            if _debug(argv):
                raise
            error_line(str(exc))
            code = exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            error_line("interrupted")
            code = EXIT_INTERRUPTED
        except Exception as exc:
            if _is_usage_error(exc):
                if not exc.format_message():  # type: ignore[attr-defined]
                    return _finish(0, standalone_mode)  # bare `hpo`: help was shown, not an error
                error_line(_usage_message(exc))
                return _finish(int(exc.exit_code), standalone_mode)  # type: ignore[attr-defined]
            if _debug(argv):
                raise
            error_line(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            code = 1
        return _finish(code, standalone_mode)


def _with_values(argv: list[str]) -> list[str]:
    """`--ray` given without a value (last, or before another option) as `--ray=local`: Typer's
    options either always or never take one."""
    out = []
    for i, arg in enumerate(argv):
        bare = arg in _OPTIONAL_VALUES and (i + 1 == len(argv) or argv[i + 1].startswith("-"))
        out.append(f"{arg}={_OPTIONAL_VALUES[arg]}" if bare else arg)
    return out


def _finish(code: int, standalone_mode: bool) -> int:
    if standalone_mode:
        sys.exit(code)
    return code


def _is_usage_error(exc: Exception) -> bool:
    """Usage errors of click or of typer's vendored click copy, recognised by duck typing."""
    return hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int)


def _usage_message(exc: Exception) -> str:
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return exc.format_message().replace("\n", " ") + hint  # type: ignore[attr-defined]


class HpoCommand(TyperCommand):
    """A command whose help shows no type beside an on/off flag or a list of files: Typer's
    `<bool>` reads as if the flag took a value, `<list[Path]>` repeats what the metavar says."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = list(super().get_params(ctx))
        for param in params:  # per parameter of this command: Typer's classes stay as they are
            metavar = getattr(param, "metavar", None)
            if getattr(param, "is_flag", False) or metavar:
                setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010
            if metavar and param.param_type_name == "argument":  # `IMAGE...`, not `{IMAGE...}...`
                setattr(param, "_usage_display_name", lambda name=metavar: name)  # noqa: B010
        return params


app = typer.Typer(
    cls=HpoGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Hyperparameter search with persistent experiment tracking for MNIST-style classifiers.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hpo {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks (also HPO_DEBUG=1)."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """hpo: search, track and evaluate image classifiers without losing work."""


def main() -> None:
    app()


app.command(cls=HpoCommand)(train_cmd.train)
app.command(cls=HpoCommand)(search_cmd.search)
app.command(cls=HpoCommand)(stores_cmd.studies)
app.command(cls=HpoCommand)(stores_cmd.trials)
app.command(cls=HpoCommand)(stores_cmd.check)
app.command(cls=HpoCommand)(results_cmd.best)
app.command("report", cls=HpoCommand)(results_cmd.report)
app.command(cls=HpoCommand)(results_cmd.reproduce)
app.command(cls=HpoCommand)(results_cmd.baselines)
app.command(cls=HpoCommand)(results_cmd.predict)
app.command(cls=HpoCommand)(ui_cmd.ui)
