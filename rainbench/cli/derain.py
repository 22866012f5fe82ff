"""`rainbench derain`: apply a deraining method to image files or folders and write the outputs."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("derain", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Apply a deraining method to image files or folders and write the outputs. (Not implemented yet.)"""
    raise NotImplementedYet("derain", 6)
