"""`rainbench synth`: synthesise paired rainy/clean images from clean photographs (rain streaks, layers, haze)."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("synth", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Synthesise paired rainy/clean images from clean photographs (rain streaks, layers, haze). (Not implemented yet.)"""
    raise NotImplementedYet("synth", 2)
