"""The `hpo` command line, the only package that talks to the user: thin Typer commands over the
library, the one error boundary and the one place that configures the process (`main`), shared
options (`options`), and all terminal rendering (`render`, `render_results`, `views`).

May import: every layer."""

from hpo.cli.main import app, main

__all__ = ["app", "main"]
