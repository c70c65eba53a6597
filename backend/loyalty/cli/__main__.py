"""`python -m loyalty.cli`: the same as the `loyalty` command."""

from loyalty.cli import main

main()
