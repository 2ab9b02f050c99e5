"""Run the CLI as ``python -m sweeper``."""

from sweeper.cli import main

main()
