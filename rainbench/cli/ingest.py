"""`rainbench ingest`: curate folders of rainy photographs and public derain sets into a deduplicated, split HF dataset."""

from __future__ import annotations

import click

from rainbench.cli.common import NotImplementedYet, common_options


@click.command("ingest", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@common_options
def command(common) -> None:
    """Curate folders of rainy photographs and public derain sets into a deduplicated, split HF dataset. (Not implemented yet.)"""
    raise NotImplementedYet("ingest", 3)
