"""One module per ``studio`` subcommand (see studio/cli.py)."""
