"""The `hpo` command line: thin Typer commands over the library, the one error boundary
(`hpo.cli.main`), shared options (`options`) and all terminal rendering (`render`, `views`)."""

from hpo.cli.main import app, main

__all__ = ["app", "main"]
