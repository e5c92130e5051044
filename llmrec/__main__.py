"""`python -m llmrec` runs the command line."""

from .cli import main

main()
