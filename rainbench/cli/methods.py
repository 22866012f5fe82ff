"""`rainbench methods`: list the registered deraining methods with their kind, paper, license and weights."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("methods", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """List the registered deraining methods with their kind, paper, license and weights. (Not implemented yet.)"""
    raise NotImplementedYet("methods", 6)
