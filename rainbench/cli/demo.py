"""`rainbench demo`: run the whole journey on built-in sample images: synth, ingest, train, run, leaderboard."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("demo", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Run the whole journey on built-in sample images: synth, ingest, train, run, leaderboard. (Not implemented yet.)"""
    raise NotImplementedYet("demo", 8)
