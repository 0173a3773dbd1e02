"""`python -m mergeval.cli`: the same as the `mergeval` command."""

from mergeval.cli import main

main()
