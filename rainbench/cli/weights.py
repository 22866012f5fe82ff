"""`rainbench weights`: manage metric weight files offline: list, fetch, verify, path, fit-niqe."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("weights", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Manage metric weight files offline: list, fetch, verify, path, fit-niqe. (Not implemented yet.)"""
    raise NotImplementedYet("weights", 7)
