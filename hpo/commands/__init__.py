"""The `hpo` subcommands: Typer functions that parse options, call one library function and
render. Library modules are imported inside each function to keep `--help` fast."""
