"""What every command that runs part of the service needs: the runtime, or a one-line error."""

from __future__ import annotations

import logging

import click

from loyalty.errors import ConfigurationError
from loyalty.runtime import Runtime, build
from loyalty.settings import Settings


def runtime_or_exit(settings: Settings) -> Runtime:
    """The service wired from `settings`, or a one-line error saying what to do."""
    try:
        return build(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from exc


def log_to_stderr() -> None:
    """Long-running commands log what the service does (state changes, not every pass)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
