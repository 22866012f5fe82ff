"""`rainbench methods`: list the registered deraining methods with their kind, paper, license and weights."""

from __future__ import annotations

import click

from rainbench.cli.common import common_options, deprecated_option, stderr_console
from rainbench.cli.listing import Column, emit, format_option

COLUMNS = (
    Column("name", "name"),
    Column("kind", "kind"),
    Column("learns_from", "learns"),
    Column("weights", "weights", drop=2, short=lambda v: {"trained with fit": "fit"}.get(v, v or "")),
    Column("license", "license", drop=1, short=lambda v: (v or "").split(" (")[0]),
    Column("paper", "paper", shrink=True),
)


def rows(infos) -> list[dict]:
    """One flat row per method, as every listing format shows it."""
    out = []
    for i in infos:
        weights = "required" if i.needs_weights else ("trained with fit" if i.learns_from != "none" else "none")
        paper = f"{i.paper}" + (f" [{i.year}]" if i.year and str(i.year) not in i.paper else "")
        out.append({"name": i.name, "kind": i.kind, "learns_from": i.learns_from, "weights": weights,
                    "license": i.code_license + (f" (weights: {i.weights_license})" if i.weights_license else ""),
                    "paper": paper})
    return out


@click.command("methods")
@format_option
@deprecated_option("--json", new="fmt", new_flag="--format json", is_flag=True, convert=lambda _: "json")
@common_options
def command(fmt: str, common) -> None:
    """List the registered deraining methods (built-in and plugins) with their kind, paper, license and weights.

    `--format json` prints the full registry record of each method (summary, devices, tile size, ...).
    """
    import baselines
    from baselines.registry import load_errors

    infos = [baselines.info(name) for name in baselines.available()]
    errors = load_errors()
    emit(rows(infos), COLUMNS, fmt, records=[i.to_dict() for i in infos] if fmt == "json" else None)
    for where, why in errors.items():
        stderr_console().print(f"[yellow]warning[/yellow]: {where} could not be loaded: {why}")
