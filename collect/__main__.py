"""`python -m collect` runs the command line."""

from collect.cli import main

main()
