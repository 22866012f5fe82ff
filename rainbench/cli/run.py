"""`rainbench run`: benchmark methods on a dataset with reference and no-reference metrics."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("run", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Benchmark methods on a dataset with reference and no-reference metrics. (Not implemented yet.)"""
    raise NotImplementedYet("run", 7)
