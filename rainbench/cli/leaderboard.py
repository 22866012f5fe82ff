"""`rainbench leaderboard`: turn run directories into leaderboards: tables with CIs, plots, an HTML report."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("leaderboard", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Turn run directories into leaderboards: tables with CIs, plots, an HTML report. (Not implemented yet.)"""
    raise NotImplementedYet("leaderboard", 7)
