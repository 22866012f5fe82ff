"""`rainbench publish`: push a curated dataset to the Hugging Face Hub with a complete dataset card."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("publish", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Push a curated dataset to the Hugging Face Hub with a complete dataset card. (Not implemented yet.)"""
    raise NotImplementedYet("publish", 4)
