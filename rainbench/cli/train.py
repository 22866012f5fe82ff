"""`rainbench train`: train a learnable method (nlcl, prenet, ...) and write a checkpoint."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("train", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Train a learnable method (nlcl, prenet, ...) and write a checkpoint. (Not implemented yet.)"""
    raise NotImplementedYet("train", 6)
